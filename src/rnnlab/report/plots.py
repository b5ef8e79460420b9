"""Plots that explain themselves: titles, labelled axes with units, legends.

Built on `matplotlib.figure.Figure` directly (no pyplot), so no GUI backend is ever needed. Every file is
written atomically: to a temporary name in the same folder, then renamed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from matplotlib.figure import Figure


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` (PNG by suffix) atomically; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def gradient_profiles(
    profiles: Mapping[str, torch.Tensor],
    path: str | Path,
    title: str,
    threshold: float | None = None,
) -> Path:
    """log‖∂L/∂h_t‖ against lag, one curve per model: the picture of the vanishing gradient.

    `profiles[label]` is (T,) by lag (lag 0 = the step the loss reads). Exact zeros (underflow) are not drawn.
    """
    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    for label, profile in profiles.items():
        values = profile.detach().to(torch.float64).cpu()
        values = torch.where(values > 0, values, torch.nan)
        ax.semilogy(range(len(values)), values.numpy(), label=label, linewidth=1.6)
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"horizon threshold ({threshold:g})")
    ax.set_title(title)
    ax.set_xlabel("lag: steps back from the loss (T − 1 − t)")
    ax.set_ylabel("‖∂L/∂h_t‖₂ (batch mean, log scale)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)
