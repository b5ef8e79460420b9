"""Gradient-flow diagnostics: how far back in time can a recurrent network learn from?

Everything here works on rnnlab modules and on the user's own `torch.nn.RNN/LSTM/GRU` (converted exactly
with `from_torch`). The analyses run on a copy in eval mode, so the user's module — its weights, its `.grad`
and its train/eval flag — is never touched.

- `gradient_flow(module, x)`: ‖∂L/∂h_t‖ for every step and layer, from the BPTT engine.
  `GradientFlow.decay_rate()` fits the per-step factor of the geometric decay; `horizon` (an int, like a training
  snapshot's and a monitor row's; `horizon_at(threshold, layer)` for others) is the largest lag
  at which the gradient is still ≥ threshold × its value at lag 0.
- `jacobian_norms(module, x)`: the exact spectral norm and top singular values of ∂h_T/∂h_t for every t.
- `spectral_radius(module)`: the spectral radius of each recurrent gate block per layer.

"Lag" counts steps back from the last one: lag = T − 1 − t.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnlab.recurrent import init
from rnnlab.recurrent.cells import Recurrence, get_cell
from rnnlab.recurrent.convert import from_torch, make_recurrent
from rnnlab.recurrent.figures import draw_profile, label_profile_axes, mark_horizon, new_figure, profiles_figure
from rnnlab.recurrent.lru_module import LRU
from rnnlab.recurrent.modules import RecurrentBase
from rnnlab.recurrent.recording import record_gradients
from rnnlab.recurrent.validation import positive_int

#: `jacobian_norms` runs H gradient streams per sample and keeps T·H·H numbers per layer and sample.
MAX_JACOBIAN_HIDDEN = 512


@dataclass(frozen=True)
class DecayFit:
    """Least-squares fit of log‖∂L/∂h‖ = a + lag·log(rate) over the lags where the gradient is a normal
    positive float (zeros and denormals from underflow carry no information about the rate).

    rate: per-step factor (0.93 means −7 % per step; > 1 is an exploding gradient); 0.0 when the gradient is
    exactly zero one step back. r2: coefficient of determination of the fit in log space (1.0 when the
    decay is exactly geometric). lags: how many lags the fit used.
    """

    rate: float
    r2: float
    lags: int

    @property
    def half_life(self) -> float:
        """Steps for the gradient to halve (inf if it does not decay)."""
        if self.rate >= 1.0:
            return math.inf
        if self.rate <= 0.0:
            return 0.0
        return math.log(0.5) / math.log(self.rate)


@dataclass
class GradientFlow:
    """‖∂L/∂h_t‖₂ of one backward pass, for every layer and step.

    norms: (L, T) batch mean, in time order (t = 0 … T−1). cell_norms: the same for the LSTM cell state, else
    None. per_sample: (L, T, B). Use `profile(layer)` for the norms by lag.

    Bidirectional modules: this flow is the forward direction's and `reverse` the reverse direction's
    (`direction="reverse"`), also in original time order; the reverse direction's last step is t = 0, so its
    lag is t and `profile` does not flip it.
    """

    norms: Tensor
    per_sample: Tensor
    cell_norms: Tensor | None = None
    direction: str = "forward"  # or "reverse": the reverse direction of a bidirectional module
    reverse: GradientFlow | None = None  # the reverse direction of a bidirectional module, else None

    @property
    def num_steps(self) -> int:
        return self.norms.shape[1]

    def profile(self, layer: int = -1) -> Tensor:
        """(T,) ‖∂L/∂h‖ at lag 0, 1, …, T−1 for one layer (the top one by default)."""
        return self._by_lag(self.norms[layer])

    def _by_lag(self, row: Tensor) -> Tensor:
        """A (T,) row in time order → by lag from this direction's last step (T − 1, or 0 for reverse)."""
        return row if self.direction == "reverse" else row.flip(0)

    def decay_rate(self, layer: int = -1) -> DecayFit:
        """Fit the geometric decay of the profile of `layer`; see `DecayFit`."""
        return fit_decay(self.profile(layer))

    @property
    def horizon(self) -> int:
        """The top layer's horizon at the default threshold 1e-3 — an int, like the `horizon` of a training
        run's flow snapshot and of a monitor's row; `horizon_at` takes another threshold or layer."""
        return self.horizon_at()

    def horizon_at(self, threshold: float = 1e-3, layer: int = -1) -> int:
        """The largest lag at which ‖∂L/∂h‖ ≥ threshold × its value at lag 0: how far back this network can
        still learn from. T−1 means "at least the whole sequence"."""
        return horizon(self.profile(layer), threshold)

    def plot(self, layer: int = -1, threshold: float = 1e-3, title: str | None = None):
        """A matplotlib Figure: ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖ for an LSTM) of `layer` against lag, log scale, with
        the horizon at `threshold` marked and the fitted decay rate in the legend. Displays inline in Jupyter."""
        index = range(self.norms.shape[0])[layer]  # -1 → the top layer's number, for the labels
        fit, reach = self.decay_rate(layer), self.horizon_at(threshold, layer)
        fig = new_figure((7, 4.5))
        ax = fig.subplots()
        draw_profile(ax, self.profile(layer), f"‖∂L/∂h_t‖ (×{fit.rate:.3f} per step, r² {fit.r2:.2f})", "C0")
        if self.cell_norms is not None:
            draw_profile(ax, self._by_lag(self.cell_norms[layer]), "‖∂L/∂c_t‖ (LSTM cell state)", "C1", linestyle="--")
        mark_horizon(ax, reach, threshold, "C0")
        ax.set_title(
            title or f"layer {index}: the gradient against lag (horizon {reach} of {self.num_steps - 1} steps)"
        )
        label_profile_axes(ax)
        return fig


def fit_decay(profile: Tensor) -> DecayFit:
    """Fit log(profile[lag]) = a + lag·log(rate) on the lags with a normal, finite, positive value."""
    values = profile.detach().to(torch.float64).cpu()
    tiny = torch.finfo(profile.dtype).tiny if profile.dtype.is_floating_point else 0.0
    lags = torch.arange(len(values), dtype=torch.float64)
    usable = torch.isfinite(values) & (values >= tiny) & (values > 0)
    if usable.sum() < 2:
        # Nothing to fit: gone one step back (rate 0) or a single step.
        return DecayFit(rate=0.0, r2=0.0, lags=int(usable.sum()))
    x, y = lags[usable], values[usable].log()
    x_mean, y_mean = x.mean(), y.mean()
    sxx = ((x - x_mean) ** 2).sum()
    slope = ((x - x_mean) * (y - y_mean)).sum() / sxx
    residual = y - (y_mean + slope * (x - x_mean))
    ss_tot = ((y - y_mean) ** 2).sum()
    r2 = 1.0 if ss_tot == 0 else float(1 - (residual**2).sum() / ss_tot)
    return DecayFit(rate=float(slope.exp()), r2=r2, lags=int(usable.sum()))


def horizon(profile: Tensor, threshold: float = 1e-3) -> int:
    """Largest lag with profile[lag] ≥ threshold · profile[0] (0 when profile[0] is zero or not finite)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    values = profile.detach().to(torch.float64)
    reference = values[0]
    if not torch.isfinite(reference) or reference <= 0:
        return 0
    alive = torch.nonzero(values >= threshold * reference).flatten()
    return int(alive.max())


# ------------------------------------------------------------------------------------------------ analyses


def _analysis_copy(module: nn.Module) -> RecurrentBase:
    """An rnnlab copy of `module` in eval mode (no dropout), so the user's module is never touched."""
    if isinstance(module, RecurrentBase):
        copied = copy.deepcopy(module)
    elif isinstance(module, nn.RNN | nn.LSTM | nn.GRU):
        copied = from_torch(module)
    else:
        raise TypeError(
            f"expected an rnnlab or torch.nn RNN/LSTM/GRU module, got {type(module).__name__}; "
            "for a model that contains one, pass the recurrent module itself"
        )
    copied.eval()
    for p in copied.parameters():
        p.requires_grad_(False)
    return copied


def _zero_hx(module: RecurrentBase, x: Tensor, batch: int) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """A zero initial state that requires grad (differentiating the loss with respect to it alone runs the
    engine's backward without writing any .grad), and the hx to pass: (h0, c0) for an LSTM, whose c0 has
    hidden_size features and h0 state_size (proj_size with a projection)."""
    rows = module.num_layers * module.num_directions
    h0 = x.new_zeros((rows, batch, module.state_size)).requires_grad_()
    if not module.cell.has_cell_state:
        return h0, h0
    return h0, (h0, x.new_zeros((rows, batch, module.hidden_size)))


def _batch_size(module: RecurrentBase, x: Tensor) -> int:
    if x.dim() == 2:
        return 1
    return x.shape[0] if module.batch_first else x.shape[1]


def gradient_flow(
    module: nn.Module,
    x: Tensor,
    loss_fn: Callable[[Tensor], Tensor] | None = None,
    seed: int = 0,
    hx: Tensor | tuple[Tensor, Tensor] | None = None,
) -> GradientFlow:
    """‖∂L/∂h_t‖ for every step and layer of `module` on input `x`.

    **Arguments**: `x` as the module expects it ((T, B, I), or (B, T, I) with batch_first, or unbatched);
    `loss_fn(output)` receives the module's output (same layout) and returns a scalar. By default the loss is
    a fixed random unit vector v (drawn from `seed`) dotted with each sample's last output, summed over the
    batch: then ‖∂L/∂h‖ is exactly 1 at lag 0 and the profile describes the network, not a task. For a
    bidirectional module each direction gets its own unit vector on its own last output (the reverse
    direction's is at t = 0); the reverse direction's flow is `GradientFlow.reverse`. `hx`: the initial state
    (as the module takes it; default zeros), e.g. a model's learned one.
    **Returns** a `GradientFlow`.
    """
    if isinstance(x, nn.utils.rnn.PackedSequence):
        raise TypeError(
            "gradient_flow: PackedSequence input is not supported (a profile by lag needs sequences of one "
            "length); pass a padded tensor of equal-length sequences, or use rnnlab.record_gradients on your "
            "model, whose per_sample norms cover each sequence's own length"
        )
    copied = _analysis_copy(module)
    batch = _batch_size(copied, x)
    if hx is None:
        h0, hx = _zero_hx(copied, x, batch)
        if x.dim() == 2:
            hx = tuple(h.squeeze(1) for h in hx) if isinstance(hx, tuple) else hx.squeeze(1)
    else:  # a copy that requires grad, for the same reason as the zeros
        h0 = (hx[0] if isinstance(hx, tuple) else hx).detach().clone().requires_grad_()
        hx = (h0, hx[1].detach()) if isinstance(hx, tuple) else h0
    with record_gradients(copied, per_sample=True) as recorder:
        output, _ = copied(x, hx)
        if loss_fn is None:
            gen = torch.Generator().manual_seed(seed)
            size = output.shape[-1] // copied.num_directions  # the state size, or an LRU's model width H
            v = torch.randn(size, generator=gen, dtype=torch.float64)
            v = (v / v.norm()).to(output)
            time_dim = -2 if copied.batch_first or x.dim() == 2 else 0
            last = output.select(time_dim, -1)[..., :size]  # (B, H) the forward direction's
            loss = (last @ v).sum()
            if copied.bidirectional:
                v_rev = torch.randn(size, generator=gen, dtype=torch.float64)
                v_rev = (v_rev / v_rev.norm()).to(output)
                first = output.select(time_dim, 0)[..., size:]  # the reverse direction's last
                loss = loss + (first @ v_rev).sum()
        else:
            loss = loss_fn(output)
            if not isinstance(loss, Tensor) or loss.numel() != 1:
                raise ValueError("loss_fn must return a scalar tensor")
        torch.autograd.grad(loss, h0)  # runs the engine's backward; no .grad is written anywhere
    record = recorder.last
    reverse = None
    if record.reverse is not None:
        rev = record.reverse
        reverse = GradientFlow(rev.norms, rev.per_sample, rev.cell_norms, direction="reverse")
    return GradientFlow(norms=record.norms, per_sample=record.per_sample, cell_norms=record.cell_norms,
                        reverse=reverse)  # fmt: skip


@dataclass
class JacobianNorms:
    """Singular values of ∂h_T/∂h_t, where h_T is the top layer's last state and h_t the state of layer l
    at step t (t = 0 … T−1; at t = T−1 of the top layer the Jacobian is the identity).

    singular_values: (L, T, B, k) the top k per sample; spectral: (L, T) batch mean of the largest one.
    """

    singular_values: Tensor
    spectral: Tensor

    def profile(self, layer: int = -1) -> Tensor:
        """(T,) spectral norm at lag 0 … T−1 for `layer`."""
        return self.spectral[layer].flip(0)


def jacobian_norms(module: nn.Module, x: Tensor, top_k: int = 5) -> JacobianNorms:
    """Exact singular values of ∂h_T/∂h_t for every step t and layer, per sample.

    The full H×H Jacobian of every step comes from H gradient streams per sample (each stream seeds one unit
    of h_T), so the cost grows as B·H times a backward pass and the memory as L·T·B·H²; hidden sizes above
    `MAX_JACOBIAN_HIDDEN` (512) are refused — use `gradient_flow` there.
    """
    copied = _analysis_copy(module)
    if copied.bidirectional:
        raise NotImplementedError(
            "jacobian_norms: bidirectional modules are not supported (h_T is the forward direction's state "
            "only); use gradient_flow, which reports both directions"
        )
    hidden = copied.state_size  # the units of h_T: proj_size for a projected LSTM
    if hidden > MAX_JACOBIAN_HIDDEN:
        raise ValueError(
            f"jacobian_norms: hidden_size {hidden} is above the limit {MAX_JACOBIAN_HIDDEN} "
            "(it needs hidden_size backward streams per sample); use gradient_flow instead"
        )
    if x.dim() == 2:
        x = x.unsqueeze(0 if copied.batch_first else 1)
    if copied.batch_first:
        x = x.transpose(0, 1)
    copied.batch_first = False
    steps, batch, _ = x.shape
    # Replicate every sample H times: replica i of sample b back-propagates the unit vector e_i from h_T.
    x_rep = x.repeat_interleave(hidden, dim=1)  # (T, B·H, I)
    h0, hx = _zero_hx(copied, x_rep, batch * hidden)
    seeds = torch.eye(hidden, dtype=x.dtype, device=x.device).repeat(batch, 1)  # (B·H, H)
    with record_gradients(copied, keep_vectors=True) as recorder:
        _, h_n = copied(x_rep, hx)
        # h_T from h_n, the top layer's last state: the output's last step for torch.nn's cells, but not an
        # LRU's, whose output is Re(C x) + D u and whose state is [Re x; Im x].
        h_top = (h_n[0] if isinstance(h_n, tuple) else h_n)[-1]  # (B·H, H)
        loss = (h_top * seeds).sum()
        torch.autograd.grad(loss, h0)
    vectors = recorder.last.vectors  # (L, T, B·H, H): row i of ∂h_T/∂h_t per replica
    layers = vectors.shape[0]
    jac = vectors.reshape(layers, steps, batch, hidden, hidden)  # (L, T, B, H, H)
    sv = torch.linalg.svdvals(jac)[..., :top_k]  # (L, T, B, k)
    return JacobianNorms(singular_values=sv, spectral=sv[..., 0].mean(-1))


def spectral_radius(module: nn.Module) -> Tensor:
    """(L, G): the spectral radius (largest |eigenvalue|) of each (H, H) gate block of weight_hh per layer;
    (L, 2, G) for a bidirectional module: [:, 0] the forward direction, [:, 1] the reverse one.

    For a vanilla RNN G = 1 and this is the classic criterion: with a contracting nonlinearity the gradient
    must vanish when the radius is below 1 (Pascanu et al. 2013). For an LSTM with proj_size = P the state
    reaches each gate through W_hh_g W_hr (H, P)·(P, H), whose radius is reported. For an element-wise
    recurrence u ⊙ h (IndRNN) the matrix is diag(u), whose radius is max |u|; a cell whose coefficients come
    from x_t alone (minGRU, minLSTM) has no recurrent weight: G = 0 columns. An LRU's is max |λ| per layer (L, 1). For coRNN (G = 1)
    it is the radius of the step's Jacobian on (y, z) linearised at the origin (`CoRNNCell.recurrent_blocks`), Δt, γ, ε
    included."""
    if not isinstance(module, RecurrentBase | nn.RNN | nn.LSTM | nn.GRU):
        raise TypeError(f"expected an rnnlab or torch.nn RNN/LSTM/GRU module, got {type(module).__name__}")
    if isinstance(module, LRU):  # diag(λ) per layer, one block: its radius is max |λ|
        return module.eigenvalues().abs().amax(-1, keepdim=True)  # (L, 1)
    # A module's own cell: coRNN's linearised step depends on its Δt, γ, ε, which the table's row does not hold.
    cell = module.cell if isinstance(module, RecurrentBase) else get_cell(init.cell_name(module))
    gates = cell.gates if cell.recurrence is not Recurrence.NONE else 0

    def radius(name: str) -> Tensor:
        if gates == 0:
            return module.weight_ih_l0.new_empty((0,)).detach()
        w_hh = getattr(module, name).detach()
        if cell.recurrence is Recurrence.DIAGONAL:
            return w_hh.abs().reshape(gates, -1).amax(-1)  # (G,) the eigenvalues of diag(u) are u's entries
        blocks = cell.recurrent_blocks(w_hh)  # (G, H, S) gate blocks (coRNN: its linearised step, (1, 2H, 2H))
        if getattr(module, "proj_size", 0):
            blocks = blocks @ getattr(module, name.replace("weight_hh", "weight_hr")).detach()  # (G, H, H)
        return torch.linalg.eigvals(blocks).abs().amax(-1)  # (G,)

    if module.bidirectional:
        return torch.stack(
            [
                torch.stack([radius(f"weight_hh_l{k}"), radius(f"weight_hh_l{k}_reverse")])
                for k in range(module.num_layers)
            ]
        )  # (L, 2, G)
    return torch.stack([radius(f"weight_hh_l{layer}") for layer in range(module.num_layers)])


# ------------------------------------------------------------------------------------------------ comparisons


@dataclass(frozen=True)
class ModelSpec:
    """A model to compare: a cell and an init spec, written ``cell[:init+init…]`` (e.g. 'lstm:chrono')."""

    cell: str
    init: str = "default"  # the module's own initialisation (torch.nn's for RNN/LSTM/GRU)

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        cell, _, init_spec = text.strip().partition(":")
        return cls(cell=cell, init=init_spec or "default")

    @property
    def label(self) -> str:
        return self.cell if self.init in ("default", "torch_default") else f"{self.cell}:{self.init}"

    def init_options(self, seq_len: int) -> dict:
        """Options the init spec needs from the experiment: chrono's t_max is the sequence length."""
        return {"t_max": seq_len} if "chrono" in self.init.split("+") else {}


@dataclass
class Comparison:
    """One model's gradient flow in a comparison."""

    spec: ModelSpec
    flow: GradientFlow
    radius: Tensor  # (L, G) spectral radius of the recurrent gate blocks

    def plot(self, layer: int = -1, threshold: float = 1e-3):
        """This model's `GradientFlow.plot`, titled with its name and spectral radius."""
        radius = ", ".join(f"{float(r):.2f}" for r in self.radius[layer])
        title = f"{self.spec.label}: the gradient against lag"
        if radius:  # a cell without a recurrent weight (minGRU) has no radius to show
            title += f" (spectral radius of W_hh blocks: {radius})"
        return self.flow.plot(layer=layer, threshold=threshold, title=title)


def plot_comparison(results: list[Comparison], threshold: float = 1e-3, layer: int = -1):
    """A matplotlib Figure: every model of `compare` on one axis, each profile divided by its value at lag 0
    (the horizon is relative to it, so the dashed threshold line meets each curve at its horizon)."""
    profiles = {
        f"{r.spec.label} (horizon {r.flow.horizon_at(threshold, layer)})": r.flow.profile(layer) for r in results
    }
    steps = results[0].flow.num_steps if results else 0
    return profiles_figure(profiles, f"The gradient against lag, untrained models, T = {steps}", threshold)


def compare(
    specs: list[ModelSpec],
    seq_len: int = 200,
    hidden_size: int = 128,
    input_size: int = 2,
    batch_size: int = 32,
    num_layers: int = 1,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> list[Comparison]:
    """The gradient flow of each model, untrained, on the same N(0, 1) inputs (T, B, I) drawn from `seed`.

    Each model is initialised with its spec from `seed` (chrono gets t_max = seq_len). All specs are
    validated before any work starts.
    """
    sizes = {"seq_len": seq_len, "hidden_size": hidden_size, "input_size": input_size, "batch_size": batch_size}
    for name, value in {**sizes, "num_layers": num_layers}.items():
        positive_int(value, name)
    for spec in specs:
        init.check_applicable(get_cell(spec.cell).name, spec.init, **spec.init_options(seq_len))
    x = torch.randn(seq_len, batch_size, input_size, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    results = []
    for spec in specs:
        torch.manual_seed(seed)
        module = make_recurrent(spec.cell, input_size, hidden_size, num_layers, dtype=dtype)
        init.apply(module, spec.init, seed=seed, **spec.init_options(seq_len))
        results.append(Comparison(spec=spec, flow=gradient_flow(module, x, seed=seed), radius=spectral_radius(module)))
    return results
