"""Per-step gradient recording: ‖∂L/∂h_t‖₂ for every step and layer, straight from the BPTT engine.

    with rnnlab.record_gradients(model) as rec:
        loss = loss_fn(model(x))
        loss.backward()
    rec.norms          # (L, T): batch mean of ‖∂L/∂h_t‖₂ of the last backward

Forwards run inside the block are recorded when their backward runs (inside or after the block). Recording
reads gradients the engine computes anyway; it never changes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnlab.recurrent.modules import recurrent_modules


@dataclass
class GradientRecord:
    """One backward pass through one recorded module.

    `norms[l, t]` is the batch mean of ‖∂L/∂h_t‖₂ at layer l, step t, shape (L, T), in float64; `cell_norms` the same for
    the LSTM cell state (None for other cells); `per_sample` / `cell_per_sample` are (L, T, B) when the
    recorder was asked for them, else None. ∂L/∂h_t is the total gradient at the output of step t: what
    arrives from the loss at step t, from the layer above, and back through time from step t+1.
    """

    module: str
    norms: Tensor
    cell_norms: Tensor | None = None
    per_sample: Tensor | None = None
    cell_per_sample: Tensor | None = None
    vectors: Tensor | None = None  # (L, T, B, H) the gradients themselves, when the recorder keeps them


class GradientRecorder:
    """Receives the engine's per-step gradient norms, one `GradientRecord` per backward. The engine computes
    the norms as it walks back in time (in float64, in the compiled loop without storing the gradients), so
    recording costs little; `keep_vectors` also keeps ∂L/∂h_t itself."""

    def __init__(self, per_sample: bool = False, keep_vectors: bool = False):
        self.per_sample = per_sample
        self.keep_vectors = keep_vectors  # keep ∂L/∂h_t itself, (L, T, B, H): memory grows with T·B·H
        self.records: list[GradientRecord] = []

    def add_backward(self, module: str, seen: list[tuple[Tensor, Tensor | None, Tensor | None]]) -> None:
        """Called by the engine once per backward: per layer, (‖∂L/∂h_t‖ (T, B) float64, ‖∂L/∂c_t‖ (T, B) or
        None, the vectors ∂L/∂h_t (T, B, H) or None — present when `keep_vectors`)."""
        h = torch.stack([s[0] for s in seen])  # (L, T, B)
        c = torch.stack([s[1] for s in seen]) if seen[0][1] is not None else None  # (L, T, B)
        self.records.append(
            GradientRecord(
                module=module,
                norms=h.mean(-1),
                cell_norms=None if c is None else c.mean(-1),
                per_sample=h if self.per_sample else None,
                cell_per_sample=c if self.per_sample else None,
                vectors=torch.stack([s[2] for s in seen]) if self.keep_vectors else None,
            )
        )

    @property
    def last(self) -> GradientRecord:
        if not self.records:
            raise RuntimeError("no gradients recorded yet: run a forward inside `record_gradients` and call backward")
        return self.records[-1]

    @property
    def norms(self) -> Tensor:
        """(L, T) batch-mean ‖∂L/∂h_t‖₂ of the most recent backward."""
        return self.last.norms

    @property
    def cell_norms(self) -> Tensor | None:
        """(L, T) batch-mean ‖∂L/∂c_t‖₂ of the most recent backward (LSTM), else None."""
        return self.last.cell_norms


@contextlib.contextmanager
def record_gradients(
    model: nn.Module, per_sample: bool = False, keep_vectors: bool = False
) -> Iterator[GradientRecorder]:
    """Record ‖∂L/∂h_t‖₂ for every step and layer of every rnnlab recurrent module in `model`.

    **Arguments**: `model` an rnnlab RNN/LSTM/GRU or any nn.Module containing them; `per_sample` also keeps
    the (L, T, B) per-sample norms; `keep_vectors` keeps ∂L/∂h_t itself (L, T, B, H). **Returns** (as the context value) a `GradientRecorder`.
    Raises TypeError when `model` holds no rnnlab module (convert torch.nn ones with `rnnlab.from_torch`).
    """
    found = recurrent_modules(model)
    if not found:
        raise TypeError(
            f"record_gradients: {type(model).__name__} contains no rnnlab RNN/LSTM/GRU; "
            "convert the torch.nn ones inside it with rnnlab.convert(model)"
        )
    recorder = GradientRecorder(per_sample=per_sample, keep_vectors=keep_vectors)
    previous = [m._recording for _, m in found]
    for name, m in found:
        m._recording = (recorder, name)
    try:
        yield recorder
    finally:
        for (_, m), prev in zip(found, previous, strict=True):
            m._recording = prev
