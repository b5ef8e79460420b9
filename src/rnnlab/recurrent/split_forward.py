"""Forwards the engine cannot take in one call, run as several engine calls that autograd joins.

- `bidirectional=True`: per layer and direction a one-layer engine call, the reverse direction on the
  time-flipped input, its output flipped back (`run_split`);
- `PackedSequence` input: one run per group of equal-length sequences, so each sequence's h_n and c_n are its
  own last step's and its reverse direction starts at its own end (`forward_packed`, `run_packed`);
- `dropout=1` in training (zeros between layers, as torch.nn) takes `run_split` too;
- an empty batch (`empty_batch`): empty outputs that still depend on every input, as torch.nn's do.

A recorder attached to the module receives one record per backward all the same (`split_recording`).
The unidirectional module on a padded tensor never comes here: it is one engine call (`modules.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnnlab.recurrent.engine import run_stack

if TYPE_CHECKING:
    from rnnlab.recurrent.modules import RecurrentBase


def run_split(module, x, h0, c0, weights, split, columns, batch):
    """The stack as one one-layer engine call per layer and direction, x (T, B, I) → (output (T, B, D·H),
    h_n, c_n). The reverse direction runs on the time-flipped input and its output is flipped back (x
    here holds sequences of one length, so this is torch.nn's flip within each sequence's length);
    dropout between layers is torch.nn.functional.dropout, which gives zeros for p = 1."""
    per_layer = module.weights_per_layer
    spec = module._spec(num_layers=1, dropout=0.0)
    layer_input = x
    h_n, c_n = [], []
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(module.num_directions):
            row = layer * module.num_directions + direction
            w = weights[row * per_layer : (row + 1) * per_layer]
            flip = direction == 1
            xi = layer_input.flip(0) if flip else layer_input
            part = None if split is None else split.part(layer, direction, columns, batch, flip)
            out, hn, cn = run_stack(spec, xi, h0[row : row + 1], None if c0 is None else c0[row : row + 1], w, part, "")
            outputs.append(out.flip(0) if flip else out)  # (T, B, H) in the original time order
            h_n.append(hn)
            if cn is not None:
                c_n.append(cn)
        layer_input = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]  # (T, B, D·H)
        if layer < module.num_layers - 1 and module.dropout > 0 and module.training:
            layer_input = nn.functional.dropout(layer_input, module.dropout, training=True)
    return layer_input, torch.cat(h_n), torch.cat(c_n) if c_n else None


def run_packed(module, x, h0, c0, weights, lengths, recorder, record_name):
    """PackedSequence input, unpacked to x (T, B, I) with `lengths` (B,): one run per group of sequences
    of equal length ℓ on x[:ℓ] of that group, so every sequence's h_n (and c_n) is its own last step's
    and its reverse direction starts at its own end. Sequences never interact, so the groups are
    independent; a batch of k distinct lengths costs k runs. → (output (T, B, D·H), zeros past each
    length; h_n, c_n (L·D, B, H))."""
    steps, batch = x.shape[0], x.shape[1]
    split = None
    if recorder is not None:
        split = split_recording(recorder, record_name, module, steps, lengths)
    one_call = not module.bidirectional and not (module.training and module.dropout == 1 and module.num_layers > 1)
    outputs, h_parts, c_parts, order = [], [], [], []
    for length in lengths.unique().tolist():
        columns = torch.nonzero(lengths == length).flatten()
        xg = x[:length, columns].contiguous()  # (ℓ, b, I)
        hg = h0[:, columns]
        cg = None if c0 is None else c0[:, columns]
        if one_call:
            part = None if split is None else split.part(0, 0, columns, batch, False)
            out, hn, cn = run_stack(module._spec(), xg, hg, cg, weights, part, record_name)
        else:
            out, hn, cn = run_split(module, xg, hg, cg, weights, split, columns, batch)
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


def empty_batch(module, x: Tensor, h0: Tensor, c0: Tensor | None, weights):
    """B = 0: empty outputs and states, as torch.nn returns; they still depend on the input, the state and
    every weight, so a backward through them gives zero gradients of the right shapes (as torch.nn)."""
    anchor = x.sum() * 0 + sum(w.sum() * 0 for w in weights)  # a zero scalar in the graph of everything
    output = x.new_zeros((x.shape[0], 0, module.num_directions * module.state_size)) + anchor
    return output, h0 + anchor, None if c0 is None else c0 + anchor


def forward_packed(module, packed: PackedSequence, hx):
    """torch.nn's PackedSequence contract: hx and h_n in the caller's batch order, output packed alike."""
    name = type(module).__name__
    data = packed.data
    module._check_values(data, name, "(N, I) packed data")
    # Padded in the caller's batch order (pad_packed_sequence applies unsorted_indices); lengths likewise.
    x, lengths = pad_packed_sequence(packed)  # (T, B, I), (B,)
    h0, c0 = module._initial_state(hx, x, True)
    output, h_n, c_n = module._run(x, h0, c0, lengths)
    # Pack in the input's order (its batch_sizes, sorted_indices and unsorted_indices).
    if packed.sorted_indices is not None:
        output, lengths = output[:, packed.sorted_indices], lengths[packed.sorted_indices.cpu()]
    data_out = pack_padded_sequence(output, lengths, enforce_sorted=True).data
    out = PackedSequence(data_out, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    return (out, (h_n, c_n)) if module.cell.has_cell_state else (out, h_n)


def split_recording(recorder, name: str, module: RecurrentBase, steps: int, lengths: Tensor | None = None):
    """A `recording.SplitRecording` for a forward split into several engine calls."""
    from rnnlab.recurrent.recording import SplitRecording  # recording imports this module: import at use

    lengths = None if lengths is None else lengths.cpu()
    return SplitRecording(recorder, name, module.num_layers, module.num_directions, steps, lengths)
