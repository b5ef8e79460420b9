"""One step of each recurrent cell: the forward and its hand-written backward.

A cell knows nothing about time: the engine (`rnnlab.recurrent.engine`) owns the loop over steps, truncation and
gradient recording, and calls `step` / `step_backward` once per step.

Layout mirrors `torch.nn` exactly, so a state_dict is a plain copy:

- ``weight_ih``: (G·H, I), ``weight_hh``: (G·H, H), ``bias_ih`` / ``bias_hh``: (G·H,)
- gate blocks are stacked along the first dimension in PyTorch's order:
  RNN: one block; LSTM: input, forget, cell, output (i, f, g, o); GRU: reset, update, new (r, z, n).

Notation: B batch, H hidden size, G gates. ``x_pre`` is the input projection of one step,
``x_t @ weight_ih.T + input bias`` (B, G·H), which the engine computes for all steps in one matrix product.
``step_backward`` works on any number of leading dimensions, so the engine can push several gradient
streams (truncated BPTT) through one call.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import Tensor


class StepGrads(NamedTuple):
    """Gradients of one backward step (leading dims ``...`` are the caller's: (B,) or (S, B))."""

    d_x_pre: Tensor  # (..., G·H) gradient of the input projection of this step
    d_h_pre: Tensor  # (..., G·H) gradient of the recurrent projection h_{t-1} @ W_hh.T (+ b_hh)
    dh_direct: Tensor | None  # (..., H) part of ∂L/∂h_{t-1} that bypasses W_hh (GRU's z·h), else None
    dc_prev: Tensor | None  # (..., H) ∂L/∂c_{t-1} (LSTM), else None
    dc_total: Tensor | None  # (..., H) ∂L/∂c_t, all paths (LSTM), for recording


class Cell:
    """Base class: the math of one step. Subclasses are stateless singletons held in `CELLS`."""

    # Every fact about a cell kind lives here; the engine, init, modules, diagnostics and CLI read it.
    name: str
    gates: int  # G: number of gate blocks stacked in weight_ih / weight_hh
    has_cell_state: bool = False  # LSTM carries (h, c)
    torch_module: str  # the torch.nn class with this cell's math: "RNN", "LSTM" or "GRU"
    nonlinearity: str | None = None  # torch.nn.RNN's nonlinearity (vanilla cells only)
    native_kind: int  # the cell's code in the compiled time loop (_ext/bptt.cpp: `kind`)
    # Whether the recurrent projection's gradient differs from the input projection's (GRU: r scales h W_hnᵀ).
    separate_recurrent_grad: bool = False

    def __reduce__(self):
        # A saved module's cell loads back as the registry's own instance (which the compiled loop serves),
        # not as a copy; a user's Cell subclass pickles as usual.
        if CELLS.get(self.name) is self:
            return get_cell, (self.name,)
        return super().__reduce__()

    def split_bias(self, bias_ih: Tensor | None, bias_hh: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """Return (input bias, recurrent bias): what is added to the input projection once for all steps,
        and what must be added to h @ W_hh.T at every step. Only the GRU needs the latter."""
        if bias_ih is None:
            return None, None
        return bias_ih + bias_hh, None

    def step(self, x_pre: Tensor, h: Tensor, c: Tensor | None, weight_hh: Tensor, bias_h: Tensor | None):
        """One step. Returns (h_new (B, H), c_new (B, H) or None, saved), where `saved` is what
        `step_backward` needs. Written with ordinary differentiable ops so the same code runs under
        autograd as the reference implementation."""
        raise NotImplementedError

    def step_backward(self, dh: Tensor, dc: Tensor | None, saved, h_prev: Tensor, c_prev: Tensor | None) -> StepGrads:
        """Given ∂L/∂h_t (all paths) and ∂L/∂c_t from step t+1, return the gradients of this step."""
        raise NotImplementedError


class VanillaCell(Cell):
    """Elman RNN: h_t = φ(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), φ ∈ {tanh, relu, identity}."""

    gates = 1
    torch_module = "RNN"

    native_kinds: ClassVar[dict[str, int]] = {"tanh": 0, "relu": 1, "linear": 2}  # _ext/bptt.cpp `kind` codes

    def __init__(self, nonlinearity: str):
        self.nonlinearity = nonlinearity
        self.name = f"rnn_{nonlinearity}"
        self.native_kind = self.native_kinds[nonlinearity]

    def step(self, x_pre, h, c, weight_hh, bias_h):
        pre = torch.addmm(x_pre, h, weight_hh.t())  # (B, H)
        if self.nonlinearity == "tanh":
            h_new = torch.tanh(pre)
        elif self.nonlinearity == "relu":
            h_new = torch.relu(pre)
        else:
            h_new = pre
        return h_new, None, h_new

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        h_new = saved
        if self.nonlinearity == "tanh":
            d_pre = dh * (1 - h_new * h_new)
        elif self.nonlinearity == "relu":
            d_pre = dh * (h_new > 0)
        else:
            d_pre = dh
        return StepGrads(d_pre, d_pre, None, None, None)


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


#: Every cell by name. `rnnlab.recurrent.modules` maps (class, nonlinearity) to these names; configs use them directly.
CELLS: dict[str, Cell] = {
    "rnn_tanh": VanillaCell("tanh"),
    "rnn_relu": VanillaCell("relu"),
    "rnn_linear": VanillaCell("linear"),
    "lstm": LSTMCell(),
    "gru": GRUCell(),
}


#: The vanilla (Elman) cells: one gate block, no cell state; what identity (IRNN) initialisation applies to.
VANILLA = frozenset(name for name, cell in CELLS.items() if cell.torch_module == "RNN")


def cell_of_torch(module) -> Cell:
    """The cell of a torch.nn.RNN/LSTM/GRU module (by its class and nonlinearity)."""
    from torch import nn

    kind = next((name for name in ("RNN", "LSTM", "GRU") if isinstance(module, getattr(nn, name))), None)
    for cell in CELLS.values():
        if cell.torch_module == kind and (kind != "RNN" or cell.nonlinearity == module.nonlinearity):
            return cell
    raise TypeError(f"expected a torch.nn RNN, LSTM or GRU module, got {type(module).__name__}")


def get_cell(name: str) -> Cell:
    """Look a cell up by name, with an error that lists the choices."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; choose from: {', '.join(CELLS)}") from None
