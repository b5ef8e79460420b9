"""The BPTT engine's switches, in their own namespace beside the modules (`import rnnlab.engine`):

- `flush_denormals(enabled=True)`: a context manager that flushes denormal floats to zero in the calling thread
  and in PyTorch's OpenMP pool (the engine does this itself inside every forward and backward);
- `denormals_flushed()`: whether the CPU flushes them now (PyTorch has a setter but no getter);
- `release_buffers()`: give back the compiled engine's reused scratch buffers (returns the bytes freed);
- `backend()`: which time loop runs, 'cpp' (the compiled one) or 'python' (`RNNLAB_ENGINE=python`, no compiler).

The engine itself is `rnnlab.recurrent.engine`; these names are re-exported from where they live.
"""

from rnnlab.recurrent.denormals import denormals_flushed, flush_denormals
from rnnlab.recurrent.native import backend, release_buffers

__all__ = ["backend", "denormals_flushed", "flush_denormals", "release_buffers"]
