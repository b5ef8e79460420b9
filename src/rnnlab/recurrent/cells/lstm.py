"""The LSTM cell (gate order i, f, g, o, as torch.nn.LSTM): one step and its hand-written backward."""

from __future__ import annotations

import torch

from rnnlab.recurrent.cells.base import Cell, StepGrads


class LSTMCell(Cell):
    """LSTM (Hochreiter & Schmidhuber 1997, with forget gate), PyTorch's equations and gate order:

    i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh
    c_t = f ⊙ c_{t-1} + i ⊙ g;   h_t = o ⊙ tanh(c_t)
    """

    name = "lstm"
    gates = 4
    has_cell_state = True
    torch_module = "LSTM"
    native_kind = 3

    def step(self, x_pre, h, c, weight_hh, bias_h):
        hidden = c.shape[-1]  # h has P < H features in a projected LSTM (projected.py); c always H
        pre = torch.addmm(x_pre, h, weight_hh.t())  # (B, 4H)
        ifo = torch.sigmoid(pre)
        g = torch.tanh(pre[:, 2 * hidden : 3 * hidden])
        i, f, o = ifo[:, :hidden], ifo[:, hidden : 2 * hidden], ifo[:, 3 * hidden :]
        c_new = f * c + i * g
        tanh_c = torch.tanh(c_new)
        h_new = o * tanh_c
        # Saved activations: (i, f, g, o) as one (B, 4H) tensor, and tanh(c_t) (B, H).
        acts = torch.cat([i, f, g, o], dim=1)
        return h_new, c_new, (acts, tanh_c)

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        acts, tanh_c = saved
        hidden = tanh_c.shape[-1]
        i, f = acts[:, :hidden], acts[:, hidden : 2 * hidden]
        g, o = acts[:, 2 * hidden : 3 * hidden], acts[:, 3 * hidden :]
        dc_total = dc + dh * o * (1 - tanh_c * tanh_c)  # (..., H) ∂L/∂c_t through h_t and through c_{t+1}
        d_i = dc_total * g * i * (1 - i)
        d_f = dc_total * c_prev * f * (1 - f)
        d_g = dc_total * i * (1 - g * g)
        d_o = dh * tanh_c * o * (1 - o)
        d_pre = torch.cat([d_i, d_f, d_g, d_o], dim=-1)  # (..., 4H)
        return StepGrads(d_pre, d_pre, None, dc_total * f, dc_total)
