"""What the engine hands the gradients to: `GradientRecorder`, one `BackwardRecord` per backward.

The engine (and the projected LSTM's backward) call `add_backward(module, seen)` once per backward with, per
layer, the per-sample norms ‖∂L/∂h_t‖₂ (T, B) it computed while walking back in time. `SplitRecording` gathers
the engine calls of a forward split into several (bidirectional layers, PackedSequence groups) into one record.
This module sits below the engine and the modules and imports neither: attaching a recorder to a model's modules
is `rnnlab.recurrent.recording.record_gradients`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class BackwardRecord:
    """One backward pass through one recorded module.

    `norms[l, t]` is the batch mean of ‖∂L/∂h_t‖₂ at layer l, step t, shape (L, T), in float64; `cell_norms` the same for
    the cell state (the LSTM's c_t, coRNN's z_t; None for other cells); `per_sample` / `cell_per_sample` are (L, T, B) when the
    recorder was asked for them, else None. ∂L/∂h_t is the total gradient at the output of step t: what
    arrives from the loss at step t, from the layer above, and back through time from step t+1.

    Bidirectional modules: this record is the forward direction and `reverse` holds the reverse direction's
    record (`direction="reverse"`), both indexed by the original time step t — so the reverse direction's
    own first step is t = T−1 and its lag 0 (its last step) is t = 0. PackedSequence input: `lengths` (B,)
    holds each sequence's length; step t of sequence b is its own step t, steps t ≥ lengths[b] do not
    exist and are recorded as exactly 0 in `per_sample`, and `norms[l, t]` is the mean over the sequences
    that reach step t.
    """

    module: str
    norms: Tensor
    cell_norms: Tensor | None = None
    per_sample: Tensor | None = None
    cell_per_sample: Tensor | None = None
    vectors: Tensor | None = None  # (L, T, B, H) the gradients themselves, when the recorder keeps them
    states: Tensor | None = None  # (L, T, B, H) the states h_t of every layer, kept with the vectors (engine cells;
    # zeros at the steps of a split forward's part that no gradient reached)
    direction: str = "forward"  # "forward", or "reverse" for the reverse direction of a bidirectional module
    reverse: BackwardRecord | None = None  # the reverse direction of a bidirectional module, else None
    lengths: Tensor | None = None  # (B,) each sequence's length for PackedSequence input, else None


def row_norms(x: Tensor) -> Tensor:
    """‖x‖₂ over the last dim in float64: squaring a float32 gradient of 1e-20 would underflow to zero."""
    return torch.linalg.vector_norm(x, dim=-1, dtype=torch.float64)


def _has_states(seen: tuple) -> bool:
    return len(seen) > 3 and seen[3] is not None


def _layers(per_layer: list[Tensor]) -> Tensor:
    """Per-layer tensors stacked along a new first dim; one layer as a view (this runs once per recorded
    backward, and every tensor op counts at steps of a few hundred µs)."""
    return per_layer[0].unsqueeze(0) if len(per_layer) == 1 else torch.stack(per_layer)


class GradientRecorder:
    """Receives the engine's per-step gradient norms, one `BackwardRecord` per backward. The engine computes
    the norms as it walks back in time (in float64, in the compiled loop without storing the gradients), so
    recording costs little; `keep_vectors` also keeps ∂L/∂h_t itself."""

    def __init__(self, per_sample: bool = False, keep_vectors: bool = False):
        self.per_sample = per_sample
        self.keep_vectors = keep_vectors  # keep ∂L/∂h_t itself, (L, T, B, H): memory grows with T·B·H
        self.records: list[BackwardRecord] = []

    def add_backward(self, module: str, seen: list[tuple]) -> None:
        """Called by the engine once per backward: per layer, (‖∂L/∂h_t‖ (T, B) float64, ‖∂L/∂c_t‖ (T, B) or
        None, the vectors ∂L/∂h_t (T, B, H) or None — present when `keep_vectors` — and, from the BPTT engine
        when `keep_vectors`, a fourth item: the layer's states h_1 … h_T (T, B, H))."""
        h = _layers([s[0] for s in seen])  # (L, T, B)
        c = _layers([s[1] for s in seen]) if seen[0][1] is not None else None  # (L, T, B)
        vectors = _layers([s[2] for s in seen]) if self.keep_vectors else None
        states = _layers([s[3] for s in seen]) if self.keep_vectors and all(_has_states(s) for s in seen) else None
        self.records.append(self.make_record(module, h, c, vectors, states=states))

    def make_record(self, module: str, h: Tensor, c: Tensor | None, vectors, present: Tensor | None = None, **extra):
        """A BackwardRecord from per-sample norms h, c (L, T, B); `present` (T, B) marks the steps that exist
        (PackedSequence input), over which the batch mean is taken."""

        def mean(n: Tensor) -> Tensor:
            if present is not None:
                return n.sum(-1) / present.sum(-1).clamp(min=1)
            return n.squeeze(-1) if n.shape[-1] == 1 else n.mean(-1)  # batch 1: no reduction to launch

        return BackwardRecord(
            module=module,
            norms=mean(h),
            cell_norms=None if c is None else mean(c),
            per_sample=h if self.per_sample else None,
            cell_per_sample=c if self.per_sample else None,
            vectors=vectors if self.keep_vectors else None,
            **extra,
        )

    @property
    def last(self) -> BackwardRecord:
        if not self.records:
            raise RuntimeError("no gradients recorded yet: run a forward inside `record_gradients` and call backward")
        return self.records[-1]

    @property
    def norms(self) -> Tensor:
        """(L, T) batch-mean ‖∂L/∂h_t‖₂ of the most recent backward."""
        return self.last.norms

    @property
    def cell_norms(self) -> Tensor | None:
        """(L, T) batch-mean ‖∂L/∂c_t‖₂ of the most recent backward (LSTM's c_t, coRNN's z_t), else None."""
        return self.last.cell_norms


class SplitRecording:
    """One `BackwardRecord` per backward from a forward that ran as several engine calls: one per layer and
    direction of a bidirectional module, one per group of equal-length sequences of a PackedSequence.

    Each engine call gets a `part` (which layers, direction and batch columns it covers, and whether its
    time axis is reversed); the engine hands each part its norms on backward. The first part to arrive
    queues a callback that runs when the whole backward has finished, and assembles the record then. A part
    that no gradient reached (e.g. a loss on the first layer's final state only) is not run by autograd at
    all: its steps are recorded as 0, as the one-call engine records them.
    """

    def __init__(self, recorder: GradientRecorder, module: str, layers: int, directions: int, steps: int, batch: int,
                 lengths: Tensor | None = None):  # fmt: skip
        self.recorder, self.module = recorder, module
        self.layers, self.directions, self.steps, self.batch = layers, directions, steps, batch
        self.lengths = None if lengths is None else lengths.cpu()
        self.keep_vectors = recorder.keep_vectors
        self._arrived: list = []

    def part(self, first_layer: int, direction: int, columns: Tensor | None, flipped: bool):
        """The recorder to hand one engine call covering layers first_layer…, `direction` (0 forward, 1
        reverse), batch `columns` of the module's batch (None: all of it), time reversed if `flipped`."""
        return _Part(self, first_layer, direction, columns, flipped)

    def _arrive(self, part: _Part, seen: list) -> None:
        if not self._arrived:
            # Runs once the current backward (loss.backward() or autograd.grad) has finished.
            torch.autograd.Variable._execution_engine.queue_callback(self._finish)
        self._arrived.append((part, seen))

    def _finish(self) -> None:
        arrived, self._arrived = self._arrived, []
        h, c, vectors, states = self._assemble(arrived)
        present = None
        if self.lengths is not None:
            present = torch.arange(self.steps)[:, None] < self.lengths[None, :]  # (T, B)
        records = [
            self.recorder.make_record(
                self.module,
                h[d],
                None if c is None else c[d],
                None if vectors is None else vectors[d],
                present,
                states=None if states is None else states[d],
                direction=("forward", "reverse")[d],
                lengths=self.lengths,
            )
            for d in range(self.directions)
        ]
        if self.directions == 2:
            records[0].reverse = records[1]
        self.recorder.records.append(records[0])

    def _assemble(self, arrived: list) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """The parts' norms (and vectors, and states) in place: (D, L, T, B[, H]) each, zeros where no part
        reported (a part no gradient reached: its gradients are 0 there, so Ω leaves those steps out)."""
        first_seen = arrived[0][1][0]
        h = torch.zeros((self.directions, self.layers, self.steps, self.batch), dtype=torch.float64)
        c = torch.zeros_like(h) if first_seen[1] is not None else None
        vectors = states = None
        if self.keep_vectors:
            hidden = first_seen[2].shape[-1]
            vectors = first_seen[2].new_zeros((self.directions, self.layers, self.steps, self.batch, hidden))
            if all(_has_states(s) for _, seen in arrived for s in seen):
                states = torch.zeros_like(vectors, dtype=first_seen[3].dtype)
        for part, seen in arrived:
            columns = slice(None) if part.columns is None else part.columns
            for offset, layer_seen in enumerate(seen):
                h_norms, c_norms, vecs = layer_seen[:3]
                layer_states = layer_seen[3] if states is not None else None
                layer = part.first_layer + offset
                for target, value in ((h, h_norms), (c, c_norms), (vectors, vecs), (states, layer_states)):
                    if target is None:
                        continue
                    value = value.flip(0) if part.flipped else value  # back to the original time order
                    target[part.direction, layer, : value.shape[0], columns] = value.to(target.device)
        return h, c, vectors, states


@dataclass
class _Part:
    """What one engine call of a `SplitRecording` covers; the engine sees it as its recorder."""

    owner: SplitRecording
    first_layer: int
    direction: int
    columns: Tensor | None
    flipped: bool

    @property
    def keep_vectors(self) -> bool:
        return self.owner.keep_vectors

    def add_backward(self, module: str, seen: list) -> None:
        self.owner._arrive(self, seen)


def __getattr__(name: str):
    if name == "GradientRecord":  # the record's name until issue #22: it differed from GradientRecorder by one letter
        warnings.warn(
            "GradientRecord is now BackwardRecord (one record per backward pass); the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return BackwardRecord
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
