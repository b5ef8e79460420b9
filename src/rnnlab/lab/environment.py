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


def machine() -> str:
    """A one-line name of this machine for the record of where a run's updates ran, e.g.
    "AMD EPYC 9R14, 2 cpus, Linux-6.1-x86_64": the CPU model matters for speed and, through its GEMM paths
    and float32 rounding, for the exact numbers."""
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:  # not Linux: the platform module's name is the best there is
        pass
    return f"{model}, {os.cpu_count()} cpus, {platform.system()}-{platform.machine()}"
