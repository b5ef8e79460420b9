"""Cells whose recurrence is element-wise: each unit sees only its own previous state, so ∂h_t/∂h_{t−1} is
diagonal and its magnitude alone sets how far back the gradient reaches.

- IndRNN (Li et al. 2018, github Sunnydreamrain/IndRNN_pytorch): h_t = ReLU(W x_t + u ⊙ h_{t−1} + b), a
  vector u in ``weight_hh`` (H,) (`Recurrence.DIAGONAL`).
- minGRU and minLSTM (Feng et al. 2024, "Were RNNs all we needed?", github BorealisAI/minRNNs): the gates
  depend on x_t only, so h_t = a_t ⊙ h_{t−1} + b_t is a first-order linear recurrence with coefficients
  computed from the input (`Recurrence.NONE`: no recurrent weight). Their candidate state is h̃_t = g(·) with
  the authors' g(k) = k + ½ for k ≥ 0, σ(k) for k < 0 (continuous and positive, which their log-space scan
  needs; rnnlab's chunked scan, `scan.py`, would not).

Layouts follow the authors' code: minGRU's one input projection is (hidden, gate) chunked in that order
(``to_hidden_and_gate``), minLSTM's (hidden, forget, input); one bias each.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent.cells.base import Cell, Recurrence, StepGrads


def g(k: Tensor) -> Tensor:
    """Feng et al.'s candidate nonlinearity: k + ½ for k ≥ 0, σ(k) below (continuous at 0, always > 0)."""
    return torch.where(k >= 0, k + 0.5, torch.sigmoid(k))


def g_and_derivative(k: Tensor) -> tuple[Tensor, Tensor]:
    """g(k) and g′(k): 1 for k ≥ 0, σ′(k) = σ(1 − σ) below. From k itself, not from g's value: g jumps in slope
    at 0, and σ(k) rounds to ½ for tiny negative k, where g's value could not tell the two branches apart."""
    s = torch.sigmoid(k)
    return torch.where(k >= 0, k + 0.5, s), torch.where(k >= 0, torch.ones_like(k), s * (1 - s))


class IndRNNCell(Cell):
    """IndRNN (Li et al. 2018): h_t = ReLU(x_t W_ihᵀ + b_ih + u ⊙ h_{t−1}), u = ``weight_hh`` (H,).

    ∂h_t/∂h_{t−1} = diag(u ⊙ 1[h_t > 0]): while a unit is active its gradient scales by |u_j| per step, which
    is why the paper bounds |u| (`rnnlab.IndRNN`'s `recurrent_max_abs`)."""

    name = "indrnn"
    gates = 1
    native_kind = 5  # _ext/kernels/rnn.cpp with u: the whole step is pointwise, no matrix product
    recurrence = Recurrence.DIAGONAL
    recurrent_bias = False  # the paper's one bias b (the official code's input Linear's)

    def step(self, x_pre, h, c, weight_hh, bias_h):
        h_new = torch.relu(x_pre + weight_hh * h)  # (B, H)
        return h_new, None, h_new

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        d_pre = dh * (saved > 0)  # (..., H) ReLU′
        return StepGrads(d_pre, d_pre, None, None, None)


class MinGRUCell(Cell):
    """minGRU (Feng et al. 2024): from x_t only,
    z_t = σ(k_z),  h̃_t = g(k_h),  (k_h, k_z) = x_t W_ihᵀ + b_ih (blocks in that order)
    h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t.

    ∂h_t/∂h_{t−1} = diag(1 − z_t): with a fixed gate z the per-step gradient decays exactly as (1 − z)^k."""

    name = "mingru"
    gates = 2
    recurrence = Recurrence.NONE
    recurrent_bias = False
    parallel_scan = True

    def step(self, x_pre, h, c, weight_hh, bias_h):
        hidden = h.shape[-1]
        h_tilde = g(x_pre[:, :hidden])  # (B, H) candidate
        z = torch.sigmoid(x_pre[:, hidden:])  # (B, H) update gate
        h_new = (1 - z) * h + z * h_tilde
        return h_new, None, torch.cat([x_pre[:, :hidden], z], dim=1)  # saved (B, 2H): k_h and z

    def coefficients(self, x_pre):
        hidden = x_pre.shape[-1] // 2
        k_h, z = x_pre[..., :hidden], torch.sigmoid(x_pre[..., hidden:])  # (T, B, H) each
        return 1 - z, z * g(k_h), torch.cat([k_h, z], dim=-1)  # a, b as `step` computes them; saved as it saves

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        hidden = h_prev.shape[-1]
        k_h, z = saved[..., :hidden], saved[..., hidden:]  # (..., H) each: one step, or all T (scan.py)
        h_tilde, g_prime = g_and_derivative(k_h)
        d_kh = dh * z * g_prime
        d_kz = dh * (h_tilde - h_prev) * z * (1 - z)
        d_pre = torch.cat([d_kh, d_kz], dim=-1)  # (..., 2H)
        return StepGrads(d_pre, None, dh * (1 - z), None, None)


class MinLSTMCell(Cell):
    """minLSTM (Feng et al. 2024): from x_t only,
    f_t = σ(k_f),  i_t = σ(k_i),  h̃_t = g(k_h),  (k_h, k_f, k_i) = x_t W_ihᵀ + b_ih (blocks in that order)
    f′_t, i′_t = f_t / (f_t + i_t), i_t / (f_t + i_t)   (normalised; the code's use_coeff_norm)
    h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t.

    `normalized=False` (the cell 'minlstm_unnormalized') keeps f_t and i_t as they are, the code's
    use_coeff_norm=False."""

    gates = 3
    recurrence = Recurrence.NONE
    recurrent_bias = False
    parallel_scan = True

    def __init__(self, normalized: bool = True):
        self.normalized = normalized
        self.name = "minlstm" if normalized else "minlstm_unnormalized"

    def _coefficients(self, f: Tensor, i: Tensor) -> tuple[Tensor, Tensor]:
        if not self.normalized:
            return f, i
        total = f + i
        return f / total, i / total

    def step(self, x_pre, h, c, weight_hh, bias_h):
        hidden = h.shape[-1]
        h_tilde = g(x_pre[:, :hidden])  # (B, H)
        f, i = torch.sigmoid(x_pre[:, hidden : 2 * hidden]), torch.sigmoid(x_pre[:, 2 * hidden :])
        f_n, i_n = self._coefficients(f, i)
        h_new = f_n * h + i_n * h_tilde
        return h_new, None, torch.cat([x_pre[:, :hidden], f, i], dim=1)  # saved (B, 3H): k_h, f, i

    def coefficients(self, x_pre):
        hidden = x_pre.shape[-1] // 3
        k_h = x_pre[..., :hidden]  # (T, B, H)
        f, i = torch.sigmoid(x_pre[..., hidden : 2 * hidden]), torch.sigmoid(x_pre[..., 2 * hidden :])
        f_n, i_n = self._coefficients(f, i)
        return f_n, i_n * g(k_h), torch.cat([k_h, f, i], dim=-1)  # a, b as `step` computes them; saved as it saves

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        hidden = h_prev.shape[-1]
        k_h, f, i = saved[..., :hidden], saved[..., hidden : 2 * hidden], saved[..., 2 * hidden :]
        h_tilde, g_prime = g_and_derivative(k_h)
        f_n, i_n = self._coefficients(f, i)
        d_fn, d_in = dh * h_prev, dh * h_tilde  # gradients of f′ and i′
        if self.normalized:  # f′ = f/(f+i): ∂f′/∂f = i/s², ∂f′/∂i = −f/s², and i′ = 1 − f′
            scale = (d_fn - d_in) / (f + i) ** 2
            d_f, d_i = scale * i, -scale * f
        else:
            d_f, d_i = d_fn, d_in
        d_kh = dh * i_n * g_prime
        d_pre = torch.cat([d_kh, d_f * f * (1 - f), d_i * i * (1 - i)], dim=-1)  # (..., 3H)
        return StepGrads(d_pre, None, dh * f_n, None, None)
