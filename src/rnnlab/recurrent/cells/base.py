"""What a cell is: the facts the rest of rnnlab reads from the cell table, and the contract of one step.

A cell knows nothing about time: the engine (`rnnlab.recurrent.engine`) owns the loop over steps, truncation and
gradient recording, and calls `step` / `step_backward` once per step.

Layout mirrors `torch.nn` exactly, so a state_dict is a plain copy:

- ``weight_ih``: (G·H, I), ``weight_hh``: (G·H, H), ``bias_ih`` / ``bias_hh``: (G·H,)
- gate blocks are stacked along the first dimension in PyTorch's order (each family's file names its order).

How the previous state enters a step is the cell's `recurrence` (`Recurrence`): through a matrix product
h_{t−1} W_hhᵀ (every torch.nn cell), element-wise u ⊙ h_{t−1} with a vector ``weight_hh`` (G·H,) (IndRNN), or
through no weight at all, with coefficients computed from x_t only (minGRU, minLSTM). A cell lists the
parameters it has per layer (`parameter_names`), so a cell without W_hh or b_hh has none.

Notation: B batch, H hidden size, G gates. ``x_pre`` is the input projection of one step,
``x_t @ weight_ih.T + input bias`` (B, G·H), which the engine computes for all steps in one matrix product.
``step_backward`` works on any number of leading dimensions, so the engine can push several gradient
streams (truncated BPTT) through one call.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import torch
from torch import Tensor


class Recurrence(enum.StrEnum):
    """How h_{t−1} enters a step, which sets the shape of ``weight_hh`` and the backward's product with it."""

    MATRIX = "matrix"  # h_{t−1} W_hhᵀ, weight_hh (G·H, H): ∂L/∂h_{t−1} = d_h_pre · W_hh
    DIAGONAL = "diagonal"  # u ⊙ h_{t−1}, weight_hh = u (G·H,) with G·H = H: ∂L/∂h_{t−1} = d_h_pre ⊙ u
    NONE = "none"  # no recurrent weight: h_{t−1} enters only through the step itself (StepGrads.dh_direct)


class StepGrads(NamedTuple):
    """Gradients of one backward step (leading dims ``...`` are the caller's: (B,) or (S, B))."""

    d_x_pre: Tensor  # (..., G·H) gradient of the input projection of this step
    d_h_pre: Tensor | None  # (..., G·H) gradient of the recurrent term h_{t-1} W_hhᵀ (+ b_hh) or u ⊙ h_{t-1};
    #                          None for a cell without a recurrent weight (Recurrence.NONE)
    dh_direct: Tensor | None  # (..., H) part of ∂L/∂h_{t-1} that bypasses W_hh (GRU's z·h, minGRU's (1−z)·h), else None
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
    recurrence: Recurrence = Recurrence.MATRIX  # how h_{t−1} enters the step (see `Recurrence`)
    recurrent_bias: bool = True  # whether the cell has bias_hh beside bias_ih (torch.nn's cells do)
    parallel_scan: bool = False  # has `coefficients`: a layer can run as one chunked scan (`scan.py`)
    # The module computes weight_hh from a parameter of its own (ExpRNN: exp(A)) and hands it to the engine, so
    # init schemes that write W_hh in place do not apply.
    weight_hh_computed: bool = False
    # bias_hh is the step's own parameter, not added to a pre-activation (ExpRNN's modReLU bias): the engine takes
    # its gradient from `step_bias_grad` instead of summing d_h_pre.
    step_bias: bool = False

    def parameter_names(self, bias: bool) -> tuple[str, ...]:
        """The kinds of parameter one layer holds, in torch.nn's order (weight_ih, weight_hh, bias_ih,
        bias_hh for torch.nn's cells); a cell without a recurrent weight or a second bias leaves it out."""
        names = ("weight_ih",) if self.recurrence is Recurrence.NONE else ("weight_ih", "weight_hh")
        if bias:
            names += ("bias_ih", "bias_hh") if self.recurrent_bias else ("bias_ih",)
        return names

    def parameter_shape(self, name: str, hidden: int, layer_input: int, state: int) -> tuple[int, ...]:
        """The shape of one layer's parameter `name` (one of `parameter_names`): G·H rows stacked by gate."""
        rows = self.gates * hidden
        if name == "weight_ih":
            return (rows, layer_input)
        if name == "weight_hh":
            return (rows, state) if self.recurrence is Recurrence.MATRIX else (rows,)
        return (rows,)

    def coefficients(self, x_pre: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """For a recurrence h_t = a_t ⊙ h_{t−1} + b_t whose a_t, b_t come from x_t alone, all steps at once:
        (a_t, b_t) (T, B, H), computed as `step` computes them, and the activations `step` saves, stacked
        (T, B, G·H), for the chunked scan (`rnnlab.recurrent.scan`). None: the cell has no such form (the default)."""
        return None

    def previous_state_grad(self, grads: StepGrads, weight_hh: Tensor | None) -> Tensor:
        """∂L/∂h_{t−1} through one step (..., H): back through the recurrent term, plus the direct path."""
        if self.recurrence is Recurrence.MATRIX:
            through = grads.d_h_pre @ weight_hh
        elif self.recurrence is Recurrence.DIAGONAL:
            through = grads.d_h_pre * weight_hh  # u ⊙ h_{t−1}: its Jacobian is diag(u)
        else:
            return grads.dh_direct
        return through if grads.dh_direct is None else through + grads.dh_direct

    def previous_state_grads(self, grads: StepGrads, weight_hh: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """(∂L/∂h_{t−1}, ∂L/∂c_{t−1} or None) through one step: what the time loops carry back. A cell whose
        recurrent term also reads c (coRNN: W_hh acts on [z, y]) splits the product with W_hh between the two."""
        return self.previous_state_grad(grads, weight_hh), grads.dc_prev

    def recurrent_operand(self, h: Tensor, c: Tensor | None) -> Tensor:
        """What W_hh multiplies, (..., S): the state h_{t−1} for every cell but coRNN ([z, y]); the engine's
        weight gradient of W_hh is d_h_preᵀ · this operand over all steps."""
        return h

    def recurrent_blocks(self, weight_hh: Tensor) -> Tensor:
        """(G, H, S): the matrices whose spectral radius `diagnostics.spectral_radius` reports — the gate blocks
        of a matrix W_hh (coRNN: its linearised step, `cells/oscillator.py`)."""
        return torch.stack(weight_hh.chunk(self.gates, dim=0))

    def saved_weights(self, weight_hh: Tensor) -> tuple[Tensor, ...]:
        """What of W_hh the step's backward needs beside the activations it saved, at the end of `saved` (the
        peephole's V_o): the compiled loop saves activations only, so a Python backward after a compiled forward
        (truncation) is handed these too. None for most cells."""
        return ()

    def recurrent_weight_grad(self, grad: Tensor, d_pre: Tensor, hs: Tensor, cs: Tensor | None) -> Tensor:
        """W_hh's gradient, given the engine's d_h_preᵀ · operand over all steps (`grad`): that product for every
        cell whose W_hh enters the step only through it. A cell whose W_hh holds more completes it from all
        steps' pre-activation gradients d_pre (T, B, G·H) and the states hs, cs (T+1, B, H) (the output-gate
        peephole's matrix, which multiplies the new c_t: `OutputPeepholeLSTMCell`)."""
        return grad

    def step_bias_grad(self, d_pre: Tensor, saved: Tensor) -> Tensor:
        """For a cell with `step_bias`: the gradient of bias_hh (G·H,) from the gradients of all steps'
        pre-activations d_pre (T, B, G·H) and what `step` saved, stacked (T, B, …)."""
        raise NotImplementedError

    def split_bias(self, bias_ih: Tensor | None, bias_hh: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
        """Return (input bias, recurrent bias): what is added to the input projection once for all steps,
        and what must be added to h @ W_hh.T at every step. Only the GRU needs the latter."""
        if bias_ih is None:
            return None, None
        return (bias_ih, None) if bias_hh is None else (bias_ih + bias_hh, None)

    def step(self, x_pre: Tensor, h: Tensor, c: Tensor | None, weight_hh: Tensor | None, bias_h: Tensor | None):
        """One step. Returns (h_new (B, H), c_new (B, H) or None, saved), where `saved` is what
        `step_backward` needs. Written with ordinary differentiable ops so the same code runs under
        autograd as the reference implementation."""
        raise NotImplementedError

    def step_backward(self, dh: Tensor, dc: Tensor | None, saved, h_prev: Tensor, c_prev: Tensor | None) -> StepGrads:
        """Given ∂L/∂h_t (all paths) and ∂L/∂c_t from step t+1, return the gradients of this step."""
        raise NotImplementedError
