"""The remedy ladder (the bundled study `ladder`): one markdown table and one picture of which rung — a cell
and its remedy — solves which task at which sequence length, from the study's committed runs.csv, like the
findings table (`findings.py`), so every number is what the CSV gives and tests/test_ladder.py can check the
README against it.

Per rung (a variant of the study) and task:
- **longest T solved**: the largest T at which a majority of the rung's finished seeds met the task's criterion
  ("–": at no T), with the count ("2/3"), and the median updates they needed there;
- **horizon**: the gradient horizon of the task's loss at the first evaluation (untrained) → the last one,
  medians over the finished seeds, at the longest T the rung finished;
- **s/update**: the median wall time per update of those runs (on the machine that ran them).
A seed not run at a T because it did not solve a shorter one (the study's `skip_after_failure: seq_len`) counts
as not solved there. Rungs without finished runs at a task say how many of their runs have not run. The picture is the grid of
rungs × (task, T), each square the fraction of finished seeds that solved it, labelled "k/n".
"""

from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path

from rnnlab.lab.store import FINISHED, met_criterion, outcome
from rnnlab.lab.study import SKIPPED, Study, load_study, predecessors, unsolved_predecessor
from rnnlab.report import plots
from rnnlab.report.findings import NOT_RUN, CsvRun, current_runs, read_runs
from rnnlab.report.format import sig3

START = "<!-- ladder:start -->"
END = "<!-- ladder:end -->"
STUDY = "ladder"

Grid = dict[str, dict[str, dict[int, list[CsvRun]]]]  # rung → task → T → its runs (one per seed)


def ladder_grid(study: Study, csv_path: Path) -> Grid:
    """The study's runs of its current setting (a NOT_RUN placeholder for each one the CSV lacks), by rung,
    task and T, in the study file's order."""
    runs, _ = current_runs(study, read_runs(csv_path) if csv_path.exists() else [])
    status = {c.hash(): None if r.status == NOT_RUN else outcome(r) for c, r in zip(study.runs, runs, strict=True)}
    before = predecessors(study)
    runs = [
        dataclasses.replace(run, status=SKIPPED)
        if run.status in (NOT_RUN, "running") and unsolved_predecessor(config, before, lambda c: status[c.hash()])
        else run
        for config, run in zip(study.runs, runs, strict=True)
    ]
    grid: Grid = {}
    for config, run in zip(study.runs, runs, strict=True):
        rung = config.name.split(" · ")[0]  # the variant's own name, without the grid's task, T and seed
        grid.setdefault(rung, {}).setdefault(config.task, {}).setdefault(config.seq_len, []).append(run)
    return {rung: {task: dict(sorted(by_t.items())) for task, by_t in tasks.items()} for rung, tasks in grid.items()}


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _solved_text(by_t: dict[int, list[CsvRun]]) -> str:
    """'T = 500 (2/3), 1250 updates' — the longest T a majority of finished seeds solved (a seed skipped there
    counts as finished unsolved); '–' for none."""
    best = None
    for t, runs in by_t.items():
        finished = [r for r in runs if r.status in (*FINISHED, SKIPPED)]
        solved = [r for r in finished if met_criterion(r)]
        if finished and 2 * len(solved) > len(finished):
            best = (t, solved, finished)
    if best is None:
        return "–"
    t, solved, finished = best
    updates = statistics.median(r.solved_at for r in solved)
    return f"T = {t} ({len(solved)}/{len(finished)}), {int(updates + 0.5)} updates"


def _longest_finished(by_t: dict[int, list[CsvRun]]) -> tuple[int, list[CsvRun]] | None:
    finished = {t: [r for r in runs if r.status in FINISHED] for t, runs in by_t.items()}
    lengths = [t for t, runs in finished.items() if runs]
    return (max(lengths), finished[max(lengths)]) if lengths else None


def _horizon_text(runs: list[CsvRun]) -> str:
    first = _median([r.horizon_first for r in runs if r.horizon_first is not None])
    last = _median([r.horizon_last for r in runs if r.horizon_last is not None])
    if first is None or last is None:
        return "–"
    return f"{first:g} → {last:g}"


def _cost_text(runs: list[CsvRun]) -> str:
    per_update = _median([r.wall_time / r.steps for r in runs if r.wall_time and r.steps])
    return "–" if per_update is None else sig3(per_update)


def ladder_table(grid: Grid) -> str:
    """The markdown table: one row per rung and task (the module docstring defines the columns)."""
    lines = [
        "| rung | task | longest T solved (seeds), updates there | horizon first → last (at T) | s/update (at T) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rung, tasks in grid.items():
        for task, by_t in tasks.items():
            longest = _longest_finished(by_t)
            if longest is None:
                missing = sum(r.status == NOT_RUN for runs in by_t.values() for r in runs)
                unfinished = sum(r.status in ("running", "failed") for runs in by_t.values() for r in runs)
                state = f"no finished run ({missing} not run" + (f", {unfinished} unfinished)" if unfinished else ")")
                lines.append(f"| {rung} | {task} | {state} | – | – |")
                continue
            t, runs = longest
            lines.append(
                f"| {rung} | {task} | {_solved_text(by_t)} | {_horizon_text(runs)} (T = {t}) | {_cost_text(runs)} (T = {t}) |"
            )
    return "\n".join(lines)


def ladder_figure(grid: Grid, path: str | Path) -> Path:
    """The grid of rungs × (task, T): each square the fraction of finished seeds that solved, labelled k/n (a
    seed skipped after failing a shorter T is one of the n)."""
    columns = sorted({(task, t) for tasks in grid.values() for task, by_t in tasks.items() for t in by_t})
    cells = {}
    for rung, tasks in grid.items():
        for task, by_t in tasks.items():
            for t, runs in by_t.items():
                counted = [r for r in runs if r.status in (*FINISHED, SKIPPED)]
                solved = sum(met_criterion(r) for r in counted)
                cells[rung, (task, t)] = (solved, len(counted), sum(r.status == SKIPPED for r in counted))
    return plots.solved_grid(list(grid), columns, cells, path)


def ladder(root: str | Path = Path("docs") / "studies", figure: bool = True, study: Study | None = None) -> str:
    """The ladder table from `root`/<study>/runs.csv (the bundled `ladder` unless given) and, with `figure`,
    its picture `root`/<study>/ladder.png."""
    study = study or load_study(STUDY)
    grid = ladder_grid(study, Path(root) / study.name / "runs.csv")
    if figure:
        ladder_figure(grid, Path(root) / study.name / "ladder.png")
    return ladder_table(grid)
