"""What a cell is: the facts the rest of rnnlab reads from the cell table, and the contract of one step.

A cell knows nothing about time: the engine (`rnnlab.recurrent.engine`) owns the loop over steps, truncation and
gradient recording, and calls `step` / `step_backward` once per step.

Layout mirrors `torch.nn` exactly, so a state_dict is a plain copy:

- ``weight_ih``: (G·H, I), ``weight_hh``: (G·H, H), ``bias_ih`` / ``bias_hh``: (G·H,)
- gate blocks are stacked along the first dimension in PyTorch's order (each family's file names its order).

Notation: B batch, H hidden size, G gates. ``x_pre`` is the input projection of one step,
``x_t @ weight_ih.T + input bias`` (B, G·H), which the engine computes for all steps in one matrix product.
``step_backward`` works on any number of leading dimensions, so the engine can push several gradient
streams (truncated BPTT) through one call.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class StepGrads(NamedTuple):
    """Gradients of one backward step (leading dims ``...`` are the caller's: (B,) or (S, B))."""

    d_x_pre: Tensor  # (..., G·H) gradient of the input projection of this step
    d_h_pre: Tensor  # (..., G·H) gradient of the recurrent projection h_{t-1} @ W_hh.T (+ b_hh)
    dh_direct: Tensor | None  # (..., H) part of ∂L/∂h_{t-1} that bypasses W_hh (GRU's z·h), else None
    dc_prev: Tensor | None  # (..., H) ∂L/∂c_{t-1} (LSTM), else None
    dc_total: Tensor | None  # (..., H) ∂L/∂c_t, all paths (LSTM), for recording


class Cell:
    """Base class: the math of one step, and the facts about it that the engine, init, modules, diagnostics,
    configs and the CLI read. Subclasses are stateless; the table (`rnnlab.recurrent.cells.CELLS`) holds one
    instance per cell name."""

    name: str  # the cell's name in the table, configs and the CLI ('lstm', 'rnn_tanh', …)
    gates: int  # G: number of gate blocks stacked in weight_ih / weight_hh
    has_cell_state: bool = False  # carries (h, c), as the LSTM
    torch_module: str | None = None  # the torch.nn class with this cell's math ("RNN", "LSTM", "GRU"), or None
    nonlinearity: str | None = None  # torch.nn.RNN's nonlinearity (vanilla cells only)
    native_kind: int | None = None  # the cell's code in the compiled time loop (_ext/bptt.cpp: `kind`); None: none
    # Whether the recurrent projection's gradient differs from the input projection's (GRU: r scales h W_hnᵀ).
    separate_recurrent_grad: bool = False

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
