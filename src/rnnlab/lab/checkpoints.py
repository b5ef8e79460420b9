"""Checkpoints: written atomically, read back with `weights_only=True` (tensors and plain data, no pickled code)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then rename over the old checkpoint.
    A crash (or a full disk) at any moment leaves either the old checkpoint or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, truncated, or from another run)."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with `weights_only=True`: tensors and plain data only, never arbitrary pickled objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or corrupt files
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable ({type(error).__name__})") from None


def checkpoint_step(path: Path) -> int | None:
    """The update a checkpoint was written at, without reading its tensors into memory (mapped, not loaded);
    None when it cannot be read."""
    try:
        return int(_mapped(path)["step"])
    except Exception:  # missing, truncated, corrupt or not a checkpoint: the sweep reports it when it runs
        return None


def checkpoint_progress(path: Path) -> tuple[int, dict[str, Any]] | None:
    """The update a checkpoint was written at and the run's result up to there (its evaluations so far), its
    tensors mapped, not loaded; None when it cannot be read."""
    try:
        state = _mapped(path)
        return int(state["step"]), state["result"]
    except Exception:
        return None


def _mapped(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def resume_point(path: Path, steps: int) -> str | None:
    """Where a run resumes, as `rnnlab train` and the sweep's dry run say it: "from the start" (no checkpoint
    yet), "from its checkpoint at update N of M", or None when its checkpoint cannot be read."""
    if not path.exists():
        return "from the start"
    step = checkpoint_step(path)
    return None if step is None else f"from its checkpoint at update {step} of {steps}"
