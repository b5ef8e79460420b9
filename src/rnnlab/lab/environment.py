"""Where a run ran, recorded beside every run in the store."""

from __future__ import annotations

import os
import platform
from typing import Any

import torch

from rnnlab.version import __version__


def environment() -> dict[str, Any]:
    """Where a run ran, for the store: versions, platform and threads."""
    return {
        "rnnlab": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
