"""Initialisation schemes for recurrent modules, and the registry that configs and the CLI name them by.

Every scheme takes a module (an rnnlab RNN/LSTM/GRU or a torch.nn one), changes exactly the tensors its
docstring names, in place, and leaves the others alone, so schemes that touch different tensors compose:
``apply(model, "orthogonal+chrono", t_max=200)``. A scheme that cannot apply to a module raises ValueError.

Gate blocks follow torch.nn's layout: weight_ih (G·H, I) and weight_hh (G·H, H) stack G blocks of H rows
(LSTM: i, f, g, o; GRU: r, z, n). Where a scheme works "per gate block" each (H, ·) block is treated as its
own matrix, because each block is a separate map from the input (or state) to one gate; the uRNN paper's LSTM
(`lstm_peephole_out`) has a fifth block in weight_hh, its peephole V_o (on c_t), which these schemes draw as
one more block, as that paper's code draws it. Bidirectional modules get every scheme on both directions'
weights.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnlab.recurrent.cells import CELLS, VANILLA, Recurrence
from rnnlab.recurrent.init_tensors import (
    blocks,
    cell_name,
    layers,
    projections,
    tags,
    zero_biases,
)

ALL_CELLS = frozenset(CELLS)
#: The cells whose layers read their input through a weight_ih (not the LRU: its B acts on an encoded input).
INPUT_WEIGHT_CELLS = ALL_CELLS - {"lru"}
#: The cells with a recurrent matrix W_hh (G·H, H), which the schemes that shape W_hh's gate blocks need (an
#: element-wise cell has a vector u or no recurrent weight at all: `Recurrence`).
MATRIX_CELLS = frozenset(
    name for name, cell in CELLS.items() if cell.recurrence is Recurrence.MATRIX and not cell.weight_hh_computed
)  # ExpRNN's W_hh = exp(A) is computed from A each forward: a scheme writing W_hh would write a temporary


#: The cells with an LSTM's gates in torch.nn's order (i, f, g, o), where the gate-bias schemes apply.
LSTM_CELLS = frozenset({"lstm", "lstm_peephole_out"})

# ------------------------------------------------------------------------------------------------ schemes


@torch.no_grad()  # callable directly on a module whose parameters require grad
def module_default(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """The module's own initialisation, its `reset_parameters` (the paper's scheme of a cell without a torch.nn
    class: IndRNN's u ~ U(0, 1), minGRU's and minLSTM's nn.Linear draws), seeded from `generator` without
    touching the global RNG. Sets what the module's own initialisation sets. `resolve` turns this scheme into
    `torch_default` for RNN/LSTM/GRU, whose own initialisation it is, so those draw exactly as before."""
    if generator is None:
        module.reset_parameters()
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    device = next(module.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        module.reset_parameters()


@torch.no_grad()  # callable directly on a module whose parameters require grad
def torch_default(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """PyTorch's default: every weight and bias U(−1/√H, 1/√H). Sets all tensors."""
    bound = 1.0 / math.sqrt(module.hidden_size)
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound, generator=generator)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def xavier_uniform(module: nn.Module, *, gain: float = 1.0, generator: torch.Generator | None = None) -> None:
    """Glorot & Bengio (2010), uniform: each gate block of weight_ih and weight_hh ~ U(−a, a) with
    a = gain·√(6 / (fan_in + fan_out)), so Var = gain²·2 / (fan_in + fan_out) (fan_out = H per block); an
    LSTM's projection weight_hr (proj_size > 0) likewise, as one matrix. Biases are set to zero. Sets every
    tensor."""
    hidden = module.hidden_size
    for w_ih, w_hh, _, _ in layers(module):
        for block in blocks(w_ih, hidden) + blocks(w_hh, hidden):
            nn.init.xavier_uniform_(block, gain=gain, generator=generator)
    for w_hr in projections(module):
        nn.init.xavier_uniform_(w_hr, gain=gain, generator=generator)
    zero_biases(module)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def xavier_normal(module: nn.Module, *, gain: float = 1.0, generator: torch.Generator | None = None) -> None:
    """Glorot & Bengio (2010), normal: each gate block ~ N(0, gain²·2 / (fan_in + fan_out)); an LSTM's
    projection weight_hr likewise, as one matrix. Biases are set to zero. Sets every tensor."""
    hidden = module.hidden_size
    for w_ih, w_hh, _, _ in layers(module):
        for block in blocks(w_ih, hidden) + blocks(w_hh, hidden):
            nn.init.xavier_normal_(block, gain=gain, generator=generator)
    for w_hr in projections(module):
        nn.init.xavier_normal_(w_hr, gain=gain, generator=generator)
    zero_biases(module)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def he(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """He et al. (2015), Kaiming normal with fan-in: weight_ih and weight_hh ~ N(0, 2 / fan_in), where fan_in
    is the number of columns (I for weight_ih, H — or P with proj_size — for weight_hh, H for an LSTM's
    projection weight_hr); the factor 2 is ReLU's gain. Biases are set to zero. Sets every tensor."""
    for w_ih, w_hh, _, _ in layers(module):
        for w in (w_ih, w_hh):
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=generator)
    for w_hr in projections(module):
        nn.init.kaiming_normal_(w_hr, mode="fan_in", nonlinearity="relu", generator=generator)
    zero_biases(module)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def orthogonal(module: nn.Module, *, gain: float = 1.0, generator: torch.Generator | None = None) -> None:
    """Saxe et al. (2014): each (H, H) gate block of weight_hh a random orthogonal matrix times `gain`, so
    the linearised recurrence neither shrinks nor grows the state. Sets weight_hh only."""
    hidden = module.hidden_size
    for _, w_hh, _, _ in layers(module):
        for block in blocks(w_hh, hidden):
            nn.init.orthogonal_(block, gain=gain, generator=generator)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def identity(module: nn.Module, *, scale: float = 1.0, generator: torch.Generator | None = None) -> None:
    """IRNN, Le, Jaitly & Hinton (2015): weight_hh = scale·I and both biases zero, so a ReLU RNN starts by
    copying its state forward (∂h_t/∂h_{t-1} = scale·I where units are active). Meant for ReLU RNNs;
    vanilla RNNs only. Sets weight_hh, bias_ih, bias_hh; weight_ih is left as it is (the paper's N(0, 0.001²)
    input weights: ``identity+input_normal``)."""
    for _, w_hh, _, _ in layers(module):
        w_hh.copy_(scale * torch.eye(w_hh.shape[0], dtype=w_hh.dtype, device=w_hh.device))
    zero_biases(module)


def _require_positive(scheme: str, option: str, value, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"init {scheme!r} needs {option} > 0 ({meaning}), got {value!r}")


def _normal_inputs(module: nn.Module, std: float, generator: torch.Generator | None) -> None:
    """Every layer's weight_ih (both directions) ~ N(0, std²)."""
    for w_ih, _, _, _ in layers(module):
        nn.init.normal_(w_ih, 0.0, std, generator=generator)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def input_normal(module: nn.Module, *, input_std: float = 0.001, generator: torch.Generator | None = None) -> None:
    """Input weights N(0, input_std²): weight_ih of every layer and direction (a deeper layer's input is the
    layer below). Le, Jaitly & Hinton (2015), §4: "For IRNNs, in addition to the recurrent weights being
    initialized at identity, the non-recurrent weights are initialized with a random matrix, whose entries
    are sampled from a Gaussian distribution with mean of zero and standard deviation of 0.001" — hence the
    default; their IRNN is ``identity+input_normal`` (the readout, their other non-recurrent weight, is the
    model's: `RunConfig.readout_std`). Applies to every cell. Sets weight_ih only."""
    _require_positive("input_normal", "input_std", input_std, "the standard deviation of weight_ih")
    _normal_inputs(module, input_std, generator)


SPARSE_CONNECTIONS = 15  # non-zeros per unit in sparse_tanh's weight_hh, as in Pascanu et al.'s code


@torch.no_grad()  # callable directly on a module whose parameters require grad
def sparse_tanh(
    module: nn.Module, *, rho: float = 0.95, input_std: float = 0.01, generator: torch.Generator | None = None
) -> None:
    """Pascanu, Mikolov & Bengio (2013)'s "smart" tanh initialisation, as their official code sets it
    (github pascanur/trainingRNNs, RNN.py, the ``state['init'] == 'smart_tanh'`` branch of ``jobman``;
    the default ``state['init']`` of its ``__main__``):

    - ``W_uh = rng.normal(size=(nin, n_hidden), scale=.01)``: numpy's `scale` is the standard deviation, so
      weight_ih ~ N(0, 0.01²) (`input_std`);
    - ``W_hh = rng.normal(size=(n_hidden, n_hidden), scale=.01)``, then per row ``dx``
      ``spng = rng.permutation(n_hidden); W_hh[dx][spng[15:]] = 0``: each row keeps 15 entries at random
      positions (all of them when H ≤ 15);
    - ``sr = max(abs(eigvals(W_hh))); W_hh = .95 * W_hh / sr``: rescaled to spectral radius 0.95 (`rho`);
      the 0.01 of the draw cancels here, so a standard normal is drawn;
    - ``b_hh`` zeros (torch.nn's two biases: both zero); ``W_hy`` N(0, 0.01²) and ``b_hy`` zeros are the
      readout's, outside the recurrent module (`RunConfig.readout_std: 0.01`).

    Their step is ``h_t = tanh(h_{t−1}·W_hh + u_t·W_uh + b_hh)`` on row vectors, so torch's weight_hh
    (h_t = W h_{t−1}) is the transpose of their W_hh: the 15 non-zeros sit in each *column* of weight_hh —
    the weights out of one unit — while the non-zeros per row (fan-in) vary. The radius is computed in
    float64. For tanh RNNs only: the code pairs this draw with tanh, and the radius means what the paper
    means (a bound on the linearised Jacobian ∂h_t/∂h_{t−1} = diag(tanh′)·W) only for a single recurrent
    matrix; ReLU/linear RNNs can take ``orthogonal`` with a gain instead. Every layer and direction gets its
    own draw. Sets every tensor."""
    _require_positive("sparse_tanh", "rho", rho, "the spectral radius of weight_hh")
    _require_positive("sparse_tanh", "input_std", input_std, "the standard deviation of weight_ih")
    _normal_inputs(module, input_std, generator)
    for _, w_hh, _, _ in layers(module):
        hidden = w_hh.shape[0]
        theirs = torch.empty(hidden, hidden, dtype=torch.float64, device=w_hh.device)  # (H_from, H_to)
        theirs.normal_(generator=generator)
        # argsort of i.i.d. uniforms is a uniform random permutation per row, as rng.permutation per row.
        order = torch.rand(hidden, hidden, dtype=torch.float64, device=w_hh.device, generator=generator)
        dropped = order.argsort(dim=1)[:, SPARSE_CONNECTIONS:]  # (H, max(H − 15, 0))
        theirs.scatter_(1, dropped, 0.0)
        radius = torch.linalg.eigvals(theirs).abs().max()
        w_hh.copy_((rho / radius) * theirs.T)
    zero_biases(module)


def _require_bias(module: nn.Module, scheme: str) -> None:
    if not module.bias:
        raise ValueError(f"init {scheme!r} sets gate biases, but the module was built with bias=False")


@torch.no_grad()  # callable directly on a module whose parameters require grad
def forget_bias(module: nn.Module, *, value: float = 1.0, generator: torch.Generator | None = None) -> None:
    """Jozefowicz, Zaremba & Sutskever (2015): LSTM forget-gate bias `value` (default 1), so the forget gate
    starts mostly open (σ(1) ≈ 0.73 instead of 0.5). torch.nn has two biases that are summed; the forget
    block of bias_ih is set to `value` and that of bias_hh to 0, so their sum is exactly `value`.
    Sets the forget blocks of bias_ih and bias_hh only."""
    _require_bias(module, "forget_bias")
    hidden = module.hidden_size
    for _, _, b_ih, b_hh in layers(module):
        b_ih[hidden : 2 * hidden] = value
        b_hh[hidden : 2 * hidden] = 0.0


@torch.no_grad()  # callable directly on a module whose parameters require grad
def chrono(module: nn.Module, *, t_max: int, generator: torch.Generator | None = None) -> None:
    """Chrono initialisation, Tallec & Ollivier (2018): forget-gate bias log(U(1, T_max − 1)) per unit and
    input-gate bias its negative, so unit j remembers over a characteristic time drawn up to T_max steps.
    As in `forget_bias`, the values go in bias_ih and the same blocks of bias_hh are zeroed.
    Sets the input and forget blocks of bias_ih and bias_hh only. `t_max` (> 2) is the longest dependency
    expected, usually the sequence length."""
    if isinstance(t_max, bool) or not isinstance(t_max, int | float) or not t_max > 2:
        raise ValueError(f"init 'chrono' needs t_max > 2 (the longest expected dependency), got {t_max!r}")
    _require_bias(module, "chrono")
    hidden = module.hidden_size
    for _, _, b_ih, b_hh in layers(module):
        u = torch.empty(hidden, dtype=torch.float64, device=b_ih.device)
        u.uniform_(1.0, float(t_max) - 1.0, generator=generator)
        bias = torch.log(u).to(b_ih)
        b_ih[hidden : 2 * hidden] = bias
        b_ih[:hidden] = -bias
        b_hh[: 2 * hidden] = 0.0


@torch.no_grad()  # callable directly on a module whose parameters require grad
def indrnn_uniform(
    module: nn.Module, *, u_max: float = 1.0, last_u_min: float | None = None, generator: torch.Generator | None = None
) -> None:
    """Li et al. (2018)'s IndRNN initialisation as their code draws it (github Sunnydreamrain/IndRNN_pytorch,
    ``init_weights``): each recurrent weight u ~ U(0, u_max) (their ``uniform_(0, U_bound)``; U_bound =
    MAG^(1/T), `rnnlab.IndRNN.magnitude_bound`), weight_ih as their input `nn.Linear` draws it,
    U(−1/√I, 1/√I), and biases 0 — what `rnnlab.IndRNN` starts from. With `last_u_min`, the last layer's u
    ~ U(last_u_min, u_max) instead, as their adding script draws it (IndRNN_Theano_Lasagne adding/adding.py:
    U((1/MAG)^(1/T), MAG^(1/T))), so that every unit of the layer a readout of the last step sees keeps its
    state over the whole sequence; the draws are otherwise the same. IndRNN only. Sets every tensor."""
    _require_positive("indrnn_uniform", "u_max", u_max, "the upper end of U(0, u_max) for u")
    if last_u_min is not None:
        _require_positive("indrnn_uniform", "last_u_min", last_u_min, "the lower end of the last layer's range")
        if last_u_min >= u_max:
            raise ValueError(f"init 'indrnn_uniform' needs last_u_min < u_max, got {last_u_min!r} and {u_max!r}")
    entries = list(layers(module))
    last = len(entries) - (2 if getattr(module, "bidirectional", False) else 1)  # the last layer's directions
    for index, (w_ih, u, _, _) in enumerate(entries):
        bound = 1.0 / math.sqrt(w_ih.shape[1])
        nn.init.uniform_(w_ih, -bound, bound, generator=generator)
        low = last_u_min if last_u_min is not None and index >= last else 0.0
        nn.init.uniform_(u, low, u_max, generator=generator)
    zero_biases(module)


def _skew_rotations(skew: Tensor, angles: Tensor) -> None:
    """Write the block-diagonal skew-symmetric A of 2×2 blocks [[0, θ_k], [−θ_k, 0]] (H // 2 blocks; an odd H
    leaves the last unit alone) into `skew` (H, H) as ExpRNN stores it: its strict upper triangle only, A[2k, 2k+1]
    = θ_k (the authors' ``create_diag_``). exp(A) is then a rotation by θ_k in each plane (2k, 2k+1)."""
    skew.zero_()
    index = torch.arange(angles.numel(), device=skew.device) * 2
    skew[index, index + 1] = angles


def _exprnn_init(module: nn.Module, angles, generator: torch.Generator | None) -> None:
    """The rest of Lezcano-Casado & Martínez-Rubio's initialisation (github Lezcano/expRNN, `orthogonal.py`):
    weight_ih Kaiming normal for ReLU, N(0, 2 / fan_in) (their ``kaiming_normal_(..., nonlinearity="relu")``),
    modReLU's b ~ U(−0.01, 0.01) (``modrelu.reset_parameters``), and A from `angles(n, generator)`."""
    for tag in tags(module):
        w_ih = getattr(module, f"weight_ih_{tag}")
        nn.init.kaiming_normal_(w_ih, nonlinearity="relu", generator=generator)
        skew = getattr(module, f"skew_weight_hh_{tag}")
        _skew_rotations(skew, angles(skew.shape[0] // 2, skew, generator))
        bias = getattr(module, f"bias_hh_{tag}", None)
        if bias is not None:
            nn.init.uniform_(bias, -0.01, 0.01, generator=generator)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def exprnn_henaff(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """ExpRNN's default initialisation, as its copy task's ``--init henaff`` (Henaff, Szlam & LeCun 2016): A
    block-diagonal with rotation angles θ ~ U(−π, π), so exp(A) rotates each pair of units by a random angle;
    weight_ih N(0, 2 / fan_in); modReLU's b ~ U(−0.01, 0.01). ExpRNN only. Sets every tensor."""
    _exprnn_init(module, lambda n, like, g: like.new_empty(n).uniform_(-math.pi, math.pi, generator=g), generator)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def exprnn_cayley(module: nn.Module, *, generator: torch.Generator | None = None) -> None:
    """ExpRNN's ``--init cayley`` (Helfrich et al. 2018's scoRNN init): A block-diagonal with entries
    −√((1 − cos φ) / (1 + cos φ)) = −tan(φ/2), φ ~ U(0, π/2) (the authors' ``cayley_init_``); weight_ih and b as
    `exprnn_henaff`. ExpRNN only. Sets every tensor."""

    def angles(n: int, like: Tensor, g: torch.Generator | None) -> Tensor:
        phi = like.new_empty(n).uniform_(0.0, math.pi / 2, generator=g)
        return -torch.sqrt((1.0 - torch.cos(phi)) / (1.0 + torch.cos(phi)))

    _exprnn_init(module, angles, generator)


@torch.no_grad()  # callable directly on a module whose parameters require grad
def lru_ring(
    module: nn.Module,
    *,
    r_min: float | None = None,
    r_max: float | None = None,
    max_phase: float | None = None,
    generator: torch.Generator | None = None,
) -> None:
    """Orvieto et al. (2023)'s LRU initialisation (`rnnlab.LRU.ring_init_`): eigenvalues uniform on the ring
    r_min ≤ |λ| ≤ r_max with phase in [0, max_phase] (defaults: the module's own bounds), γ = √(1 − |λ|²),
    B ~ N(0, 1/(2H)), C ~ N(0, 1/N), D ~ N(0, 1) — what `rnnlab.LRU` starts from. LRU only. Sets ν, θ, γ, B,
    C and D of every layer; the encoder, norms and GLUs keep theirs."""
    module.ring_init_(generator=generator, r_min=r_min, r_max=r_max, max_phase=max_phase)


# ------------------------------------------------------------------------------------------------ registry


@dataclass(frozen=True)
class Scheme:
    """A named initialisation scheme and the cells it applies to."""

    name: str
    fn: Callable[..., None]
    cells: frozenset[str]
    summary: str  # one line for `rnnlab inits`

    @property
    def options(self) -> tuple[str, ...]:
        """The keyword options the scheme takes (besides `generator`)."""
        params = inspect.signature(self.fn).parameters
        return tuple(n for n, p in params.items() if p.kind is p.KEYWORD_ONLY and n != "generator")


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("default", module_default, ALL_CELLS, "the module's own (the paper's; torch_default for RNN/LSTM/GRU)"),
        Scheme("torch_default", torch_default, ALL_CELLS, "all tensors U(−1/√H, 1/√H), as torch.nn"),
        Scheme("xavier_uniform", xavier_uniform, MATRIX_CELLS, "Glorot uniform per gate block, zero biases"),
        Scheme("xavier_normal", xavier_normal, MATRIX_CELLS, "Glorot normal per gate block, zero biases"),
        Scheme("he", he, MATRIX_CELLS, "Kaiming normal N(0, 2/fan_in), zero biases"),
        Scheme("orthogonal", orthogonal, MATRIX_CELLS, "each gate block of weight_hh orthogonal"),
        Scheme("identity", identity, VANILLA, "IRNN: weight_hh = scale·I, zero biases"),
        Scheme(
            "input_normal", input_normal, INPUT_WEIGHT_CELLS, "weight_ih N(0, input_std²): the IRNN's input weights"
        ),
        Scheme(
            "sparse_tanh",
            sparse_tanh,
            frozenset({"rnn_tanh"}),
            "Pascanu et al.'s smart tanh: sparse weight_hh at radius rho, N(0, input_std²) weight_ih, zero biases",
        ),
        Scheme("indrnn_uniform", indrnn_uniform, frozenset({"indrnn"}), "IndRNN: u ~ U(0, u_max), zero biases"),
        Scheme("exprnn_henaff", exprnn_henaff, frozenset({"exprnn"}), "ExpRNN: A rotations θ ~ U(−π, π), as the paper"),
        Scheme("exprnn_cayley", exprnn_cayley, frozenset({"exprnn"}), "ExpRNN: A entries −tan(φ/2), φ ~ U(0, π/2)"),
        Scheme(
            "lru_ring", lru_ring, frozenset({"lru"}), "LRU: r_min ≤ |λ| ≤ r_max, 0 ≤ arg λ ≤ max_phase, γ = √(1 − |λ|²)"
        ),
        Scheme("forget_bias", forget_bias, LSTM_CELLS, "LSTM forget-gate bias 1 (value)"),
        Scheme("chrono", chrono, LSTM_CELLS, "LSTM forget bias log U(1, t_max−1), input bias −that"),
    )
}


def parse_spec(spec: str | Sequence[str]) -> list[Scheme]:
    """'orthogonal+chrono' or ['orthogonal', 'chrono'] → the schemes, in order; unknown names are errors."""
    names = spec.split("+") if isinstance(spec, str) else list(spec)
    if not names or any(not isinstance(n, str) for n in names):
        raise ValueError(f"init spec must be a name or names joined by '+', got {spec!r}")
    schemes = []
    for name in names:
        name = name.strip()
        if name not in SCHEMES:
            raise ValueError(f"unknown init {name!r}; choose from: {', '.join(SCHEMES)}")
        schemes.append(SCHEMES[name])
    return schemes


def resolve(cell: str, spec: str | Sequence[str]) -> str:
    """The spec as it runs on `cell`, joined by '+': 'default' is `torch_default` for a cell with a torch.nn
    class (its own initialisation: the same draw, so configs and stores written before 'default' existed keep
    their identity) and stays 'default' (the module's `reset_parameters`) for the others."""
    names = [s.name for s in parse_spec(spec)]
    if CELLS[cell].torch_module is not None:
        names = ["torch_default" if name == "default" else name for name in names]
    return "+".join(names)


def check_applicable(cell: str, spec: str | Sequence[str], **options) -> list[Scheme]:
    """Validate a spec for a cell and its options without touching any module; returns the schemes."""
    schemes = parse_spec(spec)
    for scheme in schemes:
        if cell not in scheme.cells:
            raise ValueError(
                f"init {scheme.name!r} does not apply to a {cell} module; it applies to: {', '.join(sorted(scheme.cells))}"
            )
    known = {o for s in schemes for o in s.options}
    for option in options:
        if option not in known:
            names = "+".join(s.name for s in schemes)
            accepted = ", ".join(sorted(known)) or "none"
            raise ValueError(f"init option {option!r} is not used by {names!r}; its options: {accepted}")
    for scheme in schemes:
        required = [
            n
            for n, p in inspect.signature(scheme.fn).parameters.items()
            if p.kind is p.KEYWORD_ONLY and p.default is p.empty and n not in options
        ]
        if required:
            raise ValueError(f"init {scheme.name!r} needs option {required[0]!r}")
    return schemes


def apply(module: nn.Module, spec: str | Sequence[str], *, seed: int | None = None, **options) -> nn.Module:
    """Apply one or more schemes in order, e.g. ``apply(lstm, "orthogonal+chrono", seed=0, t_max=200)``.

    **Arguments**: `module` an rnnlab or torch.nn RNN/LSTM/GRU; `spec` scheme names joined by '+';
    `seed` makes the draw reproducible (same seed, same weights) without touching the global RNG;
    `options` are passed to the schemes that take them (`gain`, `scale`, `value`, `t_max`, `input_std`,
    `rho`, `u_max`, `last_u_min`, `r_min`, `r_max`, `max_phase`).
    **Returns** the module, changed in place.
    """
    cell = cell_name(module)
    schemes = check_applicable(cell, resolve(cell, spec), **options)
    device = next(module.parameters()).device
    generator = None if seed is None else torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for scheme in schemes:
            kwargs = {k: v for k, v in options.items() if k in scheme.options}
            scheme.fn(module, generator=generator, **kwargs)
    return module
