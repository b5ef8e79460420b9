"""LSTM with a projection (`proj_size > 0`, Sak et al. 2014, as `torch.nn.LSTM`): autograd through the steps.

Per step, after the LSTM's own step (c_t (B, H), o ⊙ tanh(c_t) (B, H)), the state is projected::

    h_t = (o ⊙ tanh(c_t)) W_hrᵀ          W_hr (P, H), h_t (B, P); W_hh is (4H, P), and the layers above see P·D

The engine's hand-written backward (and its compiled loop) has no projection, so this stack runs as one
`torch.autograd.Function` whose backward re-runs the forward under autograd (the same `cell.step`, on the
saved inputs and weights, with the same dropout masks) and lets autograd differentiate it. The per-step
gradients come from the same call: asking autograd for the gradient with respect to each state h_t (and c_t)
gives the total ∂L/∂h_t — from the loss at step t, the layer above and step t+1 — which a recorder receives
as from the engine. Exact in float64 against torch.nn (tests/test_projection.py), higher-order gradients
included (create_graph=True builds the graph), in-place edits detected (inputs and weights are saved through
autograd). Cost: the forward runs twice, and each step is a few small tensor operations (docs/drop-in.md, "LSTM with a projection"; measured there).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent.denormals import FlushScope
from rnnlab.recurrent.engine import StackSpec
from rnnlab.recurrent.gemm import extension_on
from rnnlab.recurrent.recorder import row_norms


def _stack(spec: StackSpec, x: Tensor, h0: Tensor, c0: Tensor, weights, masks: list):
    """The projected stack's forward with ordinary ops: x (T, B, I) → (output (T, B, P), h_n (L, B, P), c_n
    (L, B, H), per layer the states [h_t] and [c_t] at the output of every step). masks[l]: dropout mask of
    layer l's output (drawn here where None and needed; the list is filled in, so a re-run uses the same)."""
    layer_input = x
    h_n, c_n, states = [], [], []
    for layer in range(spec.num_layers):
        w_ih, w_hh, b_ih, b_hh, w_hr = spec.layer_weights(weights, layer)
        bias_x, bias_h = spec.cell.split_bias(b_ih, b_hh)
        x_pre = layer_input @ w_ih.t()  # (T, B, 4H)
        if bias_x is not None:
            x_pre = x_pre + bias_x
        h, c = h0[layer], c0[layer]  # (B, P), (B, H)
        hs, cs = [], []
        for t in range(x.shape[0]):
            h_raw, c, _ = spec.cell.step(x_pre[t], h, c, w_hh, bias_h)  # (B, H), (B, H)
            h = h_raw @ w_hr.t()  # (B, P)
            hs.append(h)
            cs.append(c)
        output = torch.stack(hs)  # (T, B, P)
        h_n.append(h)
        c_n.append(c)
        states.append((hs, cs))
        if masks[layer] is None:  # inverted dropout between layers, as torch.nn and the engine
            masks[layer] = spec.dropout_mask(output, layer)
        layer_input = output if masks[layer] is None else output * masks[layer]
    return layer_input, torch.stack(h_n), torch.stack(c_n), states


class _ProjectedStack(torch.autograd.Function):
    """forward(spec, recorder, name, x (T, B, I), h0 (L, B, P), c0 (L, B, H), *weights) → (out, h_n, c_n)."""

    @staticmethod
    def forward(ctx, spec: StackSpec, recorder, name: str, x, h0, c0, *weights):
        masks: list = [None] * spec.num_layers
        with FlushScope(spec.flush, extension_on(x.device)):
            output, hn, cn, _ = _stack(spec, x, h0, c0, weights, masks)
        ctx.spec, ctx.recorder, ctx.name, ctx.masks = spec, recorder, name, masks
        # Saved through autograd: an in-place edit before the backward is an error, as in torch.nn.
        ctx.save_for_backward(x, h0, c0, *weights)
        return output, hn, cn

    @staticmethod
    def backward(ctx, d_output, d_hn, d_cn):
        spec: StackSpec = ctx.spec
        x, h0, c0, *weights = ctx.saved_tensors
        inputs = [x, h0, c0, *weights]
        needs = ctx.needs_input_grad[3:]
        wanted = [i for i in range(len(inputs)) if needs[i]]
        if not wanted and ctx.recorder is None:
            return (None,) * (3 + len(inputs))
        create_graph = torch.is_grad_enabled()  # backward(create_graph=True): keep the graph of the gradient
        with torch.enable_grad(), FlushScope(spec.flush, extension_on(x.device)):
            if not create_graph:  # a first-order backward differentiates detached copies: no graph leaks out
                inputs = [t.detach().requires_grad_(needs[i]) for i, t in enumerate(inputs)]
            output, hn, cn, states = _stack(spec, inputs[0], inputs[1], inputs[2], inputs[3:], list(ctx.masks))
            flat_states = [s for hs, cs in states for s in (*hs, *cs)] if ctx.recorder is not None else []
            found = torch.autograd.grad(
                [output, hn, cn],
                [inputs[i] for i in wanted] + flat_states,
                [d_output, d_hn, d_cn],
                create_graph=create_graph,
                allow_unused=True,
            )
        grads: list[Tensor | None] = [None] * len(inputs)
        for i, g in zip(wanted, found[: len(wanted)], strict=True):
            grads[i] = torch.zeros_like(inputs[i]) if g is None else g
        if ctx.recorder is not None:
            _record(ctx.recorder, ctx.name, states, found[len(wanted) :])
        return (None, None, None, *grads)


def _record(recorder, name: str, states, state_grads) -> None:
    """Hand the recorder, per layer, (‖∂L/∂h_t‖ (T, B), ‖∂L/∂c_t‖ (T, B), ∂L/∂h_t (T, B, P) or None) in float64
    norms, as the engine does; a state the loss does not reach has gradient 0."""

    def stacked(grads, like) -> Tensor:  # (T, B, ·), zeros where autograd found no path
        return torch.stack([torch.zeros_like(s) if g is None else g for g, s in zip(grads, like, strict=True)]).detach()

    seen, k = [], 0
    for hs, cs in states:
        steps = len(hs)
        dh = stacked(state_grads[k : k + steps], hs)  # (T, B, P)
        dc = stacked(state_grads[k + steps : k + 2 * steps], cs)  # (T, B, H)
        k += 2 * steps
        seen.append((row_norms(dh), row_norms(dc), dh if recorder.keep_vectors else None))
    recorder.add_backward(name, seen)


def run_projected(spec: StackSpec, x: Tensor, h0: Tensor, c0: Tensor, weights, recorder=None, name: str = ""):
    """The projected LSTM stack (see the module doc); arguments as `engine.run_stack`, with `weights` per layer
    (w_ih, w_hh[, b_ih, b_hh], w_hr), h0 (L, B, P) and c0 (L, B, H). Truncation is not available here."""
    if spec.truncate is not None:
        raise NotImplementedError(
            "truncate is not supported for an LSTM with proj_size > 0 (its backward is autograd's, which cannot "
            "truncate inside one forward); use truncated BPTT over chunks, or proj_size=0"
        )
    return _ProjectedStack.apply(spec, recorder, name, x, h0, c0, *weights)
