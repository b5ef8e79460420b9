"""Plots that explain themselves: titles, labelled axes with units, legends.

Built on `matplotlib.figure.Figure` directly (no pyplot), so no GUI backend is ever needed. Every file is
written atomically: to a temporary name in the same folder, then renamed. The gradient pictures (profiles
against lag, heatmaps over training) are drawn by `rnnlab.recurrent.figures`, as the diagnostics and the
monitor draw theirs, with its one rule for zero gradients; this module lays them out for a report.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import matplotlib.patches
import torch
from matplotlib.figure import Figure

from rnnlab.recurrent.figures import (
    LAG_LABEL,
    colour_scale,
    draw_heatmap,
    heatmap_colourbar,
    heatmap_rows,
    on_log_axis,
    profiles_figure,
)


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write `fig` to `path` (PNG by suffix) atomically; creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes it private (0600); a report is meant to be read by others
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
    """log‖∂L/∂h_t‖ against lag, one curve per model (`figures.profiles_figure`), written to `path`.

    `profiles[label]` is (T,) by lag (lag 0 = the step the loss reads). With a horizon `threshold`, each curve
    is divided by its value at lag 0, so the dashed threshold line meets each curve exactly at its horizon.
    """
    return save_figure(profiles_figure(profiles, title, threshold), path)


def _band(profiles: list[list[float]]) -> tuple[list[float], list[float], list[float]]:
    """Median, min and max by lag over several profiles (cut to the shortest), for a log axis: zeros → NaN."""
    length = min(len(p) for p in profiles)
    columns = torch.stack([on_log_axis([v or 0.0 for v in p[:length]]) for p in profiles])  # (seeds, lags)
    return (
        columns.nanmedian(0).values.tolist(),
        columns.nan_to_num(float("inf")).min(0).values.tolist(),
        columns.nan_to_num(0.0).max(0).values.tolist(),
    )


def profiles_before_after(
    panels: Mapping[int, Mapping[str, list[tuple[list[float], list[float]]]]], path, title: str
) -> Path:
    """‖∂L/∂h_t‖ against lag, untrained (left) and after training (right), one row per sequence length T.

    `panels[T][variant]` holds one (before, after) pair of profiles per seed: the line is their median by lag,
    the band their min–max, so every seed is shown and none hides another.
    """
    rows = max(1, len(panels))
    fig = Figure(figsize=(12, 3.6 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 2, squeeze=False)
    colours = _colours({v for variants in panels.values() for v in variants})
    for row, (length, variants) in zip(axes, panels.items(), strict=False):
        for column, ax in enumerate(row):
            for label, seeds in variants.items():
                profiles = [pair[column] for pair in seeds if pair[column]]
                if not profiles:
                    continue
                middle, low, high = _band(profiles)
                lags = range(len(middle))
                ax.semilogy(
                    lags, middle, color=colours[label], linewidth=1.5, label=f"{label} ({_seeds(len(profiles))})"
                )
                if len(profiles) > 1:
                    ax.fill_between(
                        lags,
                        [v if v != float("inf") else float("nan") for v in low],
                        [v if v > 0 else float("nan") for v in high],
                        color=colours[label],
                        alpha=0.15,
                    )
            when = "untrained (step 0)" if column == 0 else "after training (last evaluation)"
            ax.set_title(f"T = {length}: {when}", fontsize=10)
            ax.set_xlabel(LAG_LABEL)
            ax.grid(True, alpha=0.3)
        row[0].set_ylabel("‖∂L/∂h_t‖₂ (batch mean, log scale)")
        row[1].legend(fontsize=8, loc="lower left")
    fig.suptitle(title)
    return save_figure(fig, path)


def _colours(labels) -> dict[str, str]:
    """A distinct, stable colour per label (sorted): matplotlib's default cycle, or tab20 beyond 10 labels."""
    from matplotlib import colormaps

    ordered = sorted(labels)
    if len(ordered) <= 10:
        return {label: f"C{i}" for i, label in enumerate(ordered)}
    palette = colormaps["tab20"]
    return {label: palette(i % 20) for i, label in enumerate(ordered)}


def _seeds(count: int) -> str:
    return "1 seed" if count == 1 else f"{count} seeds"


def flow_heatmaps(runs: Mapping[str, tuple[list[int], list[list[float]]]], path, title: str) -> Path:
    """One heatmap per run: log10‖∂L/∂h_t‖ by lag (x) and training step (y), on one colour scale that spans
    the values shown (so a profile that stays flat is not hidden by a scale made for one that vanishes)."""
    count = max(1, len(runs))
    cols = min(3, count)
    rows = -(-count // cols)
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    data = {label: heatmap_rows([[v or 0.0 for v in p] for p in profiles]) for label, (_, profiles) in runs.items()}
    low, high = colour_scale(list(data.values()))
    image = None
    for ax, (label, (steps, _)) in zip(axes.flat, runs.items(), strict=False):
        image = draw_heatmap(ax, data[label], steps, low, high)
        ax.tick_params(labelsize=8)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("lag (steps)", fontsize=9)
        ax.set_ylabel("training step", fontsize=9)
    for ax in list(axes.flat)[len(runs) :]:
        ax.axis("off")
    if image is not None:
        heatmap_colourbar(fig, image, axes, low)
    fig.suptitle(title)
    return save_figure(fig, path)


def learning_curves(
    panels: Mapping[str, Mapping[str, list[tuple[list[int], list[float]]]]],
    path,
    title: str,
    metric: str,
    log_scale: bool,
    chance: float | None = None,
) -> Path:
    """Test metric against training step; one panel per group (e.g. sequence length), one colour per variant
    and one line per seed (`panels[group][variant]` is a list of (steps, values), one per seed)."""
    count = max(1, len(panels))
    fig = Figure(figsize=(4.8 * count, 4.2), layout="constrained")
    axes = fig.subplots(1, count, squeeze=False)[0]
    colours = _colours({v for curves in panels.values() for v in curves})
    for ax, (panel, curves) in zip(axes, panels.items(), strict=False):
        for label, seeds in curves.items():
            for index, (steps, values) in enumerate(seeds):
                name = f"{label} ({_seeds(len(seeds))})" if index == 0 else None
                ax.plot(steps, values, color=colours[label], label=name, linewidth=1.1, alpha=0.85)
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="chance level")
        if log_scale:
            ax.set_yscale("log")
        ax.set_title(panel)
        ax.set_xlabel("training step (optimizer updates)")
        ax.set_ylabel(f"test {metric}")
        ax.grid(True, alpha=0.3)
    axes[-1].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def success_vs_length(
    series: Mapping[str, list[tuple[int, int | None]]], path, title: str, budget: int, lengths: list[int]
) -> Path:
    """Updates until solved, one dot per seed, at each sequence length (labelled ticks, one slot per T).

    Variants sit side by side within a slot, so no marker hides another; a bar marks the median of the solved
    seeds; seeds that never solved are ✗ above the dotted budget line (a run solved exactly at the budget
    stays on the line, below them).
    """
    fig = Figure(figsize=(max(6.5, 2.2 * len(lengths) + 3), 4.8), layout="constrained")
    ax = fig.subplots()
    colours = _colours(series)
    width = 0.8 / max(1, len(series))
    failed_at = budget * 1.08
    for index, (label, points) in enumerate(series.items()):
        offset = -0.4 + width * (index + 0.5)
        solved_total = sum(s is not None for _, s in points)
        for slot, length in enumerate(lengths):
            here = [s for t, s in points if t == length]
            solved = sorted(s for s in here if s is not None)
            x = slot + offset
            jitter = [x + width * 0.3 * (k / max(1, len(here) - 1) - 0.5) for k in range(len(here))]
            ax.scatter(jitter[: len(solved)], solved, color=colours[label], s=22, zorder=3)
            misses = len(here) - len(solved)
            if misses:
                ax.scatter(
                    jitter[len(solved) :], [failed_at] * misses, marker="x", color=colours[label], s=40, zorder=3
                )
            if solved:
                middle = statistics.median(solved)
                ax.hlines(middle, x - width * 0.4, x + width * 0.4, color=colours[label], linewidth=2.2)
        ax.scatter([], [], color=colours[label], s=22, label=f"{label}: solved {solved_total}/{len(points)}")
    ax.axhline(budget, color="grey", linestyle=":", linewidth=1, label=f"step budget ({budget}); ✗ = not solved")
    ax.set_xticks(range(len(lengths)), [f"T = {t}" for t in lengths])
    ax.set_xlim(-0.6, len(lengths) - 0.4)
    ax.set_ylim(0, budget * 1.16)
    ax.set_xlabel("sequence length")
    ax.set_ylabel("updates until solved")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def solved_grid(
    rows: list[str],
    columns: list[tuple[str, int]],
    cells: Mapping[tuple[str, tuple[str, int]], tuple[int, int, int]],
    path,
) -> Path:
    """A grid of rows (rungs) × columns ((task, T)): each square coloured by the fraction of seeds that solved
    it, labelled "k/n", from `cells[row, column]` = (solved, n, of them not run because a shorter T was not
    solved); those squares are hatched and say how many were not run; grey and "–" where no seed counts."""
    fig = Figure(figsize=(1.1 * len(columns) + 3, 0.42 * len(rows) + 1.8), layout="constrained")
    ax = fig.subplots()
    colour_map = matplotlib.colormaps["RdYlGn"]
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            solved, counted, skipped = cells.get((row, column), (0, 0, 0))
            colour = colour_map(solved / counted) if counted else (0.85, 0.85, 0.85, 1.0)
            square = matplotlib.patches.Rectangle((j, i), 1, 1, facecolor=colour, edgecolor="white")
            if skipped:
                square.set_hatch("///")
                square.set_alpha(0.45 if skipped == counted else 0.75)
            ax.add_patch(square)
            label = f"{solved}/{counted}" if counted else "–"
            if skipped:
                label += f"\n({skipped} not run)"
            ax.text(j + 0.5, i + 0.5, label, ha="center", va="center", fontsize=7 if skipped else 8)
    ax.set_xlim(0, len(columns))
    ax.set_ylim(len(rows), 0)
    ax.set_xticks([j + 0.5 for j in range(len(columns))], [f"{task}\nT = {t}" for task, t in columns], fontsize=8)
    ax.set_yticks([i + 0.5 for i in range(len(rows))], rows, fontsize=9)
    ax.tick_params(length=0)
    ax.set_title(
        "Solved by how many seeds (green: all, red: none, grey: none finished; hatched: seeds not run there "
        "because they did not solve a shorter T, counted as not solved)",
        fontsize=9,
    )
    return save_figure(fig, path)


def budget_curves(
    variants: Mapping[str, list[tuple[list[float], list[float], list[float]]]], path, title: str, metric: str
) -> Path:
    """Held-out metric against characters seen (left) and training seconds (right); `variants[name]` holds one
    (characters, seconds, values) triple per seed, drawn as one line each in the variant's colour."""
    fig = Figure(figsize=(12, 4.6), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    colours = _colours(variants)
    for label, seeds in variants.items():
        for index, (chars, seconds, values) in enumerate(seeds):
            name = f"{label} ({_seeds(len(seeds))})" if index == 0 else None
            axes[0].plot([c / 1e6 for c in chars], values, color=colours[label], label=name, linewidth=1.1)
            axes[1].plot(seconds, values, color=colours[label], linewidth=1.1)
    axes[0].set_xlabel("characters seen (millions, all streams)")
    axes[1].set_xlabel("training time (s, updates only)")
    axes[0].set_ylabel(f"held-out {metric}")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)


def gradient_norms(
    panels: Mapping[str, list[tuple[list[int], list[float], list[int], list[float]]]],
    path,
    title: str,
    thresholds: Mapping[str, float | None],
) -> Path:
    """Pre-clip gradient norm against updates, log scale, one panel per variant: `panels[label]` holds one
    (steps, window means, steps, window maxima) per seed, drawn in one colour per seed (mean solid, largest
    dotted; a seed without maxima draws its mean only); `thresholds[label]`, where not None, is drawn as the
    clipping threshold of this same norm."""
    import math

    count = max(1, len(panels))
    cols = min(3, count)
    rows = math.ceil(count / cols)
    fig = Figure(figsize=(4.8 * cols, 3.6 * rows + 0.5), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (label, seeds) in zip(axes.flat, panels.items(), strict=False):
        for index, (steps, means, max_steps, maxima) in enumerate(seeds):
            colour = f"C{index % 10}"
            first = index == 0  # the legend names the two line styles once; the colours are the seeds
            ax.plot(
                steps,
                on_log_axis([v or 0.0 for v in means]),
                color=colour,
                linewidth=1.2,
                label="window mean" if first else None,
            )
            if maxima:
                name = "window's largest update" if first else None
                ax.plot(
                    max_steps,
                    on_log_axis([v or 0.0 for v in maxima]),
                    color=colour,
                    linewidth=0.9,
                    linestyle=":",
                    label=name,
                )
        threshold = thresholds.get(label)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"clip threshold ({threshold:g})")
        ax.set_yscale("log")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("training step (optimizer updates)")
        ax.set_ylabel("pre-clip ‖∇‖₂ (log scale)")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title)
    return save_figure(fig, path)


def band_curves(bands: Mapping[str, Mapping[str, list[tuple[list[float], list[float]]]]], path, title: str) -> Path:
    """Held-out bits per character on each band of the test stream against characters seen, one panel per band.

    `bands[band][variant]` holds one (characters, values) pair per seed: the line is the median over the seeds
    evaluated at each number of characters, the shaded band their min–max, so no seed hides another.
    """
    columns = min(3, len(bands))
    rows = -(-len(bands) // columns)
    fig = Figure(figsize=(4.4 * columns, 3.4 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    colours = _colours({v for variants in bands.values() for v in variants})
    for index, (ax, (band, variants)) in enumerate(zip(axes.flat, bands.items(), strict=False)):
        for label, seeds in variants.items():
            at: dict[float, list[float]] = {}
            for chars, values in seeds:
                for c, v in zip(chars, values, strict=True):
                    if not math.isnan(v):  # NaN: the band had no scored character at that evaluation
                        at.setdefault(c, []).append(v)
            if not at:
                continue
            xs = sorted(at)
            millions = [c / 1e6 for c in xs]
            ax.plot(
                millions,
                [statistics.median(at[c]) for c in xs],
                color=colours[label],
                linewidth=1.4,
                label=f"{label} ({_seeds(len(seeds))})",
            )
            if len(seeds) > 1:
                ax.fill_between(
                    millions, [min(at[c]) for c in xs], [max(at[c]) for c in xs], color=colours[label], alpha=0.15
                )
        ax.set_title(band, fontsize=10)
        ax.grid(True, alpha=0.3)
        if index + columns >= len(bands):  # the lowest panel of its column
            ax.set_xlabel("characters seen (millions, all streams)")
    for ax in axes.flat[len(bands) :]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel("held-out bits per character")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    return save_figure(fig, path)
