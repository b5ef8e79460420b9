"""The compiled fast path of the BPTT engine (the C++ files of `_ext/`, one extension), built on first use and
cached.

`torch.utils.cpp_extension.load` compiles every `.cpp` file of `_ext/` into one extension, once per set of
sources and headers, PyTorch, Python and flags (~1 minute, announced on stderr) into PyTorch's extension cache
(`~/.cache/torch_extensions`, or `$TORCH_EXTENSIONS_DIR`), under a name that hashes all four; later imports load
it in milliseconds. If no C++ compiler is available, or `RNNLAB_ENGINE=python` is set, the engine uses its pure-
PyTorch time loop instead — same numbers (tested), more per-step overhead.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
import sys
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)
SOURCE = Path(__file__).parent / "_ext" / "bptt.cpp"  # the extension's face; its other files sit beside it
ENGINES = ("auto", "cpp", "python", "fused")
GEMMS = ("auto", "onednn", "aten")


@functools.cache
def _compile():
    from torch.utils import cpp_extension

    try:  # the `ninja` package's binary, which is not on PATH when the venv is not activated
        import ninja

        if ninja.BIN_DIR not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass
    flags = build_flags()
    name = build_name(flags)
    build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
    # One build at a time per version, under an OS lock that dies with its process: a build killed midway
    # leaves torch's own lock file behind, which every later start would wait on; under our lock any such
    # file is stale and removed.
    with open(build_dir / "rnnlab.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        (build_dir / "lock").unlink(missing_ok=True)
        fresh = not any(build_dir.glob(f"{name}*.so"))
        if fresh:
            print("rnnlab: building the compiled BPTT engine for this source and PyTorch version (once; about a "
                  "minute)…", file=sys.stderr, flush=True)  # fmt: skip
        started = time.perf_counter()
        module = cpp_extension.load(
            name=name,
            sources=[str(path) for path in source_files() if path.suffix == ".cpp"],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
        if fresh:
            print(f"rnnlab: engine built in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    module.set_gemm(gemm_choice())
    return module


def build_flags() -> list[str]:
    """The compiler flags of this machine's build."""
    # -fopenmp: ATen's parallel_for is an inline template whose `#pragma omp parallel` compiles to a serial
    # loop without it (measured: the LSTM pointwise pass ran on one of two cores). The process has one
    # OpenMP runtime: PyTorch's libgomp is already loaded under the same soname.
    flags = ["-O3", "-fopenmp"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability in ("AVX2", "AVX512"):
        # Vectorised exp/tanh come from the Sleef functions libtorch_cpu already exports.
        flags += ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"]
    return flags


def source_files() -> list[Path]:
    """Every file of the extension's folder (sources, headers, in subfolders too; not hidden ones), sorted."""
    folder = SOURCE.parent
    files = (path for path in folder.rglob("*") if path.is_file())
    return sorted(path for path in files if not any(part.startswith(".") for part in path.relative_to(folder).parts))


def build_name(flags: list[str]) -> str:
    """The extension's name, unique to what the build depends on — every source and header file (its path and
    content), the folder they are in, PyTorch's version, Python's and the flags — so no two checkouts or virtual
    environments share a build folder: its build.ninja names the sources by absolute path, so a checkout
    elsewhere with the same files would rebuild the other's copy at every switch (seen: 8–9 minutes a time
    with several worktrees on one machine)."""
    files = [
        f"{path.relative_to(SOURCE.parent)} {hashlib.sha256(path.read_bytes()).hexdigest()}" for path in source_files()
    ]
    key = "\n".join([*files, str(SOURCE.parent.resolve()), torch.__version__, sys.version, *flags])
    return f"rnnlab_bptt_{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _checked(variable: str, choices: tuple[str, ...]) -> str:
    choice = os.environ.get(variable, "auto")
    if choice not in choices:
        raise ValueError(f"{variable}={choice!r} is not valid; choose from: {', '.join(choices)}")
    return choice


def engine_choice() -> str:
    """RNNLAB_ENGINE: 'auto' (the compiled loop where it builds; torch's fused op for unrecorded forwards on
    CUDA), 'cpp' (the compiled loop must build) or 'python' (the Python loop) — both the engine for every
    forward — or 'fused' (torch's fused op for unrecorded forwards on every device, else as 'auto').
    The rule for the fused op is `fused.takes_fused`."""
    return _checked("RNNLAB_ENGINE", ENGINES)


def gemm_choice() -> str:
    """RNNLAB_GEMM: 'auto' (oneDNN for large float32 products on AMD CPUs, where it was measured faster, if
    PyTorch has it), 'onednn' (oneDNN on any CPU) or 'aten' (always ATen, i.e. MKL)."""
    return _checked("RNNLAB_GEMM", GEMMS)


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
    module = _extension_or_none()  # built (or found missing) once per process
    if module is None and choice == "cpp":
        raise RuntimeError("RNNLAB_ENGINE=cpp but the C++ engine could not be built (see the log)")
    return module


def backend() -> str:
    """'cpp' or 'python': which time loop the engine uses now."""
    return "cpp" if extension() is not None else "python"


def release_buffers() -> int:
    """Free the compiled engine's reusable scratch buffers that no tensor uses any more; returns the bytes freed.

    Why they exist: the engine's large temporaries (pre-activations, states and their gradients, tens of MB per
    layer) are kept between training steps, because fresh pages from the kernel cost more to fault in than to
    write (see `_ext/bptt.cpp`). At most 2 GiB are kept; call this after training to give them back."""
    ext = extension()
    return 0 if ext is None else int(ext.release_scratch())
