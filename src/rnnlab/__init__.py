"""rnnlab: see, measure and fix the vanishing (and exploding) gradient in recurrent neural networks."""

from importlib.metadata import PackageNotFoundError, version

from rnnlab.engine import flush_denormals
from rnnlab.modules import GRU, LSTM, RNN, from_torch
from rnnlab.recording import GradientRecorder, record_gradients

try:
    __version__ = version("rnnlab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "GRU",
    "LSTM",
    "RNN",
    "GradientRecorder",
    "__version__",
    "flush_denormals",
    "from_torch",
    "record_gradients",
]
