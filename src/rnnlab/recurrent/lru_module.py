"""`rnnlab.LRU`: the Linear Recurrent Unit of Orvieto et al. 2023 ("Resurrecting recurrent neural networks for
long sequences"), as the paper stacks it, constructed like `rnnlab.RNN` and returning (output, h_n).

One layer (the paper's appendix A; N complex state features, H model features):

    λ_j = exp(−exp(ν_j) + i·exp(θ_j))           (exponential parametrisation: |λ_j| = exp(−exp(ν_j)) < 1)
    x_k = λ ⊙ x_{k−1} + γ ⊙ (B u_k),  γ_j = exp(γ_log_j), drawn as √(1 − |λ_j|²) (input normalisation)
    y_k = Re(C x_k) + D ⊙ u_k                     (B (N, H), C (H, N) complex; D (H,) real)

The stack (the paper's Figure 1, as the public code of a co-author, NicolasZucchet/minimal-LRU, builds it):
a linear encoder I → H, then per layer the block u ← u + Dropout(GLU(Dropout(GELU(LRU(LayerNorm(u)))))), GLU(z)
= W₁z ⊙ σ(W₂z). **output** (T, B, H) is the last block's u — what a readout (or the paper's pooling and
decoder) reads. Layer norm before the recurrence (the paper's figure; its experiments also use batch norm,
left out here: its batch statistics would couple the samples whose gradients the diagnostics separate).

**The state** of layer k is x_k ∈ ℂᴺ, carried in real numbers as h = [Re x; Im x] (2N,) (`cells/lru.py` says
why): `hx` and `h_n` are (num_layers, B, 2N), `state_size` is 2N, and what `record_gradients`, the monitor and
`gradient_flow` record is ‖∂L/∂x_t‖ — the norm of the complex gradient, equal to that of its real and
imaginary parts together. `jacobian_norms` reads ∂x_T/∂x_t in the real form: 2×2 rotation-scale blocks, whose
singular values are |λ_j|^{T−t}, each twice.

The recurrence runs as a parallel scan (`lru_scan.py`, `scan=True`) or step by step through `LRUCell`
(`scan=False`, the reference); both record the gradient of every step. By default (`scan=None`) it runs
step by step on a CPU, where the loop was measured faster (a training step at T = 100–4096 took 0.9× down to
0.5× the scan's time, `benchmarks/results/lru.txt`: ⌈log₂ T⌉ passes over all T steps cost more than T
multiply-adds of one step each), and as the scan on any other device. Not here: truncation, bidirectional
and PackedSequence input, half precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnlab.recurrent.lru_scan import run_recurrence
from rnnlab.recurrent.modules import RecurrentBase, register_safe_globals
from rnnlab.recurrent.recorder import SplitRecording
from rnnlab.recurrent.validation import all_finite, check_input

#: The recurrence's parameters per layer, in the paper's names and order (each ``{name}_l{k}``).
LRU_PARAMETERS = ("nu_log", "theta_log", "gamma_log", "B_re", "B_im", "C_re", "C_im", "D")


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"LRU: {name} must be a finite number, got {value!r}")
    return float(value)


def check_ring(r_min, r_max, max_phase) -> tuple[float, float, float]:
    """The ring's bounds as floats, or a one-line ValueError: 0 ≤ r_min ≤ r_max ≤ 1, r_min < 1, max_phase > 0."""
    r_min, r_max, max_phase = _number(r_min, "r_min"), _number(r_max, "r_max"), _number(max_phase, "max_phase")
    if not (0.0 <= r_min <= r_max <= 1.0 and r_min < 1.0):
        raise ValueError(f"LRU: the ring needs 0 ≤ r_min ≤ r_max ≤ 1 and r_min < 1, got r_min={r_min}, r_max={r_max}")
    if max_phase <= 0:
        raise ValueError(f"LRU: max_phase must be > 0, got {max_phase}")
    return r_min, r_max, max_phase


class LRU(RecurrentBase):
    """The LRU stack (see the module doc). x (T, B, I) — (B, T, I) with batch_first, or (T, I) unbatched —
    → (output (T, B, H), h_n (L, B, 2N)).

    **Arguments** (besides `rnnlab.RNN`'s `input_size`, `hidden_size` = H, `num_layers`, `batch_first`;
    `bias` is the encoder's and the GLU's, the recurrence has none; `dropout` acts inside every block, as the
    paper's): `complex_size` N (default H); the ring initialisation |λ| ∈ [`r_min`, `r_max`], arg λ ∈
    [0, `max_phase`] — defaults the paper's pseudo-code's (0, 1, 6.28); its long-range runs use r_min = 0.9,
    r_max = 0.999 and max_phase = π/10 (PathX: 0.999, 0.9999); `scan` True: the parallel scan; False: the
    step-by-step loop; None (default): the loop on a CPU, where it is faster, the scan elsewhere.

    Parameters per layer k (the paper's names): ``nu_log_l{k}``, ``theta_log_l{k}``, ``gamma_log_l{k}`` (N,),
    ``B_re_l{k}``, ``B_im_l{k}`` (N, H), ``C_re_l{k}``, ``C_im_l{k}`` (H, N), ``D_l{k}`` (H,); submodules
    ``encoder`` (Linear I → H), ``norms[k]`` (LayerNorm H), ``glus[k]`` (Linear H → 2H: W₁ then W₂).
    Initialisation as the paper's: ν, θ from the ring, γ = √(1 − |λ|²), B ~ N(0, 1/(2H)) (Glorot-like for a
    complex matrix), C ~ N(0, 1/N), D ~ N(0, 1); the linear layers and the norm as torch.nn's defaults.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        complex_size: int | None = None,
        r_min: float = 0.0,
        r_max: float = 1.0,
        max_phase: float = 6.28,
        scan: bool | None = None,
        truncate: int | None = None,
    ):
        if bidirectional:
            raise ValueError("LRU: bidirectional=True is not supported (the paper's LRU is causal)")
        if truncate is not None:
            raise ValueError(f"LRU: truncate is not supported (the scan's backward is whole), got {truncate!r}")
        if scan is not None and not isinstance(scan, bool):
            raise TypeError(
                f"LRU: scan must be True, False or None (the loop on a CPU, the scan elsewhere), got {scan!r}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout < 1:
            raise ValueError(f"LRU: dropout must be a number in [0, 1), got {dropout!r}")
        if complex_size is not None and (isinstance(complex_size, bool) or not isinstance(complex_size, int) or complex_size < 1):  # fmt: skip
            raise ValueError(
                f"LRU: complex_size must be a positive integer or None (= hidden_size), got {complex_size!r}"
            )
        self.r_min, self.r_max, self.max_phase = check_ring(r_min, r_max, max_phase)
        self.complex_size = hidden_size if complex_size is None else complex_size
        self.scan = scan
        # dropout 0 to the base: its check warns that dropout acts only between layers, not so here.
        super().__init__("lru", input_size, hidden_size, num_layers, bias, batch_first, 0.0, False, 0, device, dtype)
        self.dropout = float(dropout)

    # ------------------------------------------------------------------------------------------ parameters

    def _register_weights(self, device, dtype) -> None:
        factory = {"device": device, "dtype": dtype}
        n, h = self.complex_size, self.hidden_size
        shapes = {"nu_log": (n,), "theta_log": (n,), "gamma_log": (n,), "B_re": (n, h), "B_im": (n, h),
                  "C_re": (h, n), "C_im": (h, n), "D": (h,)}  # fmt: skip
        for layer in range(self.num_layers):
            for kind in LRU_PARAMETERS:
                self.register_parameter(f"{kind}_l{layer}", nn.Parameter(torch.empty(shapes[kind], **factory)))
        self.encoder = nn.Linear(self.input_size, h, bias=self.bias, **factory)
        self.norms = nn.ModuleList(nn.LayerNorm(h, **factory) for _ in range(self.num_layers))
        self.glus = nn.ModuleList(nn.Linear(h, 2 * h, bias=self.bias, **factory) for _ in range(self.num_layers))

    @property
    def state_size(self) -> int:
        """Real numbers per layer in hx and h_n: 2N, the state x ∈ ℂᴺ as [Re x; Im x]."""
        return 2 * self.complex_size

    @property
    def weights_per_layer(self) -> int:
        return len(LRU_PARAMETERS)

    @property
    def _flat_weights_names(self) -> list[str]:
        return [f"{kind}_l{layer}" for layer in range(self.num_layers) for kind in LRU_PARAMETERS]

    def reset_parameters(self) -> None:
        """The paper's initialisation from the global RNG (`ring_init_`), and torch.nn's for the linear layers
        and the norms."""
        self.ring_init_()
        for module in (self.encoder, *self.norms, *self.glus):
            module.reset_parameters()

    @torch.no_grad()
    def ring_init_(self, *, generator: torch.Generator | None = None, r_min=None, r_max=None, max_phase=None):
        """Redraw every layer's ν, θ, γ, B, C, D as the paper's appendix A does: |λ|² ~ U(r_min², r_max²)
        (uniform on the ring's area), ν = log(−½ log |λ|²), θ = log(max_phase · U(0, 1)), γ = √(1 − |λ|²),
        B ~ N(0, 1/(2H)), C ~ N(0, 1/N), D ~ N(0, 1). Bounds default to the module's own. Drawn in float64."""
        r_min, r_max, max_phase = check_ring(
            self.r_min if r_min is None else r_min,
            self.r_max if r_max is None else r_max,
            self.max_phase if max_phase is None else max_phase,
        )
        n, h = self.complex_size, self.hidden_size
        device = self.nu_log_l0.device
        tiny = torch.finfo(torch.float64).tiny  # U(0, 1) may return 0, whose log is −inf

        def draw(*shape, normal=False):
            out = torch.empty(shape, dtype=torch.float64, device=device)
            return out.normal_(generator=generator) if normal else out.uniform_(generator=generator)

        for layer in range(self.num_layers):
            modulus_sq = (draw(n) * (r_max**2 - r_min**2) + r_min**2).clamp(min=tiny)  # |λ|²
            params = {
                "nu_log": torch.log(-0.5 * torch.log(modulus_sq)),
                "theta_log": torch.log(max_phase * draw(n).clamp(min=tiny)),
                "gamma_log": 0.5 * torch.log1p(-modulus_sq),  # log √(1 − |λ|²)
                "B_re": draw(n, h, normal=True) / math.sqrt(2 * h),
                "B_im": draw(n, h, normal=True) / math.sqrt(2 * h),
                "C_re": draw(h, n, normal=True) / math.sqrt(n),
                "C_im": draw(h, n, normal=True) / math.sqrt(n),
                "D": draw(h, normal=True),
            }
            for kind, value in params.items():
                getattr(self, f"{kind}_l{layer}").copy_(value)

    def eigenvalues(self) -> Tensor:
        """(L, N) complex: every layer's λ = exp(−exp(ν) + i·exp(θ)), detached."""
        with torch.no_grad():
            return torch.stack([torch.polar(*self._polar(k)) for k in range(self.num_layers)])

    def _polar(self, layer: int) -> tuple[Tensor, Tensor]:
        """(|λ|, arg λ) of one layer (N,) each, differentiable."""
        nu, theta = getattr(self, f"nu_log_l{layer}"), getattr(self, f"theta_log_l{layer}")
        return torch.exp(-torch.exp(nu)), torch.exp(theta)

    # ------------------------------------------------------------------------------------------ forward

    def forward(self, input: Tensor, hx: Tensor | None = None):
        """x (T, B, I) / (B, T, I) with batch_first / (T, I) unbatched; hx (L, B, 2N) or (L, 2N) unbatched,
        zeros when omitted → (output (T, B, H) in the input's layout, h_n (L, B, 2N))."""
        if isinstance(input, PackedSequence):
            raise TypeError("LRU: PackedSequence input is not supported; pass a padded tensor")
        if self.nu_log_l0.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"LRU: computes in float32 or float64, its parameters are {self.nu_log_l0.dtype}")
        x, batched = check_input(self, input)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        steps, batch = x.shape[:2]
        h0 = self._initial_state(hx, x, batched)  # (L, B, 2N)
        recorder, name = self._recording or (None, type(self).__name__)
        split = None if recorder is None else SplitRecording(recorder, name, self.num_layers, 1, steps, batch)
        u = self.encoder(x)  # (T, B, H)
        finals = []
        for layer in range(self.num_layers):
            part = None if split is None else split.part(layer, 0, None, False)
            y, states = self._layer(layer, self.norms[layer](u), h0[layer], part)  # (T, B, H), (T, B, 2N)
            z = F.dropout(F.gelu(y), self.dropout, self.training)
            w1z, w2z = self.glus[layer](z).chunk(2, dim=-1)  # (T, B, H) each
            u = u + F.dropout(w1z * torch.sigmoid(w2z), self.dropout, self.training)
            finals.append(states[-1])
        output, h_n = u, torch.stack(finals)
        if self.batch_first and batched:
            output = output.transpose(0, 1)
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
        return output, h_n

    def _layer(self, layer: int, v: Tensor, h0: Tensor, part) -> tuple[Tensor, Tensor]:
        """One LRU: v (T, B, H) → (y (T, B, H), the states h_t = [Re x_t; Im x_t] (T, B, 2N))."""
        p = {kind: getattr(self, f"{kind}_l{layer}") for kind in LRU_PARAMETERS}
        modulus, phase = self._polar(layer)
        lam = torch.cat([modulus * torch.cos(phase), modulus * torch.sin(phase)])  # (2N,) [Re λ; Im λ]
        gamma = torch.exp(p["gamma_log"])  # (N,)
        x_pre = torch.cat([(v @ p["B_re"].t()) * gamma, (v @ p["B_im"].t()) * gamma], dim=-1)  # (T, B, 2N) γ⊙Bu
        scan = self.scan if self.scan is not None else v.device.type != "cpu"
        states = run_recurrence(lam, x_pre, h0, scan=scan, part=part)  # (T, B, 2N)
        c_real = torch.cat([p["C_re"], -p["C_im"]], dim=1)  # (H, 2N): Re(C x) = C_re Re x − C_im Im x
        return states @ c_real.t() + p["D"] * v, states

    def _initial_state(self, hx, x: Tensor, batched: bool) -> Tensor:
        rows, batch, size = self.num_layers, x.shape[1], self.state_size
        if hx is None:
            return x.new_zeros((rows, batch, size))
        expected = (rows, batch, size) if batched else (rows, size)
        if not isinstance(hx, Tensor):
            raise TypeError(f"LRU: hx must be a torch.Tensor, got {type(hx).__name__}")
        if tuple(hx.shape) != expected:
            raise ValueError(
                f"LRU: hx has shape {tuple(hx.shape)}, expected {expected} (num_layers, batch, 2·complex_size): "
                "each layer's complex state as [Re; Im]"
            )
        if hx.dtype != x.dtype or hx.device != x.device:
            raise ValueError(f"LRU: hx is {hx.dtype} on {hx.device}, expected {x.dtype} on {x.device} as the input")
        if not all_finite(hx):
            raise ValueError("LRU: hx contains NaN or infinite values; expected finite numbers")
        return hx if batched else hx.unsqueeze(1)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, complex_size={self.complex_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        s += f", r_min={self.r_min}, r_max={self.r_max}, max_phase={self.max_phase}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        return s + ("" if self.scan is None else f", scan={self.scan}")


# The blocks' torch.nn layers too: a whole saved LRU holds them, and they are plain data holders as well.
register_safe_globals(LRU, nn.Linear, nn.LayerNorm, nn.ModuleList)
