"""The explicit BPTT engine: the time loop forward and backward, for a whole stack of layers.

Why an explicit engine: the vanishing gradient is a statement about ∂L/∂h_t, the gradient that reaches step t
after travelling back through T−1−t Jacobians. Autograd (and PyTorch's fused kernels) compute it but never
show it. Here the backward walks time in reverse by hand, so ∂L/∂h_t is a local variable at every step:
recording it costs one copy, and truncating it is a parameter.

Data flow for one layer (T steps, batch B, G gate blocks, hidden H, input I)::

    forward   x (T, B, I) --one GEMM--> x_pre (T, B, G·H) --T steps of cell.step--> h (T+1, B, H)
    backward  ∂L/∂h_t for t = T−1 … 0 by cell.step_backward and one GEMM with W_hh per step;
              the weight gradients are then one GEMM each over all T·B rows.

Everything is wired in as one `torch.autograd.Function` for the whole stack, so `loss.backward()`,
optimisers and `clip_grad_norm_` work unchanged. A backward with create_graph=True (higher-order gradients)
re-runs the forward under autograd (`_differentiable_backward`). An LSTM with a projection (proj_size > 0)
runs in `projected.py` instead: the hand-written backward has no projection.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from rnnlab.recurrent import native
from rnnlab.recurrent.cells import CELLS, Cell


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


# Positions of the tensors among _StackBPTT.forward's arguments (spec, recorder, name, x, h0, c0, *weights),
# which is how autograd's needs_input_grad and backward's return value are indexed.
_X, _H0, _C0, _FIRST_WEIGHT = 3, 4, 5, 6
# Positions of a layer's tensors among its weights (torch.nn's order).
_W_IH, _W_HH, _B_IH, _B_HH = 0, 1, 2, 3


@dataclass(frozen=True)
class StackSpec:
    """What the engine needs to know about a stack beyond its tensors."""

    cell: Cell
    num_layers: int
    bias: bool
    dropout: float = 0.0  # probability of zeroing a layer's output before the next layer (training only)
    training: bool = False
    truncate: int | None = None  # keep ∂L_s/∂h_t only for s − t < truncate (None: full BPTT)
    flush: bool = True  # flush denormal floats to zero inside forward and backward (see `flush_denormals`)
    proj_size: int = 0  # LSTM only: the size P of the projected state h_t (0: none; see `projected.py`)


# --------------------------------------------------------------------------------------------- denormals


def denormals_flushed() -> bool:
    """Whether the CPU currently flushes denormal floats to zero (PyTorch has a setter but no getter).

    The compiled engine reads the CPU's control register; otherwise a probe: multiplying a denormal by one
    returns it unchanged unless flush-to-zero or denormals-are-zero is on.
    """
    ext = native.extension()
    known = -1 if ext is None else ext.denormals_flushed()
    if known >= 0:
        return bool(known)
    probe = torch.tensor([1e-40], dtype=torch.float32)  # below float32's smallest normal, 1.18e-38
    return bool((probe * 1.0).item() == 0.0)


def flush_denormals(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Flush denormal floats to zero inside the block (`with rnnlab.flush_denormals():`), then restore the
    caller's setting.

    Why: a vanishing gradient passes through ~1e-38…1e-45 on its way to zero, and x86 CPUs handle such
    denormal numbers in microcode, many times slower. The engine's backward spends most of its time on
    exactly these numbers at long lags, so by default the engine flushes them; the recorded norms then
    reach exactly zero a few steps earlier, which `rnnlab.recurrent.diagnostics` handles.
    """
    return _FlushScope(enabled, native.extension())


class _FlushScope:
    """`flush_denormals` for a known extension (or None): the engine enters one per forward and per backward,
    so it is a plain class rather than a generator-based context manager (~10 µs less per step, which is
    ~2 % of a small training step)."""

    __slots__ = ("enabled", "ext", "previous")

    def __init__(self, enabled: bool, ext):
        self.enabled, self.ext = enabled, ext

    def __enter__(self) -> None:
        if not self.enabled:
            return
        known = -1 if self.ext is None else self.ext.denormals_flushed()
        self.previous = bool(known) if known >= 0 else denormals_flushed()
        torch.set_flush_denormal(True)
        if self.ext is not None:
            # torch.set_flush_denormal sets the calling thread only; the GEMMs run on the OpenMP pool's threads
            # too, where denormals cost full price (measured: a weight-gradient GEMM 8.3 ms → 1390 ms on an
            # Intel Xeon).
            self.ext.set_pool_denormals(True)

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        torch.set_flush_denormal(self.previous)
        if self.ext is not None:
            self.ext.set_pool_denormals(self.previous)  # the pool follows the caller's setting again


def release_buffers() -> int:
    """Free the compiled engine's reusable scratch buffers that no tensor uses any more; returns the bytes freed.

    Why they exist: the engine's large temporaries (pre-activations, states and their gradients, tens of MB per
    layer) are kept between training steps, because fresh pages from the kernel cost more to fault in than to
    write (see `_ext/bptt.cpp`). At most 2 GiB are kept; call this after training to give them back."""
    ext = native.extension()
    return 0 if ext is None else int(ext.release_scratch())


# --------------------------------------------------------------------------------------------- the loop


def _layer_forward(cell: Cell, x_pre: Tensor, h0: Tensor, c0: Tensor | None, w_hh: Tensor, bias_h):
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


def _layer_backward(
    cell: Cell,
    hs: Tensor,
    cs: Tensor | None,
    saved: list,
    w_hh: Tensor,
    d_out: Tensor,
    dh_last: Tensor,
    dc_last: Tensor | None,
    truncate: int | None,
    record: bool,
):
    """Walk one layer back in time.

    d_out (T, B, H) is ∂L/∂h_t from outside the recurrence (the loss, the layer above); dh_last / dc_last
    are the gradients of the final state. Returns (d_x_pre (T, B, G·H), d_h_pre (T, B, G·H), dh0, dc0,
    dh_seen (T, B, H) or None, dc_seen or None); the last two are the totals at each step, for recording.
    """
    steps, batch, hidden = d_out.shape
    d_x_pre = d_out.new_empty((steps, batch, cell.gates * hidden))
    # For vanilla and LSTM cells both projections get the same gradient; only the GRU's differ.
    d_h_pre = torch.empty_like(d_x_pre) if cell.separate_recurrent_grad else d_x_pre
    dh_seen = d_out.new_empty((steps, batch, hidden)) if record else None
    dc_seen = d_out.new_empty((steps, batch, hidden)) if record and cell.has_cell_state else None

    if truncate is None or truncate > steps:
        # Full BPTT: one gradient stream.
        dh, dc = dh_last, dc_last
        for t in range(steps - 1, -1, -1):
            dh = dh + d_out[t]
            c_prev = cs[t] if cs is not None else None
            g = cell.step_backward(dh, dc, saved[t], hs[t], c_prev)
            d_x_pre[t] = g.d_x_pre
            if d_h_pre is not d_x_pre:
                d_h_pre[t] = g.d_h_pre
            if record:
                dh_seen[t] = dh
                if dc_seen is not None:
                    dc_seen[t] = g.dc_total
            dh = g.d_h_pre @ w_hh
            if g.dh_direct is not None:
                dh = dh + g.dh_direct
            dc = g.dc_prev
        return d_x_pre, d_h_pre, dh, dc, dh_seen, dc_seen

    # Truncated BPTT: the gradient entering at step s may reach h_t only for s − t < k. Backprop is linear in
    # what enters, so each entry step travels in its own slot of a ring of k streams; when slot s % k is
    # reused for entry s − k, the old stream (which has just travelled k steps) is dropped. Cost: k streams.
    k = truncate
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
        c_prev = cs[t] if cs is not None else None
        g = cell.step_backward(dh_slots, dc_slots, saved[t], hs[t], c_prev)
        d_x_pre[t] = g.d_x_pre.sum(0)
        if d_h_pre is not d_x_pre:
            d_h_pre[t] = g.d_h_pre.sum(0)
        if record:
            dh_seen[t] = dh_slots.sum(0)
            if dc_seen is not None:
                dc_seen[t] = g.dc_total.sum(0)
        dh_slots = g.d_h_pre @ w_hh  # (S, B, H)
        if g.dh_direct is not None:
            dh_slots = dh_slots + g.dh_direct
        dc_slots = g.dc_prev
    # The initial state is "step −1": entry k−1 has travelled k steps to reach it and is dropped.
    dh_slots[(k - 1) % k] = 0
    if dc_slots is not None:
        dc_slots[(k - 1) % k] = 0
    dc0 = dc_slots.sum(0) if dc_slots is not None else None
    return d_x_pre, d_h_pre, dh_slots.sum(0), dc0, dh_seen, dc_seen


def _layer_weight_grads(ext, d_x: Tensor, d_h: Tensor, x: Tensor, h: Tensor, bias: bool, needs, shared: bool) -> list:
    """Weight gradients of one layer for all steps at once, in torch.nn's order (w_ih, w_hh[, b_ih, b_hh]).

    d_x, d_h (T·B, G·H): gradients of the input and recurrent projections — one tensor when `shared` (every cell
    but the GRU); x (T·B, I) the layer's inputs, h (T·B, H) the states h_{t−1}; `ext` the compiled extension or
    None. Each gradient is d_preᵀ · operand; where several share d_pre they come from one GEMM against the
    operands side by side ([h, x, 1] for vanilla and LSTM cells), so the large d_pre is read once instead of
    once per weight and bias (measured at the adding shape: ~7 ms saved of ~100).
    """
    ones = x.new_ones((x.shape[0], 1))
    if shared:
        groups = [(d_x, [(h, _W_HH), (x, _W_IH)] + ([(ones, _B_IH)] if bias else []))]
    else:
        groups = [
            (d_x, [(x, _W_IH)] + ([(ones, _B_IH)] if bias else [])),
            (d_h, [(h, _W_HH)] + ([(ones, _B_HH)] if bias else [])),
        ]
    grads: list = [None] * (4 if bias else 2)
    for d_pre, operands in groups:
        # With shared d_pre both biases get the one bias gradient, computed in the b_ih slot.
        wanted = [(m, k) for m, k in operands if needs[k] or (k == _B_IH and shared and needs[_B_HH])]
        if not wanted:
            continue
        product = _weight_grad(ext, d_pre, _side_by_side(ext, [m for m, _ in wanted]))
        col = 0
        for m, k in wanted:
            block = product[:, col : col + m.shape[1]]
            col += m.shape[1]
            grads[k] = block.squeeze(1).contiguous() if k >= _B_IH else block.contiguous()
    if bias and shared:  # vanilla and LSTM cells add both biases to one pre-activation: same gradient
        both = grads[_B_IH]
        grads[_B_IH] = both if needs[_B_IH] else None
        grads[_B_HH] = both.clone() if needs[_B_HH] and both is not None else None
    return [g if needs[k] else None for k, g in enumerate(grads)]


def _side_by_side(ext, parts: list[Tensor]) -> Tensor:
    """The operands of one weight-gradient GEMM as columns of one (T·B, ΣI) matrix, in a reused buffer where
    the compiled engine runs (at the fastrnns shape a fresh 26 MB buffer cost ~3 ms of page faults)."""
    if len(parts) == 1:
        return parts[0]
    if ext is None:
        return torch.cat(parts, dim=1)
    out = ext.scratch([parts[0].shape[0], sum(p.shape[1] for p in parts)], parts[0])
    return torch.cat(parts, dim=1, out=out)


def _weight_grad(ext, d_pre: Tensor, inputs: Tensor) -> Tensor:
    """d_preᵀ · inputs, (G·H, T·B) @ (T·B, I) → (G·H, I).

    Two orientations, by shape. With many rows and few columns (T·B ≥ 8·I: long sequences, small inputs) it is
    computed as (inputsᵀ · d_pre)ᵀ, which MKL runs faster (I=2, G·H=512, T·B=12800: 4.7 ms instead of 11.7 ms;
    I=131, T·B=12800: 5.5 instead of 7.1 ms). Otherwise directly, which leaves the result in the parameter's
    layout: the transposed result costs a transposing copy of the whole (G·H, I) gradient, which dominated
    short sequences (T·B=35, I=1025, G·H=2048: 3.1 ms against 0.65 ms; T·B=560, I=513, G·H=1024: 2.9 against
    1.8 ms). The rule T·B ≥ 8·I picked the faster one at all 8 shapes measured (Intel Xeon, MKL)."""
    if inputs.shape[0] >= 8 * inputs.shape[1]:
        return _matmul(ext, inputs.t(), d_pre).t()
    return _matmul(ext, d_pre.t(), inputs)


def _matmul(ext, a: Tensor, b: Tensor, scratch: bool = False) -> Tensor:
    """a · b by the compiled extension `ext`'s GEMM where it runs (oneDNN for large float32 products on AMD
    CPUs, see `_ext/bptt.cpp`), else (ext None) by PyTorch. scratch: the result is the engine's own temporary
    and may live in one of the extension's reused buffers (never for a tensor handed to the caller)."""
    return a @ b if ext is None else ext.matmul(a, b, scratch)


def _extension_on(device: torch.device):
    """The compiled extension for tensors on `device`, or None: it reads CPU memory only. Resolved once per
    engine call (it reads the environment, RNNLAB_ENGINE and RNNLAB_GEMM) and handed down from there."""
    return native.extension() if device.type == "cpu" else None


def _native_for(cell: Cell, ext):
    """The compiled loop for rnnlab's own cells, or None: a user's Cell subclass keeps the Python loop, and so
    does every call without the extension (other devices, RNNLAB_ENGINE=python)."""
    return ext if CELLS.get(cell.name) is cell else None


class _NativeSaved:
    """What the compiled forward keeps, indexable per step like the Python loop's list of `saved`."""

    def __init__(self, cell: Cell, hs: Tensor, acts: Tensor | None, aux: Tensor | None):
        self.cell, self.hs, self.acts, self.aux = cell, hs, acts, aux

    def __getitem__(self, t: int):
        if self.acts is None:  # vanilla: the saved value is h_t itself
            return self.hs[t + 1]
        return self.acts[t], self.aux[t]


def _run_layer_forward(ext, cell: Cell, x_pre: Tensor, bias_x, h0: Tensor, c0: Tensor | None, w_hh: Tensor, bias_h):
    """x_pre (T, B, G·H) is the input projection without its bias `bias_x` (G·H,): the compiled loop adds it
    in its pointwise pass (one pass over x_pre fewer); the Python loop adds it up front."""
    ext = _native_for(cell, ext)
    if ext is None:
        if bias_x is not None:
            x_pre += bias_x
        return _layer_forward(cell, x_pre, h0, c0, w_hh, bias_h)
    c0_arg = c0 if c0 is not None else h0  # ignored for cells without a cell state
    hs, cs, acts, aux = ext.forward(cell.native_kind, x_pre, h0, c0_arg, w_hh, bias_h, bias_x)
    if not (cell.has_cell_state or cell.separate_recurrent_grad):
        acts, aux = None, None
    return hs, (cs if cell.has_cell_state else None), _NativeSaved(cell, hs, acts, aux)


def _run_layer_backward(ext, cell, hs, cs, saved, w_hh, d_out, dh_last, dc_last, truncate, record) -> LayerGrads:
    """Backward of one layer by the compiled loop when it applies, else the Python loop."""
    ext = _native_for(cell, ext)
    if ext is None or not isinstance(saved, _NativeSaved) or (truncate is not None and truncate <= d_out.shape[0]):
        # Truncation keeps one gradient stream per entry step: the Python loop handles it.
        d_x_pre, d_h_pre, dh0, dc0, dh_seen, dc_seen = _layer_backward(
            cell, hs, cs, saved, w_hh, d_out, dh_last, dc_last, truncate, record != Record.NOTHING
        )
        seen = None
        if record != Record.NOTHING:
            c_norms = None if dc_seen is None else _row_norms(dc_seen)
            seen = (_row_norms(dh_seen), c_norms, dh_seen if record == Record.VECTORS else None)
        return LayerGrads(d_x_pre, d_h_pre, dh0, dc0, seen)
    d_x_pre, d_h_pre, dh0, dc0, norm_h, norm_c, vectors = ext.backward(
        cell.native_kind, hs, cs, saved.acts, saved.aux, w_hh, d_out, dh_last, dc_last, int(record)
    )
    seen = None
    if record != Record.NOTHING:  # the norms come from the loop itself, per sample, in float64
        seen = (norm_h, norm_c if cell.has_cell_state else None, vectors if record == Record.VECTORS else None)
    return LayerGrads(d_x_pre, d_h_pre, dh0, dc0 if cell.has_cell_state else None, seen)


def _row_norms(x: Tensor) -> Tensor:
    """‖x‖₂ over the last dim in float64: squaring a float32 gradient of 1e-20 would underflow to zero."""
    return torch.linalg.vector_norm(x, dim=-1, dtype=torch.float64)


def _layer_weights(spec: StackSpec, weights: tuple, layer: int):
    per_layer = 4 if spec.bias else 2
    w = weights[layer * per_layer : (layer + 1) * per_layer]
    return (w[0], w[1], w[2], w[3]) if spec.bias else (w[0], w[1], None, None)


class _StackBPTT(torch.autograd.Function):
    """forward(spec, recorder, name, x (T, B, I), h0 (L, B, H), c0 (L, B, H) | None, *weights) → (out, hn, cn)."""

    @staticmethod
    def forward(ctx, spec: StackSpec, recorder, name: str, x, h0, c0, *weights):
        ext = _extension_on(x.device)  # one decision for the forward and its backward
        with _FlushScope(spec.flush, ext):
            steps, batch, _ = x.shape
            layer_input = x
            layers = []
            h_n, c_n = [], []
            for layer in range(spec.num_layers):
                w_ih, w_hh, b_ih, b_hh = _layer_weights(spec, weights, layer)
                bias_x, bias_h = spec.cell.split_bias(b_ih, b_hh)
                flat = layer_input.reshape(steps * batch, -1)  # (T·B, I)
                x_pre = _matmul(ext, flat, w_ih.t(), scratch=True).view(steps, batch, -1)  # (T, B, G·H), no bias
                hs, cs, saved = _run_layer_forward(
                    ext, spec.cell, x_pre, bias_x, h0[layer], None if c0 is None else c0[layer], w_hh, bias_h
                )
                h_n.append(hs[-1])
                if cs is not None:
                    c_n.append(cs[-1])
                out = hs[1:]  # (T, B, H)
                mask = None
                if spec.dropout > 0 and spec.training and layer < spec.num_layers - 1:
                    # Inverted dropout between layers, as torch.nn does; the mask is kept for the backward.
                    keep = 1.0 - spec.dropout
                    mask = torch.empty_like(out).bernoulli_(keep).div_(keep)
                layers.append((layer_input, hs, cs, saved, mask))
                layer_input = out if mask is None else out * mask
            ctx.spec, ctx.recorder, ctx.name, ctx.ext = spec, recorder, name, ext
            ctx.layers = layers
            ctx.weights = weights
            # Saved through autograd so that an in-place edit of the input or a weight between forward and
            # backward is an error (as in torch.nn), and so a create_graph backward can differentiate them.
            ctx.save_for_backward(x, h0, c0, *weights)
            # A copy, so that in-place edits by the caller cannot corrupt the states kept for the backward.
            output = out.clone()
            hn = torch.stack(h_n)
            cn = torch.stack(c_n) if c_n else None
        return output, hn, cn

    @staticmethod
    def backward(ctx, d_output, d_hn, d_cn):
        saved_inputs = ctx.saved_tensors  # raises if any was modified in place since the forward
        if torch.is_grad_enabled():  # backward(create_graph=True): the gradient itself must be differentiable
            return _differentiable_backward(ctx, saved_inputs, d_output, d_hn, d_cn)
        return _fast_backward(ctx, d_output, d_hn, d_cn)


def _differentiable_backward(ctx, saved_inputs, d_output, d_hn, d_cn):
    """The backward for create_graph=True (gradient penalties, meta-learning, gradgradcheck).

    The hand-written backward is not differentiable, and a gradient that silently did not depend on the
    weights would be a wrong number. So the forward is run again with ordinary autograd-tracked ops (the same
    `cell.step` functions, on the saved inputs and weights, with the same dropout masks) and autograd
    differentiates it, building the graph that higher derivatives need. Exact, about as slow as plain
    autograd through a Python loop. A recorder still receives the exact per-step gradients from the fast
    backward, run once more without a graph.
    """
    spec: StackSpec = ctx.spec
    if spec.truncate is not None:
        raise NotImplementedError(
            "backward with create_graph=True through a truncated rnnlab module is not supported: the truncated "
            "gradient is not the derivative of any forward; use truncate=None for higher-order gradients"
        )
    x, h0, c0, *weights = saved_inputs
    if ctx.recorder is not None:
        with torch.no_grad():
            _fast_backward(ctx, d_output.detach(), d_hn.detach(), None if d_cn is None else d_cn.detach())
    masks = [layer[4] for layer in ctx.layers]
    needs = ctx.needs_input_grad
    wanted = [(_X, x), (_H0, h0), (_C0, c0), *((_FIRST_WEIGHT + i, w) for i, w in enumerate(weights))]
    wanted = [(i, t) for i, t in wanted if t is not None and needs[i]]
    with torch.enable_grad(), _FlushScope(spec.flush, ctx.ext):
        output, hn, cn = _differentiable_stack(spec, x, h0, c0, weights, masks)
        outputs, grads_out = [output, hn], [d_output, d_hn]
        if cn is not None and d_cn is not None:
            outputs.append(cn)
            grads_out.append(d_cn)
        found = torch.autograd.grad(outputs, [t for _, t in wanted], grads_out, create_graph=True, allow_unused=True)
    result: list[Tensor | None] = [None] * (_FIRST_WEIGHT + len(weights))
    for (i, t), g in zip(wanted, found, strict=True):
        result[i] = torch.zeros_like(t) if g is None else g
    return tuple(result)


def _differentiable_stack(spec: StackSpec, x: Tensor, h0: Tensor, c0: Tensor | None, weights, masks):
    """The stack's forward with autograd-tracked ops only: x (T, B, I) → (output (T, B, H), h_n, c_n)."""
    layer_input = x
    h_n, c_n = [], []
    for layer in range(spec.num_layers):
        w_ih, w_hh, b_ih, b_hh = _layer_weights(spec, weights, layer)
        bias_x, bias_h = spec.cell.split_bias(b_ih, b_hh)
        x_pre = layer_input @ w_ih.t()  # (T, B, G·H)
        if bias_x is not None:
            x_pre = x_pre + bias_x
        h, c = h0[layer], None if c0 is None else c0[layer]
        states = []
        for t in range(x.shape[0]):
            h, c, _ = spec.cell.step(x_pre[t], h, c, w_hh, bias_h)
            states.append(h)
        output = torch.stack(states)  # (T, B, H)
        h_n.append(h)
        if c is not None:
            c_n.append(c)
        layer_input = output if masks[layer] is None else output * masks[layer]
    return output, torch.stack(h_n), torch.stack(c_n) if c_n else None


def _fast_backward(ctx, d_output, d_hn, d_cn):
    """The hand-written BPTT backward (compiled or Python loop): first-order gradients, recording, truncation."""
    spec: StackSpec = ctx.spec
    recorder, ext = ctx.recorder, ctx.ext
    with _FlushScope(spec.flush, ext):
        weight_grads: list[Tensor | None] = [None] * len(ctx.weights)
        dh0 = torch.empty_like(d_hn)
        dc0 = torch.empty_like(d_cn) if d_cn is not None else None
        seen: list = [None] * spec.num_layers
        record = Record.NOTHING if recorder is None else (Record.VECTORS if recorder.keep_vectors else Record.NORMS)
        d_out = d_output
        per_layer = 4 if spec.bias else 2
        d_x = None
        for layer in range(spec.num_layers - 1, -1, -1):
            layer_input, hs, cs, saved, _ = ctx.layers[layer]
            w_ih, w_hh, _, _ = _layer_weights(spec, ctx.weights, layer)
            grads = _run_layer_backward(
                ext,
                spec.cell,
                hs,
                cs,
                saved,
                w_hh,
                d_out,
                d_hn[layer],
                None if d_cn is None else d_cn[layer],
                spec.truncate,
                record,
            )
            seen[layer] = grads.seen
            dh0[layer] = grads.dh0
            if dc0 is not None:
                dc0[layer] = grads.dc0
            steps, batch, gh = grads.d_x_pre.shape
            flat_dx = grads.d_x_pre.reshape(steps * batch, gh)  # (T·B, G·H)
            flat_dh = grads.d_h_pre.reshape(steps * batch, gh)
            base = layer * per_layer
            needs = ctx.needs_input_grad[_FIRST_WEIGHT + base : _FIRST_WEIGHT + base + per_layer]
            weight_grads[base : base + per_layer] = _layer_weight_grads(
                ext,
                flat_dx,
                flat_dh,
                layer_input.reshape(steps * batch, -1),
                hs[:-1].reshape(steps * batch, -1),
                spec.bias,
                needs,
                shared=not spec.cell.separate_recurrent_grad,
            )
            if layer > 0 or ctx.needs_input_grad[_X]:
                d_x = _matmul(ext, flat_dx, w_ih).view(steps, batch, -1)  # (T, B, I)
            if layer > 0:
                mask = ctx.layers[layer - 1][4]
                d_out = d_x if mask is None else d_x * mask
        if recorder is not None:
            recorder.add_backward(ctx.name, seen)
    return (None, None, None, d_x, dh0, dc0, *weight_grads)


def run_stack(
    spec: StackSpec,
    x: Tensor,
    h0: Tensor,
    c0: Tensor | None,
    weights: list[Tensor],
    recorder=None,
    name: str = "",
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Run a stack of recurrent layers with the explicit BPTT engine.

    **Arguments**: x (T, B, I) time-major; h0, c0 (L, B, H) (c0 only for LSTMs); `weights` flat in
    torch.nn's order (w_ih, w_hh[, b_ih, b_hh]) per layer; `recorder` (a `rnnlab.recurrent.recording.GradientRecorder`)
    receives ∂L/∂h_t of every step and layer on backward, under `name`.

    **Returns**: output (T, B, H) of the top layer, h_n (L, B, H), c_n (L, B, H) or None.

    An LSTM with `spec.proj_size > 0` takes `projected.run_projected` (weights per layer also hold w_hr; h0,
    h_n and the output have P features): the hand-written backward has no projection.
    """
    if spec.proj_size:
        from rnnlab.recurrent.projected import run_projected  # it imports this module: import at use

        return run_projected(spec, x, h0, c0, weights, recorder, name)
    return _StackBPTT.apply(spec, recorder, name, x, h0, c0, *weights)
