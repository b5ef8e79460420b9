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
        o = acts[..., 3 * tanh_c.shape[-1] :]
        dc_total = dc + dh * o * (1 - tanh_c * tanh_c)  # (..., H) ∂L/∂c_t through h_t and through c_{t+1}
        return _through_the_gates(acts, dc_total, dh * tanh_c * o * (1 - o), c_prev)


def _through_the_gates(acts, dc_total, d_o, c_prev) -> StepGrads:
    """An LSTM step's gradients from ∂L/∂c_t (all paths) and the output gate's pre-activation gradient d_o:
    i, f, g through c_t = f ⊙ c_{t-1} + i ⊙ g; `acts` the activated gates (i, f, g, o)."""
    hidden = dc_total.shape[-1]
    i, f, g = acts[..., :hidden], acts[..., hidden : 2 * hidden], acts[..., 2 * hidden : 3 * hidden]
    d_i = dc_total * g * i * (1 - i)
    d_f = dc_total * c_prev * f * (1 - f)
    d_g = dc_total * i * (1 - g * g)
    d_pre = torch.cat([d_i, d_f, d_g, d_o], dim=-1)  # (..., 4H)
    return StepGrads(d_pre, d_pre, None, dc_total * f, dc_total)


class OutputPeepholeLSTMCell(LSTMCell):
    """The LSTM of Arjovsky, Shah & Bengio's code (amarshah/complex_RNN, models.py `LSTM`), the uRNN paper's
    baseline: torch.nn's LSTM plus a peephole from the *new* cell state into the output gate through a full
    matrix V_o (not Gers & Schmidhuber's diagonal peepholes into every gate):

    i, f, g = σ(·), σ(·), tanh(·) of x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh (their blocks);  c_t = f ⊙ c_{t-1} + i ⊙ g
    o = σ(x_t W_ioᵀ + b_io + h_{t-1} W_hoᵀ + b_ho + c_t V_oᵀ);   h_t = o ⊙ tanh(c_t)

    ``weight_hh`` is (5H, H): torch.nn's four gate blocks (i, f, g, o) and V_o below them, so the parameters
    are an LSTM's with one more (H, H) block (a Glorot-uniform init draws it as one more block, as their code
    does). With V_o = 0 the cell is torch.nn's LSTM. V_o is applied to c_t, which exists only inside the step,
    so W_hh's gradient is the engine's product d_preᵀ · h_{t−1} for the gate blocks and Σ_t d_oᵀ · c_t for V_o
    (`recurrent_weight_grad`). Its compiled kernel (`_ext/kernels/lstm_peephole.cpp`) splits each step's
    pointwise work around the second product; this step stays the reference it is tested against."""

    name = "lstm_peephole_out"
    torch_module = None
    native_kind = 6

    def parameter_shape(self, name, hidden, layer_input, state):
        if name == "weight_hh":
            return (5 * hidden, state)  # [W_hi; W_hf; W_hg; W_ho; V_o]
        return super().parameter_shape(name, hidden, layer_input, state)

    def step(self, x_pre, h, c, weight_hh, bias_h):
        hidden = c.shape[-1]
        gates, peephole = weight_hh[: 4 * hidden], weight_hh[4 * hidden :]
        pre = torch.addmm(x_pre, h, gates.t())  # (B, 4H), the output gate's without its peephole term
        i, f = torch.sigmoid(pre[:, :hidden]), torch.sigmoid(pre[:, hidden : 2 * hidden])
        g = torch.tanh(pre[:, 2 * hidden : 3 * hidden])
        c_new = f * c + i * g
        o = torch.sigmoid(torch.addmm(pre[:, 3 * hidden :], c_new, peephole.t()))
        tanh_c = torch.tanh(c_new)
        h_new = o * tanh_c
        # Saved: the gates and tanh(c_t), as the LSTM's, and V_o itself (`saved_weights`) — step_backward needs it
        # (∂o/∂c_t) and is handed only what the step saved; a reference, not a copy.
        return h_new, c_new, (torch.cat([i, f, g, o], dim=1), tanh_c, *self.saved_weights(weight_hh))

    def saved_weights(self, weight_hh):
        return (weight_hh[4 * weight_hh.shape[1] :],)

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        acts, tanh_c, peephole = saved
        o = acts[..., 3 * tanh_c.shape[-1] :]
        d_o = dh * tanh_c * o * (1 - o)
        # ∂L/∂c_t: from c_{t+1}, through h_t = o ⊙ tanh(c_t), and through o's peephole c_t V_oᵀ
        dc_total = dc + dh * o * (1 - tanh_c * tanh_c) + d_o @ peephole
        return _through_the_gates(acts, dc_total, d_o, c_prev)

    def previous_state_grad(self, grads, weight_hh):
        return grads.d_h_pre @ weight_hh[: grads.d_h_pre.shape[-1]]  # back through the gate blocks only

    def recurrent_blocks(self, weight_hh):
        return super().recurrent_blocks(weight_hh[: 4 * weight_hh.shape[1]])  # the four gates' (H, H) blocks

    def recurrent_weight_grad(self, grad, d_pre, hs, cs):
        hidden = cs.shape[-1]
        d_o = d_pre[..., 3 * hidden :].reshape(-1, hidden)  # (T·B, H)
        return torch.cat([grad, d_o.t() @ cs[1:].reshape(-1, hidden)])  # V_o's: Σ_t d_oᵀ · c_t
