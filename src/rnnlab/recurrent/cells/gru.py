"""The GRU cell (gate order r, z, n, as torch.nn.GRU): one step and its hand-written backward."""

from __future__ import annotations

import torch

from rnnlab.recurrent.cells.base import Cell, StepGrads


class GRUCell(Cell):
    """GRU (Cho et al. 2014), PyTorch's equations and gate order:

    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr);  z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn));  h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

    Because r multiplies the recurrent part of n only, the recurrent bias cannot be folded into the input
    projection: it is added at every step.
    """

    name = "gru"
    gates = 3
    separate_recurrent_grad = True
    torch_module = "GRU"
    native_kind = 4

    def split_bias(self, bias_ih, bias_hh):
        return bias_ih, bias_hh

    def step(self, x_pre, h, c, weight_hh, bias_h):
        hidden = h.shape[-1]
        h_pre = h @ weight_hh.t() if bias_h is None else torch.addmm(bias_h, h, weight_hh.t())  # (B, 3H)
        rz = torch.sigmoid(x_pre[:, : 2 * hidden] + h_pre[:, : 2 * hidden])
        r, z = rz[:, :hidden], rz[:, hidden:]
        h_n = h_pre[:, 2 * hidden :]
        n = torch.tanh(x_pre[:, 2 * hidden :] + r * h_n)
        h_new = n + z * (h - n)
        # Saved: (r, z, n) as one (B, 3H) tensor, and the recurrent part of n before the reset gate.
        return h_new, None, (torch.cat([rz, n], dim=1), h_n)

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        rzn, h_n = saved
        hidden = h_n.shape[-1]
        r, z, n = rzn[:, :hidden], rzn[:, hidden : 2 * hidden], rzn[:, 2 * hidden :]
        d_n = dh * (1 - z) * (1 - n * n)  # (..., H) gradient of n's pre-activation
        d_r = d_n * h_n * r * (1 - r)
        d_z = dh * (h_prev - n) * z * (1 - z)
        d_x_pre = torch.cat([d_r, d_z, d_n], dim=-1)  # (..., 3H)
        d_h_pre = torch.cat([d_r, d_z, d_n * r], dim=-1)  # (..., 3H)
        return StepGrads(d_x_pre, d_h_pre, dh * z, None, None)
