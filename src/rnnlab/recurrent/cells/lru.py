"""The LRU's recurrence (Orvieto et al. 2023, "Resurrecting recurrent neural networks for long sequences"):
x_k = Λ x_{k−1} + γ ⊙ (B u_k), a complex diagonal linear recurrence, as one step in real numbers.

Why real numbers: every rnnlab state is a real tensor (B, S) (the engine's contract, the recorder's norms,
`jacobian_norms`' H×H Jacobians). A complex state x ∈ ℂᴺ is carried as the 2N real numbers h = [Re x; Im x],
and the step's Jacobian ∂h_k/∂h_{k−1} is then N 2×2 blocks [[a, −b], [b, a]] for λ = a + ib — a rotation by
arg λ scaled by |λ| — whose singular values are |λ| twice. So ‖∂L/∂h‖ of the real form is the complex
gradient's norm, and it decays by exactly |λ_j| per step in mode j.

Layout of the step's tensors (N complex features):
- ``h`` (B, 2N) = [Re x; Im x];  ``x_pre`` (B, 2N) = [Re; Im] of γ ⊙ (B u_k), the input term of the step;
- ``weight_hh`` (2N,) = [Re λ; Im λ] (the module computes λ = exp(−exp(ν) + i·exp(θ)) from its parameters).

This cell is the step-by-step reference (`rnnlab.LRU(..., scan=False)`); `rnnlab.LRU` runs it, or the parallel
scan (`lru_scan.py`), between its own input and output maps (C, D and the block around each layer), which the
engine's stack cannot hold — so the cell has no parameter layout of its own and no `Recurrent` module.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent.cells.base import Cell, Recurrence, StepGrads


def rotate(lam: Tensor, h: Tensor) -> Tensor:
    """λ ⊙ x in the real form: lam (2N,) [Re λ; Im λ], h (..., 2N) [Re x; Im x] → (..., 2N)."""
    n = lam.shape[-1] // 2
    a, b = lam[:n], lam[n:]
    re, im = h[..., :n], h[..., n:]
    return torch.cat([a * re - b * im, a * im + b * re], dim=-1)


def rotate_back(lam: Tensor, g: Tensor) -> Tensor:
    """conj(λ) ⊙ g in the real form: the transpose of `rotate`'s 2×2 blocks, which carries a gradient back."""
    n = lam.shape[-1] // 2
    a, b = lam[:n], lam[n:]
    re, im = g[..., :n], g[..., n:]
    return torch.cat([a * re + b * im, a * im - b * re], dim=-1)


class LRUCell(Cell):
    """One LRU step in real form: h_k = rotate(λ, h_{k−1}) + x_pre_k, i.e. x_k = λ ⊙ x_{k−1} + γ ⊙ (B u_k).

    Backward: ∂L/∂x_pre_k = ∂L/∂h_k, and ∂L/∂h_{k−1} = rotate_back(λ, ∂L/∂h_k) — conj(λ) ⊙ ∂L/∂x_k."""

    name = "lru"
    gates = 2  # the real and imaginary halves of the state
    recurrence = Recurrence.DIAGONAL  # element-wise in ℂ: diag(λ), a 2×2 block per mode in real numbers
    recurrent_bias = False

    def parameter_names(self, bias: bool) -> tuple[str, ...]:
        raise ValueError(
            "cell 'lru' runs only inside rnnlab.LRU (its parameters ν, θ, γ, B, C, D and the block between "
            "layers are not a table cell's weight_ih/weight_hh); build it with rnnlab.LRU or make_recurrent('lru', …)"
        )

    def step(self, x_pre, h, c, weight_hh, bias_h):
        h_new = rotate(weight_hh, h) + x_pre  # (B, 2N)
        return h_new, None, None

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        return StepGrads(dh, dh, None, None, None)

    def previous_state_grad(self, grads: StepGrads, weight_hh: Tensor | None) -> Tensor:
        return rotate_back(weight_hh, grads.d_h_pre)  # conj(λ) ⊙ ∂L/∂x_k, not the real diagonal's u ⊙
