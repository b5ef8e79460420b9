"""Equal-budget comparison for stream tasks (truncated BPTT): held-out bits per character against characters
seen and against training time, and the best of each run (early stopping) at equal budgets.

A run of BPTT(k1, k2) over B parallel streams reads k1·B new characters per update, so runs with different k
that make the same number of updates have seen different amounts of text; comparing them per update confounds
the window with the data. Here every run is placed on two common axes instead: characters seen
(step · k1 · B) and training time (the `train_time` metric: seconds in updates, evaluations excluded).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
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
        metric = {step: value for step, _, value in store.metrics(run.id, MetricName.TEST_METRIC) if value is not None}
        seconds = {step: value for step, _, value in store.metrics(run.id, MetricName.TRAIN_TIME) if value is not None}
        steps = sorted(set(metric) & set(seconds))
        if steps:
            per_update = characters_per_update(run)
            result.append(
                Curve(run, [s * per_update for s in steps], [seconds[s] for s in steps], [metric[s] for s in steps])
            )
    return result


def best_within(curve: Curve, spent: Callable[[Curve], list[float]], budget: float) -> float | None:
    """Early stopping: the best (lowest) metric among the evaluations made within `budget`."""
    values = [v for used, v in zip(spent(curve), curve.values, strict=True) if used <= budget * (1 + 1e-9)]
    return min(values) if values else None


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
    """Figures and an HTML table comparing the variants at equal characters and at equal training time."""
    from html import escape

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
    return [figure], table
