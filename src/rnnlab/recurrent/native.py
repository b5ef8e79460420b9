"""The compiled fast path of the BPTT engine (`_ext/bptt.cpp`), built on first use and cached.

`torch.utils.cpp_extension.load` compiles the extension once per source version (~1 minute) into PyTorch's
extension cache (`~/.cache/torch_extensions`, or `$TORCH_EXTENSIONS_DIR`); later imports load it in
milliseconds. If no C++ compiler is available, or `RNNLAB_ENGINE=python` is set, the engine uses its pure-
PyTorch time loop instead — same numbers (tested), more per-step overhead.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).parent / "_ext" / "bptt.cpp"
ENGINES = ("auto", "cpp", "python")
GEMMS = ("auto", "aten")
STALE_LOCK_S = 300


@functools.cache
def _compile():
    from torch.utils import cpp_extension

    try:  # the `ninja` package's binary, which is not on PATH when the venv is not activated
        import ninja

        if ninja.BIN_DIR not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    # A process killed while building leaves torch's build lock behind, and every later start would wait on
    # it forever. A build takes about a minute, so a lock older than STALE_LOCK_S is removed.
    build_dir = Path(cpp_extension._get_build_directory("rnnlab_bptt", verbose=False))
    lock = build_dir / "lock"
    if lock.exists() and time.time() - lock.stat().st_mtime > STALE_LOCK_S:
        lock.unlink(missing_ok=True)
    # -fopenmp: ATen's parallel_for is an inline template whose `#pragma omp parallel` compiles to a serial
    # loop without it (measured: the LSTM pointwise pass ran on one of two cores). The process has one
    # OpenMP runtime: PyTorch's libgomp is already loaded under the same soname.
    flags = ["-O3", "-fopenmp"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        # Vectorised exp/tanh come from the Sleef functions libtorch_cpu already exports.
        flags += ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]
    module = cpp_extension.load(
        name="rnnlab_bptt", sources=[str(SOURCE)], extra_cflags=flags, extra_ldflags=["-fopenmp"], verbose=False
    )
    module.set_gemm(gemm_choice())
    return module


def engine_choice() -> str:
    choice = os.environ.get("RNNLAB_ENGINE", "auto")
    if choice not in ENGINES:
        raise ValueError(f"RNNLAB_ENGINE={choice!r} is not valid; choose from: {', '.join(ENGINES)}")
    return choice


def gemm_choice() -> str:
    """RNNLAB_GEMM: 'auto' (oneDNN for large float32 products where PyTorch has it) or 'aten' (always ATen)."""
    choice = os.environ.get("RNNLAB_GEMM", "auto")
    if choice not in GEMMS:
        raise ValueError(f"RNNLAB_GEMM={choice!r} is not valid; choose from: {', '.join(GEMMS)}")
    return choice


@functools.cache
def _extension_or_none():
    try:
        return _compile()
    except Exception as error:  # no compiler, no ninja, headers missing: fall back, say why once
        log.warning("rnnlab: the C++ engine could not be built (%s); using the Python time loop", error)
        return None


def extension():
    """The compiled module, or None when the Python time loop is to be used."""
    choice = engine_choice()
    gemm_choice()  # a bad value is an error here, not a silent fallback inside the build
    if choice == "python":
        return None
    module = _extension_or_none()
    if module is None and choice == "cpp":
        raise RuntimeError("RNNLAB_ENGINE=cpp but the C++ engine could not be built (see the log)")
    return module


def backend() -> str:
    """'cpp' or 'python': which time loop the engine uses now."""
    return "cpp" if extension() is not None else "python"
