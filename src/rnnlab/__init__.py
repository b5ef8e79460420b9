"""rnnlab: see, measure and fix the vanishing (and exploding) gradient in recurrent neural networks.

The package has three layers, each using only the ones before it:

- `rnnlab.recurrent`: drop-in RNN/LSTM/GRU modules, the BPTT engine that records ∂L/∂h_t at every step,
  initialisation schemes (`rnnlab.init`) and gradient-flow diagnostics (`rnnlab.diagnostics`);
- `rnnlab.lab`: tasks, configs, the trainer, the results store, studies and sweeps;
- `rnnlab.report` and `rnnlab.cli`: what a person reads and types.

The names a user reaches for are here: ``rnnlab.LSTM``, ``rnnlab.from_torch``, ``rnnlab.record_gradients``,
``rnnlab.gradient_flow``, ``rnnlab.init.apply``, ``rnnlab.diagnostics.compare``, ``rnnlab.clip_gradients``.
"""

from importlib.metadata import PackageNotFoundError, version

from rnnlab.lab.clip import clip_gradients
from rnnlab.recurrent import diagnostics, init
from rnnlab.recurrent.convert import convert, from_torch, make_recurrent, to_torch
from rnnlab.recurrent.diagnostics import GradientFlow, gradient_flow, jacobian_norms, spectral_radius
from rnnlab.recurrent.engine import flush_denormals, release_buffers
from rnnlab.recurrent.modules import GRU, LSTM, RNN
from rnnlab.recurrent.monitor import Monitor, monitor
from rnnlab.recurrent.recording import GradientRecorder, record_gradients

try:
    __version__ = version("rnnlab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GradientFlow",
    "GradientRecorder",
    "Monitor",
    "__version__",
    "clip_gradients",
    "convert",
    "diagnostics",
    "flush_denormals",
    "from_torch",
    "gradient_flow",
    "init",
    "jacobian_norms",
    "make_recurrent",
    "monitor",
    "record_gradients",
    "release_buffers",
    "spectral_radius",
    "to_torch",
]
