"""Per-step gradient recording of a whole model: `rnnlab.record_gradients(model)`.

    with rnnlab.record_gradients(model) as rec:
        loss = loss_fn(model(x))
        loss.backward()
    rec.norms          # (L, T): batch mean of ‖∂L/∂h_t‖₂ of the last backward

Three names, three roles: `record_gradients` (this context manager: record a model) attaches a
`GradientRecorder` (what collects) to every rnnlab module inside the model, and the recorder keeps one
`BackwardRecord` (what was recorded) per backward. Forwards run inside the block are recorded when their
backward runs (inside or after the block). Recording reads gradients the engine computes anyway; it never
changes them.
"""

from __future__ import annotations

import warnings

from torch import nn

from rnnlab.recurrent.convert import recurrent_modules
from rnnlab.recurrent.recorder import BackwardRecord, GradientRecorder


class record_gradients:  # lower case: a context manager used like torch.no_grad
    """Record ‖∂L/∂h_t‖₂ for every step and layer of every rnnlab recurrent module in `model`.

    **Arguments**: `model` an rnnlab RNN/LSTM/GRU or any nn.Module containing them; `per_sample` also keeps
    the (L, T, B) per-sample norms; `keep_vectors` keeps ∂L/∂h_t itself (L, T, B, H) and, for modules the BPTT
    engine runs, the states h_t beside it (`BackwardRecord.states`, what `rnnlab.omega` needs). **Returns** (as the
    context value) a `GradientRecorder`. Raises TypeError when `model` holds no rnnlab module (convert
    torch.nn ones with `rnnlab.from_torch`).

    A class rather than a generator-based context manager because it is entered once per training step: the
    generator's machinery alone added ~7 µs to a ~450 µs step (T=35, B=1, H=32), where recording's whole
    budget is 10 %.
    """

    __slots__ = ("_found", "_previous", "recorder")

    def __init__(self, model: nn.Module, per_sample: bool = False, keep_vectors: bool = False):
        self._found = recurrent_modules(model)
        if not self._found:
            raise TypeError(
                f"record_gradients: {type(model).__name__} contains no rnnlab RNN/LSTM/GRU; "
                "convert the torch.nn ones inside it with rnnlab.convert(model)"
            )
        self.recorder = GradientRecorder(per_sample=per_sample, keep_vectors=keep_vectors)

    def __enter__(self) -> GradientRecorder:
        self._previous = [m.recording for _, m in self._found]
        for name, m in self._found:
            m.attach_recording((self.recorder, name))
        return self.recorder

    def __exit__(self, *exc) -> None:
        for (_, m), previous in zip(self._found, self._previous, strict=True):
            m.attach_recording(previous)


def __getattr__(name: str):
    if name == "GradientRecord":
        warnings.warn(
            "GradientRecord is now rnnlab.recurrent.recorder.BackwardRecord (one record per backward pass); "
            "the old name will be removed",
            DeprecationWarning,
            stacklevel=2,
        )
        return BackwardRecord
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BackwardRecord", "GradientRecorder", "record_gradients"]
