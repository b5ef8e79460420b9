"""Gradient pictures: ‖∂L/∂h_t‖ against lag (profiles) and over training (heatmaps). The one place that draws
them, for the diagnostics (`GradientFlow.plot`, `plot_comparison`), the monitor (`plot`, `heatmap`) and the
report (`rnnlab.report.plots`), so the three read alike.

One rule for zero gradients. An exact 0 in a profile is a gradient that vanished below the float's range
(underflow, or a denormal the engine flushed): the smallest value there is, not a missing one. A heatmap draws
it in the lowest colour of its scale, where the decay it ends was heading; blank cells mean only that the lag
does not exist (a row of a shorter sequence). (The monitor's heatmap used to draw zeros blank, which made a
gradient that vanished completely look like one never recorded.) A line on a log axis cannot show a zero — it
has no logarithm — so a profile's line stops there; its heatmap row shows the rest.

Figures are `matplotlib.figure.Figure`s (no pyplot, so no GUI backend is ever needed). matplotlib is imported
when a figure is made, not with rnnlab: it roughly doubles the time of `import rnnlab`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

#: What the x axis of every profile and heatmap counts.
LAG_LABEL = "lag: steps back from the last step (T − 1 − t)"
_MAX_TICKS = 8  # labelled rows of a heatmap


def new_figure(figsize: tuple[float, float]):
    """A constrained-layout matplotlib Figure (imported here: see the module doc)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


# ------------------------------------------------------------------------------------------------ profiles


def as_float64(profile: Tensor | Sequence[float]) -> Tensor:
    """A profile (a tensor or a list of floats) as a float64 CPU tensor; float32 would turn values below
    1e-38, which a vanishing gradient reaches, into denormals or zeros."""
    values = profile.detach() if isinstance(profile, Tensor) else torch.tensor(profile, dtype=torch.float64)
    return values.to(device="cpu", dtype=torch.float64)


def on_log_axis(profile: Tensor | Sequence[float]) -> Tensor:
    """A profile (T,) as float64 values for a log axis: exact zeros (a vanished gradient) become NaN, where a
    line stops (see the module doc)."""
    values = as_float64(profile)
    return torch.where(values > 0, values, torch.nan)


def draw_profile(ax, profile: Tensor | Sequence[float], label: str | None, colour=None, **style) -> None:
    """One profile by lag (lag 0 = the last step) as a line on a log axis."""
    values = on_log_axis(profile)
    style = {"linewidth": 1.5, **style}
    ax.semilogy(range(len(values)), values.numpy(), color=colour, label=label, **style)


def mark_horizon(ax, reach: int, threshold: float, colour, name: str = "") -> None:
    """A dotted vertical line at the horizon: the largest lag with ‖∂L/∂h‖ ≥ threshold × its value at lag 0."""
    ax.axvline(reach, color=colour, linestyle=":", linewidth=1.2,
               label=f"{name}horizon: {reach} steps (≥ {threshold:g} × lag 0)")  # fmt: skip


def label_profile_axes(ax, relative: bool = False, legend: bool = True) -> None:
    """The lag axis, the gradient axis (relative to lag 0 where the profiles were divided by it), a grid."""
    ax.set_xlabel(LAG_LABEL)
    ax.set_ylabel(f"‖∂L/∂h_t‖₂ ({'relative to lag 0, ' if relative else ''}batch mean, log scale)")
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend(fontsize=8, loc="lower left")


def profiles_figure(profiles: Mapping[str, Tensor], title: str, threshold: float | None = None):
    """log‖∂L/∂h_t‖ against lag, one curve per label: the picture of the vanishing gradient.

    With a horizon `threshold`, each curve is divided by its value at lag 0 — the horizon is relative to it
    (`diagnostics.horizon`) — so the dashed threshold line meets each curve exactly at its horizon."""
    fig = new_figure((8, 5))
    ax = fig.subplots()
    for index, (label, profile) in enumerate(profiles.items()):
        values = as_float64(profile)
        if threshold is not None and values[0] > 0:
            values = values / values[0]
        draw_profile(ax, values, label, f"C{index % 10}", linewidth=1.6)
    if threshold is not None:
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"horizon threshold ({threshold:g})")
    ax.set_title(title)
    label_profile_axes(ax, relative=threshold is not None)
    return fig


# ------------------------------------------------------------------------------------------------ heatmaps


def heatmap_rows(profiles: Sequence[Sequence[float]], width: int | None = None) -> Tensor:
    """log₁₀ of profiles by lag as rows of one (rows, width) tensor: −inf where the gradient is exactly zero
    (drawn in the lowest colour by `draw_heatmap`), NaN past a row's own length (drawn blank)."""
    width = max((len(p) for p in profiles), default=0) if width is None else width
    rows = [[math.log10(v) if v > 0 else -math.inf for v in p] + [math.nan] * (width - len(p)) for p in profiles]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), width)


def colour_scale(rows: Sequence[Tensor]) -> tuple[float, float]:
    """(low, high) of one colour scale for heatmap rows: from the 1st percentile of the finite values (so a few
    tiny values do not stretch the scale for all the others) to the largest."""
    finite = torch.cat([r[torch.isfinite(r)] for r in rows]) if rows else torch.zeros(0)
    if finite.numel() == 0:
        return -30.0, 0.0
    low, high = float(finite.quantile(0.01)), float(finite.max())
    return low, max(high, low + 1e-9)  # one value: a scale of zero width would divide by zero


def draw_heatmap(ax, rows: Tensor, steps: Sequence[int], low: float, high: float):
    """Rows (R, W) of `heatmap_rows` by lag (x) and training step (y) on the scale [low, high], with at most
    eight labelled steps; values below the scale and zeros take the lowest colour. Returns the image."""
    values = rows.clamp(min=low)  # −inf (a zero gradient) and anything below the scale → the lowest colour
    image = ax.imshow(values.numpy(), aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                      vmin=low, vmax=high, extent=(-0.5, rows.shape[1] - 0.5, -0.5, rows.shape[0] - 0.5))  # fmt: skip
    shown = range(0, len(steps), max(1, len(steps) // _MAX_TICKS))
    ax.set_yticks(list(shown), [str(steps[i]) for i in shown])
    ax.set_xlabel(LAG_LABEL)
    ax.set_ylabel("training step")
    return image


def heatmap_colourbar(fig, image, axes, low: float) -> None:
    """The colour bar of one or more heatmaps, saying what its lowest colour and a blank cell mean."""
    label = f"log₁₀ ‖∂L/∂h_t‖₂ (≤ {low:.0f}: at or below the scale, or zero; blank: no such lag)"
    fig.colorbar(image, ax=axes, label=label, shrink=0.8)
