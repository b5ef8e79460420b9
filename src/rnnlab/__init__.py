"""rnnlab: see, measure and fix the vanishing (and exploding) gradient in recurrent neural networks.

The package has three layers, each using only the ones before it:

- `rnnlab.recurrent`: drop-in RNN/LSTM/GRU modules, the element-wise IndRNN/MinGRU/MinLSTM, the orthogonal ExpRNN, the oscillator CoRNN, the LRU, the BPTT engine that records ∂L/∂h_t at every step,
  initialisation schemes (`rnnlab.init`) and gradient-flow diagnostics (`rnnlab.diagnostics`);
- `rnnlab.lab`: tasks, configs, the trainer, the results store, studies and sweeps;
- `rnnlab.report` and `rnnlab.cli`: what a person reads and types.

The names a user reaches for are here: ``rnnlab.LSTM``, ``rnnlab.from_torch``, ``rnnlab.record_gradients``,
``rnnlab.gradient_flow``, ``rnnlab.init.apply``, ``rnnlab.diagnostics.compare``, ``rnnlab.clip_gradients``,
``rnnlab.omega`` (Pascanu's regulariser); the
engine's switches are in ``rnnlab.engine``. ``import rnnlab.init`` and ``import rnnlab.diagnostics`` work as
module imports (as ``import torch.nn.functional`` does): they are the modules of `rnnlab.recurrent`.
"""

import sys
import warnings

from rnnlab import engine
from rnnlab.lab.clip import clip_gradients
from rnnlab.recurrent import diagnostics, init
from rnnlab.recurrent.convert import convert, convert_back, from_torch, make_recurrent
from rnnlab.recurrent.diagnostics import GradientFlow, gradient_flow, jacobian_norms, spectral_radius
from rnnlab.recurrent.diagonal_modules import IndRNN, MinGRU, MinLSTM
from rnnlab.recurrent.lru_module import LRU
from rnnlab.recurrent.modules import GRU, LSTM, RNN
from rnnlab.recurrent.monitor import Monitor, monitor
from rnnlab.recurrent.omega import omega
from rnnlab.recurrent.orthogonal_modules import ExpRNN
from rnnlab.recurrent.oscillator_modules import CoRNN
from rnnlab.recurrent.recording import BackwardRecord, GradientRecorder, record_gradients
from rnnlab.version import __version__

# `rnnlab.init` and `rnnlab.diagnostics` are the recurrent layer's modules themselves (one module object under
# two names, as os.path), so `import rnnlab.init` finds them and a monkeypatch of one is seen through the other.
sys.modules[f"{__name__}.init"] = init
sys.modules[f"{__name__}.diagnostics"] = diagnostics

#: Names that moved (issue #22), still served with a DeprecationWarning: old name → (the object, its new name).
_MOVED = {
    "flush_denormals": (engine.flush_denormals, "rnnlab.engine.flush_denormals"),
    "release_buffers": (engine.release_buffers, "rnnlab.engine.release_buffers"),
    "to_torch": (convert_back, "rnnlab.convert_back (it converts in place; module.to_torch() returns a copy)"),
}


def __getattr__(name: str):
    if name in _MOVED:
        moved, new = _MOVED[name]
        warnings.warn(f"rnnlab.{name} is now {new}; the old name will be removed", DeprecationWarning, stacklevel=2)
        return moved
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "GRU",
    "LRU",
    "LSTM",
    "RNN",
    "BackwardRecord",
    "CoRNN",
    "ExpRNN",
    "GradientFlow",
    "GradientRecorder",
    "IndRNN",
    "MinGRU",
    "MinLSTM",
    "Monitor",
    "__version__",
    "clip_gradients",
    "convert",
    "convert_back",
    "diagnostics",
    "engine",
    "from_torch",
    "gradient_flow",
    "init",
    "jacobian_norms",
    "make_recurrent",
    "monitor",
    "omega",
    "record_gradients",
    "spectral_radius",
]
