"""Did the runs meet their success criterion? The table of success rates and updates-to-solve per variant
and sequence length, and its figure, from what each run stored (its status, its task's facts and levels)."""

from __future__ import annotations

import html
from pathlib import Path

from rnnlab.lab.store import MetricName, Run, Store, met_criterion
from rnnlab.report import plots
from rnnlab.report.format import median_range

Groups = dict[str, dict[int, list[Run]]]  # variant → sequence length → one run per seed


def success_cell(group: list[Run], baseline_loss: float | None = None) -> tuple[str, bool]:
    """A table cell for the seeds of one variant at one T: success rate, median (min–max) updates-to-solve,
    and the final test metric of the unsolved seeds — or, given the task's `baseline_loss` (the "beats the
    baseline" criterion), their final loss as a fraction of it; and whether every seed solved it."""
    solved = [r for r in group if met_criterion(r)]
    text = f"{len(solved)}/{len(group)} solved"
    if solved:
        text += f" · updates {median_range([float(r.solved_at) for r in solved], counts=True)}"
    if baseline_loss:
        ratios = [r.final_loss / baseline_loss for r in group if not met_criterion(r) and r.final_loss is not None]
        if ratios:
            text += f" · unsolved final loss/baseline {median_range(ratios)}"
    unsolved = [r.final_metric for r in group if not met_criterion(r) and r.final_metric is not None]
    if unsolved and not baseline_loss:
        text += f" · unsolved final {group[0].metric_name} {median_range(unsolved)}"
    diverged = sum(r.status == "diverged" for r in group)
    if diverged:
        text += f" · {diverged} diverged"
    return text, len(solved) == len(group)


def criterion_is_baseline(run: Run) -> bool:
    return run.config.get("success") == "baseline"


def has_criterion(runs: list[Run]) -> bool:
    """Whether the runs have a success criterion: the baseline one, their task's (stored with them), or — in
    an older store read as it is, without the task's facts — a run that met one."""
    return any(criterion_is_baseline(r) or r.solved_threshold is not None or met_criterion(r) for r in runs)


def criterion_text(run: Run) -> str:
    """The success criterion of a run, in words."""
    if criterion_is_baseline(run):
        margin = run.config.get("baseline_margin", 0.1)
        return f"test loss below (1 − {margin:g}) × the memoryless baseline's loss"
    if run.higher_is_better is None:
        return "the task's (not recorded with these runs)"
    if run.solved_threshold is None:
        return "none (the runs use their whole budget)"
    return f"test {run.metric_name} {'≥' if run.higher_is_better else '<'} {run.solved_threshold:g}"


def task_level(store: Store, run: Run, name: str) -> float | None:
    """The task's memoryless 'chance' (metric) or 'baseline_loss' stored with the run (None: not stored)."""
    recorded = [value for _, _, value in store.metrics(run.id, name)]
    return recorded[0] if recorded else None


def success_section(
    store: Store, groups: Groups, lengths: list[int], facts: Run, out: Path
) -> tuple[list[tuple[str, Path, str]], str]:
    """The figure of updates-to-solve against T and the 'Solved?' table; `facts`: a run whose stored task facts
    state the criterion."""
    runs = [r for by_length in groups.values() for group in by_length.values() for r in group]
    series = {
        variant: [(t, r.solved_at if met_criterion(r) else None) for t in lengths for r in by_length.get(t, [])]
        for variant, by_length in groups.items()
    }
    budget = max(r.config.get("steps", 0) for r in runs)
    path = plots.success_vs_length(
        series, out / "success-vs-length.png", "Updates until solved, per seed", budget, lengths
    )
    figure = (
        "Success against sequence length",
        path,
        "Each dot is one seed's number of updates until the success criterion was met; the bar is the "
        "median of the solved seeds; ✗ above the dotted budget line marks a seed that never met it.",
    )
    header = "".join(f"<th>T = {html.escape(str(t))}</th>" for t in lengths)
    body = ""
    for variant, by_length in groups.items():
        cells = ""
        for t in lengths:
            if t not in by_length:
                cells += "<td>–</td>"
                continue
            group = by_length[t]
            baseline = (
                task_level(store, group[0], MetricName.BASELINE_LOSS) if criterion_is_baseline(group[0]) else None
            )
            text, all_solved = success_cell(group, baseline)
            cells += f'<td class="{"ok" if all_solved else "bad"}">{html.escape(text)}</td>'
        body += f"<tr><th>{html.escape(variant)}</th>{cells}</tr>"
    table = (
        f"<h2>Solved?</h2><p>Success criterion: {html.escape(criterion_text(facts))}. Over the seeds of each "
        f"variant: how many solved it, the median (min–max) number of updates they needed, and the final test "
        f"metric of those that did not.</p><table><tr><th>variant</th>{header}</tr>{body}</table>"
    )
    return [figure], table
