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
re-runs the forward under autograd (`_differentiable_backward`). The loop of one layer is in `loops.py`, the
matrix products in `gemm.py`; an LSTM with a projection (proj_size > 0) does not come here (`projected.py`:
the hand-written backward has no projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnnlab.recurrent.cells import Cell, Recurrence
from rnnlab.recurrent.denormals import FlushScope
from rnnlab.recurrent.gemm import extension_on, layer_weight_grads, listed_weight_grads, matmul
from rnnlab.recurrent.loops import Record, run_layer_backward, run_layer_forward

# Positions of the tensors among _StackBPTT.forward's arguments (spec, recorder, name, x, h0, c0, *weights),
# which is how autograd's needs_input_grad and backward's return value are indexed.
_X, _H0, _C0, _FIRST_WEIGHT = 3, 4, 5, 6


@dataclass(frozen=True)
class StackSpec:
    """What the engine needs to know about a stack beyond its tensors."""

    cell: Cell
    num_layers: int
    bias: bool
    dropout: float = 0.0  # probability of zeroing a layer's output before the next layer (training only)
    training: bool = False
    truncate: int | None = None  # keep ∂L_s/∂h_t only for s − t < truncate (None: full BPTT)
    flush: bool = True  # flush denormal floats to zero inside forward and backward (see `denormals.py`)
    proj_size: int = 0  # LSTM only: the size P of the projected state h_t (0: none; see `projected.py`)
    scan: bool = False  # run each layer as one parallel scan where the cell has one (`scan.py`), not a loop

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The kinds of tensor per layer and direction in the flat list, torch.nn's order: w_ih, w_hh[, b_ih,
        b_hh][, w_hr] — less what the cell does not have (`Cell.parameter_names`)."""
        return self.cell.parameter_names(self.bias) + (("weight_hr",) if self.proj_size else ())

    @property
    def weights_per_layer(self) -> int:
        """Tensors per layer and direction in the flat list."""
        return len(self.parameter_names)

    def layer_weights(self, weights, layer: int) -> tuple:
        """One layer's (w_ih, w_hh or None, b_ih or None, b_hh or None[, w_hr]) from the flat list in torch.nn's
        order (None: the module was built without biases, or the cell has no such tensor)."""
        w = weights[layer * self.weights_per_layer : (layer + 1) * self.weights_per_layer]
        named = dict(zip(self.parameter_names, w, strict=True))
        found = tuple(named.get(k) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        return (*found, named["weight_hr"]) if self.proj_size else found

    def dropout_mask(self, output: Tensor, layer: int) -> Tensor | None:
        """Inverted dropout between layers, as torch.nn: a mask for layer `layer`'s output (T, B, H), or None."""
        if not (self.dropout > 0 and self.training and layer < self.num_layers - 1):
            return None
        keep = 1.0 - self.dropout
        return torch.empty_like(output).bernoulli_(keep).div_(keep)


class _StackBPTT(torch.autograd.Function):
    """forward(spec, recorder, name, x (T, B, I), h0 (L, B, H), c0 (L, B, H) | None, *weights) → (out, hn, cn)."""

    @staticmethod
    def forward(ctx, spec: StackSpec, recorder, name: str, x, h0, c0, *weights):
        ext = extension_on(x.device)  # one decision for the forward and its backward
        with FlushScope(spec.flush, ext):
            steps, batch, _ = x.shape
            layer_input = x
            layers = []
            h_n, c_n = [], []
            for layer in range(spec.num_layers):
                w_ih, w_hh, b_ih, b_hh = spec.layer_weights(weights, layer)
                bias_x, bias_h = spec.cell.split_bias(b_ih, b_hh)
                flat = layer_input.reshape(steps * batch, -1)  # (T·B, I)
                x_pre = matmul(ext, flat, w_ih.t(), scratch=True).view(steps, batch, -1)  # (T, B, G·H), no bias
                c0_layer = None if c0 is None else c0[layer]
                hs, cs, saved = run_layer_forward(
                    ext, spec.cell, x_pre, bias_x, h0[layer], c0_layer, w_hh, bias_h, scan=spec.scan
                )
                h_n.append(hs[-1])
                if cs is not None:
                    c_n.append(cs[-1])
                out = hs[1:]  # (T, B, H)
                mask = spec.dropout_mask(out, layer)  # kept for the backward
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


def _fast_backward(ctx, d_output, d_hn, d_cn):
    """The hand-written BPTT backward (compiled or Python loop): first-order gradients, recording, truncation."""
    spec: StackSpec = ctx.spec
    recorder, ext = ctx.recorder, ctx.ext
    with FlushScope(spec.flush, ext):
        weight_grads: list[Tensor | None] = [None] * len(ctx.weights)
        dh0 = torch.empty_like(d_hn)
        dc0 = torch.empty_like(d_cn) if d_cn is not None else None
        seen: list = [None] * spec.num_layers
        record = Record.NOTHING if recorder is None else (Record.VECTORS if recorder.keep_vectors else Record.NORMS)
        d_out, d_x = d_output, None
        for layer in range(spec.num_layers - 1, -1, -1):
            layer_input, hs, cs, saved, _ = ctx.layers[layer]
            w_ih, w_hh, _, _ = spec.layer_weights(ctx.weights, layer)
            dc_last = None if d_cn is None else d_cn[layer]
            grads = run_layer_backward(
                ext, spec.cell, hs, cs, saved, w_hh, d_out, d_hn[layer], dc_last, spec.truncate, record
            )
            seen[layer] = grads.seen
            if record is Record.VECTORS:  # the states beside the gradients: Ω (rnnlab.omega) needs both, per layer
                seen[layer] = (*grads.seen[:3], hs[1:])
            dh0[layer] = grads.dh0
            if dc0 is not None:
                dc0[layer] = grads.dc0
            steps, batch, gh = grads.d_x_pre.shape
            flat_dx = grads.d_x_pre.reshape(steps * batch, gh)  # (T·B, G·H)
            first = layer * spec.weights_per_layer
            needs = ctx.needs_input_grad[_FIRST_WEIGHT + first : _FIRST_WEIGHT + first + spec.weights_per_layer]
            weight_grads[first : first + spec.weights_per_layer] = _weight_grads(
                spec, ext, grads, layer_input, hs, cs, saved, needs
            )
            if layer > 0 or ctx.needs_input_grad[_X]:
                d_x = matmul(ext, flat_dx, w_ih).view(steps, batch, -1)  # (T, B, I)
            if layer > 0:
                mask = ctx.layers[layer - 1][4]
                d_out = d_x if mask is None else d_x * mask
        if recorder is not None:
            recorder.add_backward(ctx.name, seen)
    return (None, None, None, d_x, dh0, dc0, *weight_grads)


def _weight_grads(spec: StackSpec, ext, grads, layer_input: Tensor, hs: Tensor, cs, saved, needs) -> list:
    """One layer's weight gradients, in the order of `spec.parameter_names` (None where not needed), each one
    GEMM over all T·B rows, from the layer's backward (`grads`) and forward (its input, states, saved)."""
    steps, batch, gh = grads.d_x_pre.shape
    flat_dx, flat_dh = grads.d_x_pre.reshape(steps * batch, gh), grads.d_h_pre.reshape(steps * batch, gh)
    # What W_hh multiplied at each step: h_{t−1}, or coRNN's [z_{t−1}, y_{t−1}] (`Cell.recurrent_operand`)
    operand = spec.cell.recurrent_operand(hs[:-1], None if cs is None else cs[:-1])  # (T, B, S)
    flat_x, flat_h = layer_input.reshape(steps * batch, -1), operand.reshape(steps * batch, -1)
    if not (spec.cell.recurrence is Recurrence.MATRIX and spec.cell.recurrent_bias):
        return listed_weight_grads(ext, flat_dx, flat_dh, flat_x, flat_h, spec.cell, spec.bias, needs)
    step_bias = spec.bias and spec.cell.step_bias  # not additive: the cell gives its gradient
    shared = not spec.cell.separate_recurrent_grad
    found = layer_weight_grads(ext, flat_dx, flat_dh, flat_x, flat_h, spec.bias and not step_bias, needs, shared)
    result = found + [None] * (len(needs) - len(found))  # the matrices (and additive biases), then the step bias
    if step_bias and needs[2]:
        result[2] = spec.cell.step_bias_grad(grads.d_x_pre, _stacked(saved))
    if needs[1]:  # what W_hh holds beyond the product with h_{t−1} (an output-gate peephole's V_o)
        result[1] = spec.cell.recurrent_weight_grad(result[1], grads.d_h_pre, hs, cs)
    return result


def _stacked(saved) -> Tensor:
    """What `Cell.step` saved at every step, as one (T, B, …) tensor (the Python loop keeps a list)."""
    return saved if isinstance(saved, Tensor) else torch.stack(list(saved))


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
    with torch.enable_grad(), FlushScope(spec.flush, ctx.ext):
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
        w_ih, w_hh, b_ih, b_hh = spec.layer_weights(weights, layer)
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

    **Arguments**: x (T, B, I) time-major; h0, c0 (L, B, H) (c0 only for cells with a cell state); `weights`
    flat in torch.nn's order (w_ih, w_hh[, b_ih, b_hh]) per layer; `recorder` (a
    `rnnlab.recurrent.recorder.GradientRecorder`) receives ∂L/∂h_t of every step and layer on backward, under
    `name`. A stack with `spec.proj_size > 0` is refused: it runs in `projected.run_projected`.

    **Returns**: output (T, B, H) of the top layer, h_n (L, B, H), c_n (L, B, H) or None.
    """
    if spec.proj_size:
        raise ValueError("run_stack: an LSTM with proj_size > 0 runs in projected.run_projected (no projection here)")
    return _StackBPTT.apply(spec, recorder, name, x, h0, c0, *weights)
