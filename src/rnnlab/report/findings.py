"""The README's table of reproduced findings, generated from the bundled study files and the `runs.csv` each
study commits (`make study S=<study>` → docs/studies/<study>/runs.csv), so that every number in it is what
the CSV gives; tests/test_findings.py fails when the README's table differs from this one.

One row per bundled study with a `finding` key, ordered by finding number, then study name. Columns: the
finding (its number in bold, then its title), the paper's number and budget (`paper`), rnnlab's numbers
(below), the verdict (`verdict`), the compute time and the command that regenerates the study.

rnnlab's numbers, one clause per variant (a study's run name without its seed; ", T = n" added when a variant
ran at several lengths), joined by "; ", in the order the variants first appear in the CSV:
- with a success criterion: `<variant>: <s>/<N> solved` over its N finished runs, then the updates to success
  (", at <u> updates" for one solved run, ", median <m> updates (<min>–<max>)" for several), then
  ", budget <B>" (the largest `steps` of its runs); then, for the runs that did not succeed, "; unsolved
  final <metric> <m> (<min>–<max>)" — or, for the "beats the baseline" criterion, "; final loss/baseline
  <m> (<min>–<max>)" over all N runs (the ratio the criterion is defined on);
- without one (a stream task): `<variant>: final <metric> <m> (<min>–<max>), <N> runs of <B> updates`;
- then ", <d> diverged", ", <u> unfinished", ", <f> failed" where there are any.
Only the CSV's runs of the study's current setting count (their config hash is one of the study file's runs):
a run of the study not in the CSV adds "<n> not run" to its variant, and when the study file has changed since
the CSV was written the row ends with "runs.csv also holds <k> runs of an earlier setting, not counted" (or says
that the current setting has not run), so a table never mixes a new setting's words with an old one's numbers.
Numbers: medians and ranges over seeds; metrics and ratios with 3 significant digits, trailing zeros kept
(`format.sig3`); updates as integers (a median halfway between two counts rounds up). Compute: the sum of
the finished runs' own wall times (`own_wall_time`: a run that continued a smaller budget counts only its new
updates), h:mm.
"""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from rnnlab.lab.store import FINISHED, met_criterion
from rnnlab.lab.study import Study, bundled_studies, load_study, variant_name
from rnnlab.report.format import hours_minutes, sig3, spread

START = "<!-- findings:start -->"
END = "<!-- findings:end -->"
HEADER = (
    "| finding | paper | rnnlab (from the study's runs.csv) | verdict | compute (h:mm) | regenerate |\n"
    "| --- | --- | --- | --- | --- | --- |"
)


@dataclass
class CsvRun:
    """The columns of one runs.csv row the table uses, parsed."""

    name: str
    status: str  # a stored status, or NOT_RUN for a run of the study the CSV lacks
    metric_name: str
    final_metric: float | None
    final_loss: float | None
    solved_at: int | None
    wall_time: float | None
    seq_len: int | None
    budget: int
    beats_baseline: bool  # the run's criterion is "beats the memoryless baseline"
    baseline_loss: float | None
    has_criterion: bool  # the task's threshold or the baseline criterion (older CSVs: assumed)
    config_hash: str = ""
    task: str = ""
    steps: int | None = None  # updates it ran (a solved run stops early)
    horizon_first: float | None = None  # its loss's gradient horizon at the first evaluation (untrained) …
    horizon_last: float | None = None  # … and at the last
    own_wall_time: float | None = None  # its wall time less that of the run it continued (older CSVs: wall_time)


NOT_RUN = "not run"


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def read_runs(path: Path) -> list[CsvRun]:
    """The rows of a study's runs.csv (as written by `rnnlab runs export`), in the CSV's order."""
    runs = []
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            beats_baseline = row.get("config.success") == "baseline"
            threshold_known = "solved_threshold" in row  # CSVs exported before the task's facts were stored lack it
            solved_at = _number(row.get("solved_at"))
            seq_len = _number(row.get("config.seq_len"))
            steps = _number(row.get("steps"))
            runs.append(
                CsvRun(
                    name=row["name"],
                    status=row["status"],
                    metric_name=row.get("metric_name") or "metric",
                    final_metric=_number(row.get("final_metric")),
                    final_loss=_number(row.get("final_loss")),
                    solved_at=None if solved_at is None else int(solved_at),
                    wall_time=_number(row.get("wall_time")),
                    seq_len=None if seq_len is None else int(seq_len),
                    budget=int(_number(row.get("config.steps")) or 0),
                    beats_baseline=beats_baseline,
                    baseline_loss=_number(row.get("baseline_loss")),
                    has_criterion=beats_baseline or not threshold_known or row["solved_threshold"] != "",
                    config_hash=row.get("config_hash", ""),
                    task=row.get("config.task") or "",
                    steps=None if steps is None else int(steps),
                    horizon_first=_number(row.get("horizon_first")),
                    horizon_last=_number(row.get("horizon_last")),
                    own_wall_time=_number(row["own_wall_time"])
                    if "own_wall_time" in row
                    else _number(row.get("wall_time")),
                )
            )
    return runs


def _updates(value: float) -> str:
    return str(math.floor(value + 0.5))


def variant_text(label: str, runs: list[CsvRun]) -> str:
    """The clause of one variant (at one T) as the module docstring defines it."""
    finished = [r for r in runs if r.status in FINISHED]
    budget = max((r.budget for r in runs), default=0)
    text = f"{label}:"
    if finished and not finished[0].has_criterion:
        finals = [r.final_metric for r in finished if r.final_metric is not None]
        text += f" final {finished[0].metric_name} {spread(finals, sig3) if finals else '–'}"
        text += f", {len(finished)} {'run' if len(finished) == 1 else 'runs'} of {budget} updates"
    elif finished:
        solved = [r for r in finished if met_criterion(r)]
        text += f" {len(solved)}/{len(finished)} solved"
        if len(solved) == 1:
            text += f", at {solved[0].solved_at} updates"
        elif solved:
            updates = sorted(r.solved_at for r in solved)
            text += f", median {_updates(statistics.median(updates))} updates ({updates[0]}–{updates[-1]})"
        text += f", budget {budget}"
        baseline = finished[0].baseline_loss if finished[0].beats_baseline else None
        ratios = [r.final_loss / baseline for r in finished if baseline and r.final_loss is not None]
        unsolved = [r.final_metric for r in finished if not met_criterion(r) and r.final_metric is not None]
        if ratios:
            text += f"; final loss/baseline {spread(ratios, sig3)}"
        elif unsolved:
            text += f"; unsolved final {finished[0].metric_name} {spread(unsolved, sig3)}"
    else:
        text += " no finished run"
    for status, word in (("diverged", "diverged"), ("running", "unfinished"), ("failed", "failed"), (NOT_RUN, NOT_RUN)):
        count = sum(r.status == status for r in runs)
        if count:
            text += f", {count} {word}"
    return text


def study_numbers(runs: list[CsvRun]) -> str:
    """rnnlab's numbers for one study: the clauses of its variants, joined by '; '."""
    groups: dict[tuple[str, int | None], list[CsvRun]] = {}
    for run in runs:
        groups.setdefault((variant_name(run.name), run.seq_len), []).append(run)
    lengths: dict[str, set] = {}
    for variant, seq_len in groups:
        lengths.setdefault(variant, set()).add(seq_len)
    order = list(lengths)  # variants in the order they first appear
    clauses = []
    for (variant, seq_len), group in sorted(groups.items(), key=lambda kv: (order.index(kv[0][0]), kv[0][1] or 0)):
        label = f"{variant}, T = {seq_len}" if len(lengths[variant]) > 1 else variant
        clauses.append(variant_text(label, group))
    return "; ".join(clauses)


def _cell(text: str | None) -> str:
    """Markdown table cell: one line, '|' escaped; '–' where there is nothing."""
    return " ".join((text or "–").split()).replace("|", "\\|")


def current_runs(study: Study, runs: list[CsvRun]) -> tuple[list[CsvRun], int]:
    """The CSV's runs of the study's current setting, in the study's order, with a NOT_RUN placeholder for each
    run of the study the CSV lacks; and how many CSV runs belong to an earlier setting."""
    by_hash = {r.config_hash: r for r in runs}
    current = [
        by_hash.get(config.hash())
        or CsvRun(config.name, NOT_RUN, "", None, None, None, None, config.seq_len, config.steps, False, None, True)
        for config in study.runs
    ]
    hashes = {config.hash() for config in study.runs}
    return current, sum(r.config_hash not in hashes for r in runs)


def finding_row(study: Study, csv_path: Path) -> str:
    """One markdown row for a study with a `finding` key, from the runs of its current setting in its runs.csv."""
    number, _, title = (study.finding or "").partition(" ")
    if csv_path.exists():
        runs, earlier = current_runs(study, read_runs(csv_path))
        if all(r.status == NOT_RUN for r in runs):
            numbers = f"the current setting has not run yet (its runs.csv holds {earlier} runs of an earlier setting)"
        else:
            numbers = study_numbers(runs)
            if earlier:
                numbers += f"; runs.csv also holds {earlier} runs of an earlier setting, not counted"
        compute = hours_minutes(sum(r.own_wall_time or 0.0 for r in runs if r.status in FINISHED))
    else:
        # The study's folder and file only, so the table is the same whether --root is relative or absolute.
        numbers, compute = f"not run yet (no {csv_path.parent.name}/{csv_path.name})", "–"
    cells = [
        f"**{number}** {title}".strip(),
        study.paper,
        numbers,
        study.verdict,
        compute,
        f"`make study S={study.name}`",
    ]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _order(study: Study) -> tuple[int, str]:
    return int((study.finding or "F0").split()[0][1:]), study.name


def findings_table(root: str | Path = Path("docs") / "studies") -> str:
    """The markdown table (header and one row per bundled study with a `finding` key); `root` holds each
    study's folder with its runs.csv."""
    studies = [load_study(path) for path in bundled_studies().values()]
    rows = [
        finding_row(s, Path(root) / s.name / "runs.csv") for s in sorted((s for s in studies if s.finding), key=_order)
    ]
    return "\n".join([HEADER, *rows])


def readme_table(text: str, start: str = START, end: str = END) -> str:
    """The table between the README's markers (without them); ValueError when they are missing."""
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise ValueError(f"the README must hold the table between one {start} and one {end}")
    return text[text.index(start) + len(start) : text.index(end)].strip("\n")


def update_readme(path: str | Path, table: str, start: str = START, end: str = END) -> bool:
    """Put `table` between the README's markers (the findings table's unless told); returns whether the file
    changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if readme_table(text, start, end) == table:
        return False
    before, after = text[: text.index(start)], text[text.index(end) + len(end) :]
    path.write_text(f"{before}{start}\n{table}\n{end}{after}", encoding="utf-8")
    return True
