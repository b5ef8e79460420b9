"""Equal-budget comparison for stream tasks (truncated BPTT): held-out bits per character against characters
seen and against training time, and the best of each run (early stopping) at equal budgets.

A run of BPTT(k1, k2) over B parallel streams reads k1·B new characters per update, so runs with different k
that make the same number of updates have seen different amounts of text; comparing them per update confounds
the window with the data. Here every run is placed on two common axes instead: characters seen
(step · k1 · B) and training time (the `train_time` metric: seconds in updates, evaluations excluded).

A task that scores bands of its held-out stream (metrics named `bpc_<band>`, e.g. the text task's spelling,
agreement and topic characters) gets each band against characters seen too, so a study can say which window
learns which dependency. Everything comes from the stored metrics and their names; no task is built.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from rnnlab.lab.store import MetricName, Run, Store
from rnnlab.lab.study import variant_name
from rnnlab.report import plots


@dataclass
class Curve:
    """One run's held-out metric at each evaluation, with the budget spent by then."""

    run: Run
    chars: list[float]  # characters seen (all streams together)
    seconds: list[float]  # training time
    values: list[float]  # held-out metric (bits per character)
    bands: dict[str, list[float]] = field(default_factory=dict)  # band → its bpc at each evaluation (NaN: none)


def characters_per_update(run: Run) -> int:
    """k1 · B: new characters read per update by a stream task's run."""
    config = run.config
    k1 = config.get("bptt_k1") or config.get("seq_len") or 50
    return int(k1) * int(config["batch_size"])


def curves(store: Store, runs: list[Run]) -> list[Curve]:
    """The finished runs that recorded their training time, as budget curves."""
    result = []
    for run in runs:
        if run.status == "running":
            continue
        by_name: dict[str, dict[int, float]] = {}
        for step, name, value in store.metrics(run.id):
            if value is not None:
                by_name.setdefault(name, {})[step] = value
        metric, seconds = by_name.get(MetricName.TEST_METRIC, {}), by_name.get(MetricName.TRAIN_TIME, {})
        steps = sorted(set(metric) & set(seconds))
        if steps:
            per_update = characters_per_update(run)
            bands = {
                name.removeprefix(MetricName.BAND_PREFIX): [values.get(s, math.nan) for s in steps]
                for name, values in by_name.items()
                if name.startswith(MetricName.BAND_PREFIX)
            }
            result.append(
                Curve(
                    run, [s * per_update for s in steps], [seconds[s] for s in steps], [metric[s] for s in steps], bands
                )
            )
    return result


def early_stopped(curve: Curve, spent: Callable[[Curve], list[float]], budget: float) -> int | None:
    """Early stopping: the index of the best (lowest) metric among the evaluations made within `budget`."""
    within = [i for i, used in enumerate(spent(curve)) if used <= budget * (1 + 1e-9)]
    return min(within, key=curve.values.__getitem__) if within else None


def best_within(curve: Curve, spent: Callable[[Curve], list[float]], budget: float) -> float | None:
    """The metric early stopping keeps within `budget`."""
    index = early_stopped(curve, spent, budget)
    return None if index is None else curve.values[index]


def _count(n: float) -> str:
    """3200000 → '3.2 M', 64000 → '64 k', 40 → '40'."""
    if n >= 1e6:
        return f"{n / 1e6:.3g} M"
    return f"{n / 1e3:.3g} k" if n >= 1e3 else f"{n:.0f}"


def _chars(curve: Curve) -> list[float]:
    return curve.chars


def _seconds(curve: Curve) -> list[float]:
    return curve.seconds


def budget_section(store: Store, runs: list[Run], out: Path, metric: str) -> tuple[list[tuple[str, Path, str]], str]:
    """Figures and HTML tables comparing the variants at equal characters and at equal training time, and each
    dependency band at equal characters where the runs scored bands."""
    all_curves = curves(store, runs)
    if not all_curves:
        return [], ""
    by_variant: dict[str, list[Curve]] = {}
    for curve in all_curves:
        by_variant.setdefault(variant_name(curve.run.name), []).append(curve)
    path = plots.budget_curves(
        {v: [(c.chars, c.seconds, c.values) for c in cs] for v, cs in by_variant.items()},
        out / "budget-curves.png",
        f"Held-out {metric} at equal budgets",
        metric,
    )
    figure = (
        "Held-out metric against characters seen and against training time",
        path,
        "One line per seed, one colour per variant. Left: characters read (all streams); right: seconds spent in "
        "updates (evaluations excluded), measured on this machine with one PyTorch thread per run.",
    )
    # Budgets every run has reached: the smallest total over all runs, and a quarter of it.
    chars = min(c.chars[-1] for c in all_curves)
    seconds = min(c.seconds[-1] for c in all_curves)
    columns = [
        (f"{_count(chars)} characters", _chars, chars),
        (f"{_count(chars / 4)} characters", _chars, chars / 4),
        (f"{seconds:.0f} s of training", _seconds, seconds),
        (f"{seconds / 4:.0f} s of training", _seconds, seconds / 4),
    ]
    header = "".join(f"<th>{escape(name)}</th>" for name, _, _ in columns)
    medians: dict[str, dict[str, float]] = {}
    body = ""
    for variant, cs in by_variant.items():
        cells = ""
        for name, spent, budget in columns:
            values = sorted(v for v in (best_within(c, spent, budget) for c in cs) if v is not None)
            if not values:
                cells += "<td>–</td>"
                continue
            middle = statistics.median(values)
            medians.setdefault(name, {})[variant] = middle
            cells += f"<td>{middle:.3f} ({values[0]:.3f}–{values[-1]:.3f}, {len(values)} seeds)</td>"
        body += f"<tr><th>{escape(variant)}</th>{cells}</tr>"
    winners = "".join(
        f"<li>{escape(name)}: <strong>{escape(min(scores, key=scores.get))}</strong></li>"
        for name, scores in medians.items()
    )
    table = (
        f"<h2>Which variant wins under which budget?</h2><p>Best held-out {escape(metric)} (lowest over the "
        f"evaluations made within the budget: early stopping), median (min–max) over seeds. Budgets are ones "
        f"every run reached.</p><table><tr><th>variant</th>{header}</tr>{body}</table>"
        f"<p>Lowest median per budget:</p><ul>{winners}</ul>"
    )
    band_figures, band_table = band_section(by_variant, chars, out)
    return [figure, *band_figures], table + band_table


def band_section(
    by_variant: dict[str, list[Curve]], chars: float, out: Path
) -> tuple[list[tuple[str, Path, str]], str]:
    """Each band's bits per character against characters seen (a figure), and at `chars` characters (a table:
    the bands of the evaluation early stopping keeps), for runs whose task scored bands of its test stream."""
    names = sorted({band for cs in by_variant.values() for c in cs for band in c.bands})
    if not names:
        return [], ""
    names.sort(key=lambda band: band == "other")  # the rest, whose context determines nothing, last
    panels = {
        band: {v: [(c.chars, c.bands[band]) for c in cs if band in c.bands] for v, cs in by_variant.items()}
        for band in names
    }
    path = plots.band_curves(panels, out / "band-curves.png", "Held-out bits per character on each band")
    figure = (
        "Each dependency band against characters seen",
        path,
        "One panel per band of the held-out characters (grouped by the dependency their prediction needs; the "
        "task's documentation gives how far back each one lies). One line per variant: the median over seeds at "
        "each evaluation, the shaded band their min–max.",
    )
    medians: dict[str, dict[str, float]] = {}
    rows = []
    for variant, cs in by_variant.items():
        cells = []
        for band in names:
            values = []
            for c in cs:
                kept = early_stopped(c, _chars, chars)
                if band in c.bands and kept is not None and not math.isnan(c.bands[band][kept]):
                    values.append(c.bands[band][kept])
            if values:
                values.sort()
                medians.setdefault(band, {})[variant] = statistics.median(values)
                cells.append((band, f"{statistics.median(values):.3f} ({values[0]:.3f}–{values[-1]:.3f})"))
            else:
                cells.append((band, "–"))
        rows.append((variant, cells))
    best = {band: min(scores, key=scores.get) for band, scores in medians.items()}
    body = "".join(
        f"<tr><th>{escape(variant)}</th>"
        + "".join(
            f"<td><strong>{escape(text)}</strong></td>" if best.get(band) == variant else f"<td>{escape(text)}</td>"
            for band, text in cells
        )
        + "</tr>"
        for variant, cells in rows
    )
    header = "".join(f"<th>{escape(band)}</th>" for band in names)
    table = (
        f"<h2>Which variant learns which dependency?</h2><p>Held-out bits per character on each band of the test "
        f"stream at {escape(_count(chars))} characters seen (every run reached it), at the evaluation early "
        f"stopping keeps (the lowest overall bpc within the budget): median (min–max) over seeds; the lowest "
        f"median per band in bold. The stored metrics <code>{escape(MetricName.BAND_PREFIX)}&lt;band&gt;</code> hold "
        f"every evaluation.</p><table><tr><th>variant</th>{header}</tr>{body}</table>"
    )
    return [figure], table
