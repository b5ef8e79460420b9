"""One layer's time loop, forward and backward: the compiled loop (`_ext/bptt.cpp`) where it applies, the
parallel scan (`scan.py`) where a module asks for it and the cell has one, else the Python loop over
`Cell.step` / `Cell.step_backward` — the slow reference kept beside the fast paths, and tested against them.

Both keep the same per-step tensors (`hs`, `cs`, the activated gates, an auxiliary (T, B, H)), so a compiled
forward can be followed by a Python (truncated) backward. Data flow of one layer (T steps, batch B, G gate
blocks, hidden H)::

    forward   x_pre (T, B, G·H) --T steps of cell.step--> hs (T+1, B, H), hs[0] = h0
    backward  ∂L/∂h_t for t = T−1 … 0 by cell.step_backward and one product with W_hh per step
              (`Cell.previous_state_grad`: an element-wise product for a diagonal recurrence, none for a cell
              whose coefficients depend on x_t only)
"""

from __future__ import annotations

import enum
from typing import NamedTuple

import torch
from torch import Tensor

from rnnlab.recurrent.cells import Cell, is_table_cell
from rnnlab.recurrent.recorder import row_norms
from rnnlab.recurrent.scan import ScanSaved, scan_backward, scan_forward


class Record(enum.IntEnum):
    """What the backward records per step (the compiled loop takes the same codes)."""

    NOTHING = 0
    NORMS = 1  # ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) per sample
    VECTORS = 2  # the norms and ∂L/∂h_t itself


class LayerGrads(NamedTuple):
    """One layer's backward: the gradients of its pre-activations (T, B, G·H) through the input projection and
    the recurrent one (the same tensor unless GRU), of its initial states (B, H), and what was recorded."""

    d_x_pre: Tensor
    d_h_pre: Tensor
    dh0: Tensor
    dc0: Tensor | None
    seen: tuple | None  # (‖∂L/∂h_t‖ (T, B) float64, ‖∂L/∂c_t‖ or None, vectors (T, B, H) or None)


# --------------------------------------------------------------------------------------------- dispatch


def _native_for(cell: Cell, ext):
    """The compiled loop for the table's cells that have a kernel, or None: a user's Cell subclass keeps the
    Python loop, and so does every call without the extension (other devices, RNNLAB_ENGINE=python)."""
    return ext if cell.native_kind is not None and is_table_cell(cell) else None


class NativeSaved:
    """What the compiled forward keeps, indexable per step like the Python loop's list of `saved`."""

    def __init__(self, cell: Cell, hs: Tensor, acts: Tensor | None, aux: Tensor | None, weights: tuple = ()):
        self.cell, self.hs, self.acts, self.aux = cell, hs, acts, aux
        self.weights = weights  # what of W_hh the cell's step_backward reads from `saved` (`Cell.saved_weights`)

    def __getitem__(self, t: int):
        if self.acts is None:  # vanilla: the saved value is h_t itself
            return self.hs[t + 1]
        return self.acts[t], self.aux[t], *self.weights


def run_layer_forward(
    ext, cell: Cell, x_pre: Tensor, bias_x, h0: Tensor, c0: Tensor | None, w_hh: Tensor, bias_h, scan: bool = False
):
    """One layer forward → (hs (T+1, B, H), cs or None, saved). x_pre (T, B, G·H) is the input projection
    without its bias `bias_x` (G·H,): the compiled loop adds it in its pointwise pass (one pass over x_pre
    fewer); the Python loop and the parallel scan (`scan`, for a cell that has one: `scan.py`) add it up front."""
    ext = _native_for(cell, ext)
    use_scan = scan and cell.parallel_scan
    if use_scan or ext is None:
        if bias_x is not None:
            x_pre += bias_x
        if use_scan:
            return scan_forward(cell, x_pre, h0)
        return _python_forward(cell, x_pre, h0, c0, w_hh, bias_h)
    c0_arg = c0 if c0 is not None else h0  # ignored for cells without a cell state
    hs, cs, acts, aux = ext.forward(cell.native_kind, x_pre, h0, c0_arg, w_hh, bias_h, bias_x)
    if not (cell.has_cell_state or cell.separate_recurrent_grad):
        acts, aux = None, None
    return hs, (cs if cell.has_cell_state else None), NativeSaved(cell, hs, acts, aux, cell.saved_weights(w_hh))


def run_layer_backward(ext, cell, hs, cs, saved, w_hh, d_out, dh_last, dc_last, truncate, record) -> LayerGrads:
    """One layer backward by the compiled loop when it applies, else the Python loop. d_out (T, B, H) is
    ∂L/∂h_t from outside the recurrence (the loss, the layer above); dh_last / dc_last the gradients of the
    final state; `truncate` keeps ∂L_s/∂h_t only for s − t < truncate (None: full BPTT)."""
    ext = _native_for(cell, ext)
    truncated = truncate is not None and truncate <= d_out.shape[0]
    if isinstance(saved, ScanSaved) and not truncated:  # a scan forward: the reverse scan (truncation: the loop)
        d_x_pre, dh0, dh_seen = scan_backward(cell, hs, saved, d_out, dh_last)
        seen = None
        if record != Record.NOTHING:
            seen = (row_norms(dh_seen), None, dh_seen if record == Record.VECTORS else None)
        return LayerGrads(d_x_pre, d_x_pre, dh0, None, seen)
    if ext is None or not isinstance(saved, NativeSaved) or truncated:
        # Truncation keeps one gradient stream per entry step: the Python loop handles it.
        walk = _python_backward_truncated if truncated else _python_backward
        extra = (truncate,) if truncated else ()
        d_x_pre, d_h_pre, dh0, dc0, dh_seen, dc_seen = walk(
            cell, hs, cs, saved, w_hh, d_out, dh_last, dc_last, *extra, record=record != Record.NOTHING
        )
        seen = None
        if record != Record.NOTHING:
            c_norms = None if dc_seen is None else row_norms(dc_seen)
            seen = (row_norms(dh_seen), c_norms, dh_seen if record == Record.VECTORS else None)
        return LayerGrads(d_x_pre, d_h_pre, dh0, dc0, seen)
    d_x_pre, d_h_pre, dh0, dc0, norm_h, norm_c, vectors = ext.backward(
        cell.native_kind, hs, cs, saved.acts, saved.aux, w_hh, d_out, dh_last, dc_last, int(record)
    )
    seen = None
    if record != Record.NOTHING:  # the norms come from the loop itself, per sample, in float64
        seen = (norm_h, norm_c if cell.has_cell_state else None, vectors if record == Record.VECTORS else None)
    return LayerGrads(d_x_pre, d_h_pre, dh0, dc0 if cell.has_cell_state else None, seen)


# --------------------------------------------------------------------------------------------- the Python loop


def _python_forward(cell: Cell, x_pre: Tensor, h0: Tensor, c0: Tensor | None, w_hh: Tensor, bias_h):
    """Run one layer over time. x_pre (T, B, G·H) → hs (T+1, B, H) with hs[0] = h0, cs likewise or None."""
    steps = x_pre.shape[0]
    hs = x_pre.new_empty((steps + 1, *h0.shape))  # (T+1, B, H)
    hs[0] = h0
    cs = None
    if cell.has_cell_state:
        cs = x_pre.new_empty((steps + 1, *h0.shape))  # (T+1, B, H)
        cs[0] = c0
    saved = []
    h, c = h0, c0
    for t in range(steps):
        h, c, s = cell.step(x_pre[t], h, c, w_hh, bias_h)
        hs[t + 1] = h
        if cs is not None:
            cs[t + 1] = c
        saved.append(s)
    return hs, cs, saved


def _gradient_buffers(cell: Cell, d_out: Tensor, record: bool):
    """d_x_pre (T, B, G·H), d_h_pre (the same tensor unless the cell's recurrent gradient differs: GRU), and
    the totals ∂L/∂h_t and ∂L/∂c_t (T, B, H) at each step for recording (None when not recording)."""
    steps, batch, hidden = d_out.shape
    d_x_pre = d_out.new_empty((steps, batch, cell.gates * hidden))
    d_h_pre = torch.empty_like(d_x_pre) if cell.separate_recurrent_grad else d_x_pre
    dh_seen = d_out.new_empty((steps, batch, hidden)) if record else None
    dc_seen = d_out.new_empty((steps, batch, hidden)) if record and cell.has_cell_state else None
    return d_x_pre, d_h_pre, dh_seen, dc_seen


def _python_backward(cell: Cell, hs, cs, saved, w_hh, d_out, dh_last, dc_last, *, record: bool):
    """Walk one layer back in time, full BPTT: one gradient stream. Returns (d_x_pre (T, B, G·H), d_h_pre,
    dh0, dc0, dh_seen (T, B, H) or None, dc_seen or None); the last two are the totals at each step."""
    d_x_pre, d_h_pre, dh_seen, dc_seen = _gradient_buffers(cell, d_out, record)
    dh, dc = dh_last, dc_last
    for t in range(d_out.shape[0] - 1, -1, -1):
        dh = dh + d_out[t]
        g = cell.step_backward(dh, dc, saved[t], hs[t], cs[t] if cs is not None else None)
        d_x_pre[t] = g.d_x_pre
        if d_h_pre is not d_x_pre:
            d_h_pre[t] = g.d_h_pre
        if record:
            dh_seen[t] = dh
            if dc_seen is not None:
                dc_seen[t] = g.dc_total
        dh, dc = cell.previous_state_grads(g, w_hh)  # back through W_hh (or u ⊙, or the step alone) to h_{t−1}
    return d_x_pre, d_h_pre, dh, dc, dh_seen, dc_seen


def _python_backward_truncated(cell: Cell, hs, cs, saved, w_hh, d_out, dh_last, dc_last, k: int, *, record: bool):
    """Truncated BPTT, as `_python_backward`: the gradient entering at step s may reach h_t only for s − t < k.

    Backprop is linear in what enters, so each entry step travels in its own slot of a ring of k streams; when
    slot s % k is reused for entry s − k, the old stream (which has just travelled k steps) is dropped. Cost:
    k streams."""
    d_x_pre, d_h_pre, dh_seen, dc_seen = _gradient_buffers(cell, d_out, record)
    steps, batch, hidden = d_out.shape
    dh_slots = d_out.new_zeros((k, batch, hidden))  # (S, B, H)
    dc_slots = d_out.new_zeros((k, batch, hidden)) if cell.has_cell_state else None
    for t in range(steps - 1, -1, -1):
        slot = t % k
        dh_slots[slot] = d_out[t]
        if dc_slots is not None:
            dc_slots[slot] = 0
        if t == steps - 1:  # the final state's gradient enters at the last step
            dh_slots[slot] += dh_last
            if dc_slots is not None:
                dc_slots[slot] += dc_last
        g = cell.step_backward(dh_slots, dc_slots, saved[t], hs[t], cs[t] if cs is not None else None)
        d_x_pre[t] = g.d_x_pre.sum(0)
        if d_h_pre is not d_x_pre:
            d_h_pre[t] = g.d_h_pre.sum(0)
        if record:
            dh_seen[t] = dh_slots.sum(0)
            if dc_seen is not None:
                dc_seen[t] = g.dc_total.sum(0)
        dh_slots, dc_slots = cell.previous_state_grads(g, w_hh)  # (S, B, H)
    # The initial state is "step −1": entry k−1 has travelled k steps to reach it and is dropped.
    dh_slots[(k - 1) % k] = 0
    if dc_slots is not None:
        dc_slots[(k - 1) % k] = 0
    dc0 = dc_slots.sum(0) if dc_slots is not None else None
    return d_x_pre, d_h_pre, dh_slots.sum(0), dc0, dh_seen, dc_seen
