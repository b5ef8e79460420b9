"""Denormal floats: flushing them to zero inside the engine, and reading the CPU's current setting.

Why: a vanishing gradient passes through ~1e-38…1e-45 on its way to zero, and x86 CPUs handle such denormal
numbers in microcode, many times slower. The engine's backward spends most of its time on exactly these
numbers at long lags, so by default it flushes them; the recorded norms then reach exactly zero a few steps
earlier, which `rnnlab.recurrent.diagnostics` handles.
"""

from __future__ import annotations

import contextlib

import torch

from rnnlab.recurrent import native


def denormals_flushed() -> bool:
    """Whether the CPU currently flushes denormal floats to zero (PyTorch has a setter but no getter).

    The compiled engine reads the CPU's control register; otherwise a probe: multiplying a denormal by one
    returns it unchanged unless flush-to-zero or denormals-are-zero is on.
    """
    ext = native.extension()
    known = -1 if ext is None else ext.denormals_flushed()
    if known >= 0:
        return bool(known)
    probe = torch.tensor([1e-40], dtype=torch.float32)  # below float32's smallest normal, 1.18e-38
    return bool((probe * 1.0).item() == 0.0)


def flush_denormals(enabled: bool = True) -> contextlib.AbstractContextManager[None]:
    """Flush denormal floats to zero inside the block (`with rnnlab.engine.flush_denormals():`), then restore
    the caller's setting — in the calling thread and in every thread of PyTorch's OpenMP pool."""
    return FlushScope(enabled, native.extension())


class FlushScope:
    """`flush_denormals` for a known extension (or None): the engine enters one per forward and per backward,
    so it is a plain class rather than a generator-based context manager (~10 µs less per step, which is
    ~2 % of a small training step)."""

    __slots__ = ("enabled", "ext", "previous")

    def __init__(self, enabled: bool, ext):
        self.enabled, self.ext = enabled, ext

    def __enter__(self) -> None:
        if not self.enabled:
            return
        known = -1 if self.ext is None else self.ext.denormals_flushed()
        self.previous = bool(known) if known >= 0 else denormals_flushed()
        torch.set_flush_denormal(True)
        if self.ext is not None:
            # torch.set_flush_denormal sets the calling thread only; the GEMMs run on the OpenMP pool's threads
            # too, where denormals cost full price (measured: a weight-gradient GEMM 8.3 ms → 1390 ms on an
            # Intel Xeon).
            self.ext.set_pool_denormals(True)

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        torch.set_flush_denormal(self.previous)
        if self.ext is not None:
            self.ext.set_pool_denormals(self.previous)  # the pool follows the caller's setting again
