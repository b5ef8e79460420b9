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


def _zeros_to_nan(values) -> list[float]:
    return [v if v and v > 0 else float("nan") for v in values]


def profiles_before_after(curves: Mapping[str, tuple[list[float], list[float]]], path, title: str) -> Path:
    """Two panels: ‖∂L/∂h_t‖ against lag untrained (step 0) and after training, one curve per run."""
    fig = Figure(figsize=(12, 4.8))
    axes = fig.subplots(1, 2, sharey=True)
    for label, (before, after) in curves.items():
        for ax, profile in zip(axes, (before, after), strict=True):
            if profile:
                ax.semilogy(range(len(profile)), _zeros_to_nan(profile), label=label, linewidth=1.5)
    for ax, when in zip(axes, ("untrained (step 0)", "after training (last evaluation)"), strict=True):
        ax.set_title(when)
        ax.set_xlabel("lag: steps back from the loss (T − 1 − t)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("‖∂L/∂h_t‖₂ (batch mean, log scale)")
    axes[1].legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    return save_figure(fig, path)


def flow_heatmaps(runs: Mapping[str, tuple[list[int], list[list[float]]]], path, title: str) -> Path:
    """One heatmap per run: log10‖∂L/∂h_t‖ by lag (x) and training step (y)."""
    import math

    count = max(1, len(runs))
    cols = min(4, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(4 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for ax, (label, (steps, profiles)) in zip(axes.flat, runs.items(), strict=False):
        data = torch.tensor([[math.log10(v) if v and v > 0 else -30.0 for v in p] for p in profiles])
        data = data.clamp(min=-30.0)
        image = ax.imshow(
            data.numpy(),
            aspect="auto",
            origin="lower",
            cmap="viridis",
            vmin=-30,
            vmax=0,
            extent=(0, data.shape[1], -0.5, len(steps) - 0.5),
        )
        ax.set_yticks(range(len(steps)), [str(s) for s in steps], fontsize=6)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("lag (steps)", fontsize=8)
        ax.set_ylabel("training step", fontsize=8)
    for ax in list(axes.flat)[len(runs) :]:
        ax.axis("off")
    if image is not None:
        fig.colorbar(image, ax=axes, label="log₁₀ ‖∂L/∂h_t‖ (−30 = underflow to zero)", shrink=0.8)
    fig.suptitle(title)
    return save_figure(fig, path)


def learning_curves(
    panels: Mapping[str, Mapping[str, tuple[list[int], list[float]]]],
    path,
    title: str,
    metric: str,
    log_scale: bool,
    chance: float | None = None,
) -> Path:
    """Test metric against training step; one panel per group (e.g. sequence length), one curve per run."""
    count = max(1, len(panels))
    fig = Figure(figsize=(4.5 * count, 4))
    axes = fig.subplots(1, count, squeeze=False)[0]
    for ax, (panel, curves) in zip(axes, panels.items(), strict=False):
        for label, (steps, values) in curves.items():
            ax.plot(steps, values, marker=".", label=label, linewidth=1.3)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance level")
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(panel)
        ax.set_xlabel("training step (optimizer updates)")
        ax.set_ylabel(f"test {metric}")
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize=7)
    fig.suptitle(title)
    return save_figure(fig, path)


def success_vs_length(series: Mapping[str, list[tuple[int, int | None]]], path, title: str, budget: int) -> Path:
    """Steps to solve against sequence length per variant; unsolved runs are drawn as ✗ at the budget."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    for label, points in series.items():
        solved = [(t, s) for t, s in points if s is not None]
        failed = [t for t, s in points if s is None]
        line = ax.plot([t for t, _ in solved], [s for _, s in solved], marker="o", label=label)[0]
        if failed:
            ax.scatter(failed, [budget] * len(failed), marker="x", color=line.get_color(), s=60)
    ax.axhline(budget, color="grey", linestyle=":", linewidth=1, label=f"step budget ({budget}); ✗ = not solved")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("sequence length T (log scale)")
    ax.set_ylabel("updates until solved")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)
