"""Where a run ran, recorded beside every run in the store."""

from __future__ import annotations

import os
from typing import Any

import torch


def environment() -> dict[str, Any]:
    """Where a run ran, for the store: versions, platform and threads."""
    import platform

    import rnnlab

    return {
        "rnnlab": rnnlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
