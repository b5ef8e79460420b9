"""Forwards the engine cannot take in one call, run as several engine calls that autograd joins.

- `bidirectional=True`: per layer and direction a one-layer call, the reverse direction on the time-flipped
  input, its output flipped back (`run_split`);
- `PackedSequence` input: one run per group of equal-length sequences, so each sequence's h_n and c_n are its
  own last step's and its reverse direction starts at its own end (`run_packed`);
- `dropout=1` in training (zeros between layers, as torch.nn) takes `run_split` too (`needs_split`);
- an empty batch (`empty_batch`): empty outputs that still depend on every input, as torch.nn's do.

Each call goes to `run`, the stack runner the module's dispatcher chose (`engine.run_stack`, or
`projected.run_projected` for an LSTM with a projection), so this module knows neither. A recorder receives one
record per backward all the same (`recorder.SplitRecording`). The unidirectional module on a padded tensor never
comes here: it is one call (`modules.RecurrentBase._run`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab.recurrent.engine import StackSpec
from rnnlab.recurrent.recorder import SplitRecording
from rnnlab.recurrent.validation import check_values, initial_state

#: A stack runner: (spec, x (T, B, I), h0, c0, weights, recorder, name) → (output, h_n, c_n).
Runner = Callable[..., tuple[Tensor, Tensor, Tensor | None]]


def needs_split(spec: StackSpec, directions: int) -> bool:
    """Whether a stack must run as one call per layer and direction: bidirectional, or dropout = 1 between
    layers in training (torch.nn's zeros, which the engine's inverted dropout cannot scale)."""
    return directions == 2 or (spec.training and spec.dropout == 1 and spec.num_layers > 1)


def run_split(run: Runner, spec: StackSpec, directions: int, x, h0, c0, weights, recorder, name: str):
    """The stack as one one-layer call per layer and direction, x (T, B, I) → (output (T, B, D·H), h_n, c_n);
    a recorder gets one record per backward."""
    split = None if recorder is None else SplitRecording(recorder, name, spec.num_layers, directions, *x.shape[:2])
    return _layers_apart(run, spec, directions, x, h0, c0, weights, split, None)


def run_packed(run: Runner, spec: StackSpec, directions: int, x, h0, c0, weights, lengths, recorder, name: str):
    """PackedSequence input, unpacked to x (T, B, I) with `lengths` (B,): one run per group of sequences
    of equal length ℓ on x[:ℓ] of that group, so every sequence's h_n (and c_n) is its own last step's
    and its reverse direction starts at its own end. Sequences never interact, so the groups are
    independent; a batch of k distinct lengths costs k runs. → (output (T, B, D·H), zeros past each
    length; h_n, c_n (L·D, B, H))."""
    steps, batch = x.shape[0], x.shape[1]
    split = None
    if recorder is not None:
        split = SplitRecording(recorder, name, spec.num_layers, directions, steps, batch, lengths)
    apart = needs_split(spec, directions)
    outputs, h_parts, c_parts, order = [], [], [], []
    for length in lengths.unique().tolist():
        columns = torch.nonzero(lengths == length).flatten()
        xg = x[:length, columns].contiguous()  # (ℓ, b, I)
        hg = h0[:, columns]
        cg = None if c0 is None else c0[:, columns]
        if apart:
            out, hn, cn = _layers_apart(run, spec, directions, xg, hg, cg, weights, split, columns)
        else:
            part = None if split is None else split.part(0, 0, columns, False)
            out, hn, cn = run(spec, xg, hg, cg, weights, part, name)
        outputs.append(nn.functional.pad(out, (0, 0, 0, 0, 0, steps - length)))  # (T, b, D·H)
        h_parts.append(hn)
        if cn is not None:
            c_parts.append(cn)
        order.append(columns)
    inverse = torch.argsort(torch.cat(order))  # from group order back to the batch order
    output = torch.cat(outputs, dim=1)[:, inverse]
    h_n = torch.cat(h_parts, dim=1)[:, inverse]
    c_n = torch.cat(c_parts, dim=1)[:, inverse] if c_parts else None
    return output, h_n, c_n


def _layers_apart(run: Runner, spec: StackSpec, directions: int, x, h0, c0, weights, split, columns):
    """One one-layer call per layer and direction. The reverse direction runs on the time-flipped input and its
    output is flipped back (x here holds sequences of one length, so this is torch.nn's flip within each
    sequence's length); dropout between layers is torch.nn.functional.dropout, which gives zeros for p = 1.
    `columns`: which of the module's batch columns x holds (None: all), for the recording."""
    per_layer = spec.weights_per_layer
    one = replace(spec, num_layers=1, dropout=0.0)
    layer_input = x
    h_n, c_n = [], []
    for layer in range(spec.num_layers):
        outputs = []
        for direction in range(directions):
            row = layer * directions + direction
            w = weights[row * per_layer : (row + 1) * per_layer]
            flip = direction == 1
            xi = layer_input.flip(0) if flip else layer_input
            part = None if split is None else split.part(layer, direction, columns, flip)
            out, hn, cn = run(one, xi, h0[row : row + 1], None if c0 is None else c0[row : row + 1], w, part, "")
            outputs.append(out.flip(0) if flip else out)  # (T, B, H) in the original time order
            h_n.append(hn)
            if cn is not None:
                c_n.append(cn)
        layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D·H)
        if layer < spec.num_layers - 1 and spec.dropout > 0 and spec.training:
            layer_input = nn.functional.dropout(layer_input, spec.dropout, training=True)
    return layer_input, torch.cat(h_n), torch.cat(c_n) if c_n else None


def empty_batch(x: Tensor, h0: Tensor, c0: Tensor | None, weights, features: int):
    """B = 0: empty outputs (T, 0, `features`) and states, as torch.nn returns; they still depend on the input,
    the state and every weight, so a backward through them gives zero gradients of the right shapes."""
    anchor = x.sum() * 0 + sum(w.sum() * 0 for w in weights)  # a zero scalar in the graph of everything
    output = x.new_zeros((x.shape[0], 0, features)) + anchor
    return output, h0 + anchor, None if c0 is None else c0 + anchor


def forward_packed(module, packed: PackedSequence, hx):
    """torch.nn's PackedSequence contract: hx and h_n in the caller's batch order, output packed alike."""
    check_values(module, packed.data, "(N, I) packed data")
    # Padded in the caller's batch order (pad_packed_sequence applies unsorted_indices); lengths likewise.
    x, lengths = pad_packed_sequence(packed)  # (T, B, I), (B,)
    h0, c0 = initial_state(module, hx, x, True)
    output, h_n, c_n = module._run(x, h0, c0, lengths)
    # Pack in the input's order (its batch_sizes, sorted_indices and unsorted_indices).
    if packed.sorted_indices is not None:
        output, lengths = output[:, packed.sorted_indices], lengths[packed.sorted_indices.cpu()]
    data_out = pack_padded_sequence(output, lengths, enforce_sorted=True).data
    out = PackedSequence(data_out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    return (out, (h_n, c_n)) if module.cell.has_cell_state else (out, h_n)
