"""Pre-clip gradient norms per run, to tell an exploding gradient from a vanishing one.

Clipping (Pascanu et al. 2013) acts on the rare update whose gradient explodes; a vanishing gradient is
small and stays small. The store keeps, per evaluation window, the mean and the largest global L2 norm of
the gradients before clipping (`window_grad_norm`, `window_grad_norm_max`) and the fraction of updates
clipped; this module turns them into a table per variant (seed ranges) and a figure against updates.
"""

from __future__ import annotations

import html
import statistics
from dataclasses import dataclass
from pathlib import Path

from rnnlab.lab.store import MetricName, Run, Store
from rnnlab.report import plots
from rnnlab.report.format import fmt_rate, sig3, spread

Groups = dict[str, dict[int, list[Run]]]  # variant → sequence length → one run per seed


@dataclass
class RunNorms:
    """One run's pre-clip gradient norms at each evaluation (the window since the previous one)."""

    run: Run
    steps: list[int]
    means: list[float]  # the window's mean pre-clip norm
    max_steps: list[int]
    maxima: list[float]  # the window's largest pre-clip norm; empty for runs stored before rnnlab kept it

    @property
    def median(self) -> float | None:
        """The median over training of the windows' mean norms."""
        return statistics.median(self.means) if self.means else None

    @property
    def largest(self) -> float | None:
        """The largest pre-clip norm of any single update (None: not recorded)."""
        return max(self.maxima) if self.maxima else None


def run_norms(store: Store, run: Run) -> RunNorms:
    """The stored window norms of a run (step 0, before any update, has none)."""

    def series(name: str) -> tuple[list[int], list[float]]:
        points = [(step, value) for step, _, value in store.metrics(run.id, name) if value is not None]
        return [s for s, _ in points], [v for _, v in points]

    steps, means = series(MetricName.WINDOW_GRAD_NORM)
    max_steps, maxima = series(MetricName.WINDOW_GRAD_NORM_MAX)
    return RunNorms(run, steps, means, max_steps, maxima)


def clipping_text(config: dict) -> str:
    """How a run clipped, in a few words."""
    mode, threshold = config.get("clip", "none"), config.get("clip_threshold")
    if mode == "none" or threshold is None:
        return "none"
    return {"global_norm": f"global norm ≤ {threshold:g}", "value": f"each element to ±{threshold:g}"}.get(
        mode, f"each tensor's norm ≤ {threshold:g}"
    )


def _spread(values: list[float | None], rate: bool = False) -> str:
    """'median (min–max)' over seeds of the values recorded (norms with 3 significant digits); '–' where none
    was."""
    known = [v for v in values if v is not None]
    return spread(known, fmt_rate if rate else sig3) if known else "–"


def gradient_norm_section(store: Store, groups: Groups, out: Path) -> tuple[list[tuple[str, Path, str]], str]:
    """The figure of pre-clip norms against updates (one panel per variant and T) and the table; nothing for
    runs without norms (a monitor's history)."""
    several_lengths = len({t for by_length in groups.values() for t in by_length}) > 1
    panels: dict[str, list[tuple[list[int], list[float], list[int], list[float]]]] = {}
    thresholds: dict[str, float | None] = {}
    rows = ""
    for variant, by_length in groups.items():
        for t, group in sorted(by_length.items()):
            norms = [run_norms(store, r) for r in group]
            norms = [n for n in norms if n.means]
            if not norms:
                continue
            label = f"{variant}, T = {t}" if several_lengths else variant
            panels[label] = [(n.steps, n.means, n.max_steps, n.maxima) for n in norms]
            config = norms[0].run.config
            thresholds[label] = config.get("clip_threshold") if config.get("clip") == "global_norm" else None
            rows += (
                f"<tr><th>{html.escape(label)}</th><td>{html.escape(clipping_text(config))}</td>"
                f"<td>{html.escape(_spread([n.median for n in norms]))}</td>"
                f"<td>{html.escape(_spread([n.largest for n in norms]))}</td>"
                f"<td>{html.escape(_spread([n.run.clip_rate for n in norms], rate=True))}</td>"
                f"<td>{len(norms)}</td></tr>"
            )
    if not panels:
        return [], ""
    path = plots.gradient_norms(
        panels, out / "gradient-norms.png", "Pre-clip gradient norm over training: exploding or vanishing?", thresholds
    )
    figure = (
        "Pre-clip gradient norms over training",
        path,
        "The global L2 norm of all gradients before clipping: solid, each evaluation window's mean; dotted, its "
        "largest single update (not drawn for runs stored before rnnlab kept it); one colour per seed; dashed "
        "grey, the clipping threshold where clipping bounds this same norm. Log scale.",
    )
    table = (
        "<h2>Exploding or vanishing?</h2><p>The global L2 norm of the gradients before clipping, over the seeds "
        "of each variant as median (min–max): the median over training of each evaluation window's mean norm, the "
        "largest norm of any single update, and the fraction of updates where clipping acted. A largest norm far "
        "above the median, with clipping acting often, is an exploding gradient; norms that stay small while the "
        "loss stays at the baseline are a vanishing one. –: not recorded (runs stored before rnnlab kept the "
        "largest norm of each window).</p><table><tr><th>variant</th><th>clipping</th><th>median pre-clip norm"
        "</th><th>largest pre-clip norm</th><th>updates clipped</th><th>runs</th></tr>"
        f"{rows}</table>"
    )
    return [figure], table
