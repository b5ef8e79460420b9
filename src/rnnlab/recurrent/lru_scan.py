"""The LRU's recurrence over all T steps at once: x_t = λ ⊙ x_{t−1} + b_t with one complex λ per mode, forward
by a parallel scan and backward by the same scan reversed in time with conj(λ) — or, as the checked reference,
step by step through `LRUCell` (`rnnlab.LRU(..., scan=False)`).

The scan (`diagonal_scan`) is Hillis & Steele's doubling scan for a time-invariant λ: after pass k every x_t holds
Σ_{j<2^{k+1}} λ^j b_{t−j}, by one shifted multiply-add with λ^{2^k}; ⌈log₂ T⌉ passes in all. (scan.py's
chunked scan writes into its output, which autograd cannot differentiate, and the backward here must be
differentiable.) It needs no division by powers of λ
(x_t = λ^t Σ λ^{−s} b_s overflows once |λ|^{−s} does): every factor it multiplies has modulus ≤ 1 when |λ| ≤ 1.

Both backwards are written with differentiable ops, so a backward with create_graph=True (gradient penalties,
`gradgradcheck`) differentiates them. Backward: ∂L/∂x_t = d_t + conj(λ) ⊙ ∂L/∂x_{t+1} (d_t what reaches x_t from outside the recurrence) is the same
recurrence run backwards, so ∂L/∂x_t of every step comes out whole — which is what gradient recording reads —
and then ∂L/∂b_t = ∂L/∂x_t, ∂L/∂x_{−1} = conj(λ) ⊙ ∂L/∂x_0, ∂L/∂λ = Σ_{t,batch} ∂L/∂x_t ⊙ conj(x_{t−1}).
(PyTorch's convention: the gradient of a complex z = a + ib is ∂L/∂a + i ∂L/∂b, which is what the real form
[Re; Im] of the states holds.)
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent.cells.lru import LRUCell, rotate
from rnnlab.recurrent.recorder import row_norms


def to_complex(h: Tensor) -> Tensor:
    """(..., 2N) real [Re; Im] → (..., N) complex."""
    n = h.shape[-1] // 2
    return torch.complex(h[..., :n], h[..., n:])


def to_real(x: Tensor) -> Tensor:
    """(..., N) complex → (..., 2N) real [Re; Im]."""
    return torch.cat([x.real, x.imag], dim=-1)


def diagonal_scan(lam: Tensor, b: Tensor) -> Tensor:
    """x_t = lam ⊙ x_{t−1} + b_t along dim 0 from x_{−1} = 0: lam (N,) complex, b (T, …, N) complex → (T, …, N)."""
    x = b
    power, shift, steps = lam, 1, b.shape[0]
    while shift < steps:  # before this pass x_t = Σ_{j<shift} λ^j b_{t−j}; after it, Σ_{j<2·shift}
        x = torch.cat([x[:shift], x[shift:] + power * x[:-shift]])
        power, shift = power * power, 2 * shift
    return x


class LRURecurrence(torch.autograd.Function):
    """apply(scan, part, lam (2N,), x_pre (T, B, 2N), h0 (B, 2N)) → hs (T, B, 2N), all in the real form
    [Re; Im] (`cells/lru.py`). `part` (a recorder's part, or None) receives ‖∂L/∂x_t‖ (T, B) of every step
    — the norm of the complex gradient, the same as the real form's — and, if it keeps vectors, ∂L/∂h_t
    (T, B, 2N)."""

    @staticmethod
    def forward(ctx, scan: bool, part, lam: Tensor, x_pre: Tensor, h0: Tensor) -> Tensor:
        if scan:
            b = to_complex(x_pre)  # (T, B, N)
            lam_c = to_complex(lam)  # (N,)
            b[0] = b[0] + lam_c * to_complex(h0)  # the initial state enters as part of the first input
            hs = to_real(diagonal_scan(lam_c, b))  # (T, B, 2N)
        else:
            hs = _sequential(lam, x_pre, h0)
        ctx.scan, ctx.part = scan, part
        ctx.save_for_backward(lam, h0, hs)
        return hs

    @staticmethod
    def backward(ctx, d_hs: Tensor):
        lam, h0, hs = ctx.saved_tensors
        if ctx.scan:
            lam_c = to_complex(lam)
            d_x = to_real(diagonal_scan(lam_c.conj(), to_complex(d_hs).flip(0)).flip(0))  # (T, B, 2N) ∂L/∂h_t
        else:
            d_x = _sequential_backward(lam, d_hs)
        previous = torch.cat([h0.unsqueeze(0), hs[:-1]])  # (T, B, 2N) h_{t−1}
        d_lam = to_real((to_complex(d_x) * to_complex(previous).conj()).sum(dim=(0, 1)))  # (2N,)
        d_h0 = _CELL.previous_state_grad(_CELL.step_backward(d_x[0], None, None, h0, None), lam)  # (B, 2N)
        if ctx.part is not None:
            ctx.part.add_backward("", [(row_norms(d_x), None, d_x.clone() if ctx.part.keep_vectors else None)])
        return None, None, d_lam, d_x, d_h0


_CELL = LRUCell()


def _sequential(lam: Tensor, x_pre: Tensor, h0: Tensor) -> Tensor:
    """The reference forward: `LRUCell.step` T times. → hs (T, B, 2N)."""
    hs = x_pre.new_empty(x_pre.shape)
    h = h0
    for t in range(x_pre.shape[0]):
        h, _, _ = _CELL.step(x_pre[t], h, None, lam, None)
        hs[t] = h
    return hs


def _sequential_backward(lam: Tensor, d_hs: Tensor) -> Tensor:
    """The reference backward: ∂L/∂h_t for t = T−1 … 0 by `LRUCell.step_backward` and `previous_state_grad`.
    Out of place (a list, stacked), so that a backward with create_graph=True can differentiate it."""
    d_x = []
    carried = torch.zeros_like(d_hs[0])
    for t in range(d_hs.shape[0] - 1, -1, -1):
        d_x.append(carried + d_hs[t])
        carried = _CELL.previous_state_grad(_CELL.step_backward(d_x[-1], None, None, None, None), lam)
    return torch.stack(d_x[::-1])


def run_recurrence(lam: Tensor, x_pre: Tensor, h0: Tensor, *, scan: bool = True, part=None) -> Tensor:
    """One LRU layer's states h_t = rotate(λ, h_{t−1}) + x_pre_t (real form): lam (2N,), x_pre (T, B, 2N), h0
    (B, 2N) → (T, B, 2N), by the scan or the step-by-step loop, with the backward described above."""
    return LRURecurrence.apply(scan, part, lam, x_pre, h0)


__all__ = ["LRURecurrence", "diagonal_scan", "rotate", "run_recurrence", "to_complex", "to_real"]
