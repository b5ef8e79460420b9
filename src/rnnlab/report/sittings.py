"""Where and when the runs trained: in one sitting or in parts, on which machines, the compute it took, and
which runs are unfinished.

A study may run in parts, days apart and on different machines: each run keeps one entry per sitting that
trained it (`parts` in its environment: machine, from_step, to_step, seconds, started_at), written by the
trainer. Sittings are told apart by time: training periods more than `GAP` seconds apart are two sittings.

Given the study file the runs came from, the section also lists the study's runs that the store does not hold
(`not_started`): those still to run, and those a sweep will not run because a shorter version of the same
configuration was not solved (the study's `skip_after_failure`).
"""

from __future__ import annotations

import html
import time
from collections import Counter
from dataclasses import dataclass

from rnnlab.lab.store import FINISHED, Run, outcome
from rnnlab.lab.store.records import own_parts, own_wall_times
from rnnlab.lab.study import Study, predecessors, unsolved_predecessor
from rnnlab.report.format import hours_minutes

GAP = 3600.0  # seconds without any training that separate two sittings
NOT_RECORDED = "not recorded (run stored before rnnlab kept its parts)"
LISTED = 12  # longer lists of unfinished runs are folded


@dataclass
class Part:
    """Updates from_step..to_step of one run, trained on `machine` in one sitting."""

    run: Run
    machine: str
    updates: int
    seconds: float
    started_at: float | None  # None: not recorded


def parts(run: Run, recorded: list[dict] | None = None) -> list[Part]:
    """A finished run's parts (`recorded`, default: all it holds); one part on an unrecorded machine for runs
    stored before parts were kept."""
    if recorded is None:
        recorded = run.environment.get("parts") or []
    if not run.environment.get("parts"):
        return [Part(run, NOT_RECORDED, run.steps or 0, run.wall_time or 0.0, None)]
    return [
        Part(
            run,
            p.get("machine") or NOT_RECORDED,
            p["to_step"] - p["from_step"],
            p.get("seconds") or 0.0,
            p.get("started_at"),
        )
        for p in recorded
    ]


def sittings(all_parts: list[Part]) -> list[list[Part]]:
    """The parts with a start time, grouped into sittings: a part starting more than GAP seconds after every
    earlier part ended begins a new sitting."""
    timed = sorted((p for p in all_parts if p.started_at is not None), key=lambda p: p.started_at)
    groups: list[list[Part]] = []
    end = -float("inf")
    for part in timed:
        if part.started_at > end + GAP:
            groups.append([])
        groups[-1].append(part)
        end = max(end, part.started_at + part.seconds)
    return groups


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seconds))


def _how_it_ran(all_parts: list[Part]) -> str:
    """One sentence: one sitting or several (with their dates), and how many runs were resumed."""
    groups = sittings(all_parts)
    per_run = Counter(p.run.id for p in all_parts)
    resumed = sum(1 for count in per_run.values() if count > 1)
    if not groups:
        return "<p>When the runs trained is not recorded (runs stored before rnnlab kept it).</p>"
    if len(groups) == 1 and not resumed:
        return f"<p>Ran in one sitting, starting {_when(groups[0][0].started_at)}.</p>"
    items = "".join(
        f"<li>{_when(g[0].started_at)}: {_count(len({p.run.id for p in g}), 'run')}, {sum(p.updates for p in g)} updates on "
        f"{html.escape(', '.join(sorted({p.machine for p in g})))}</li>"
        for g in groups
    )
    how = (
        f"Ran in parts: {len(groups)} sittings (training periods more than {GAP / 3600:g} h apart)"
        if len(groups) > 1
        else f"Ran in one sitting (no pause of more than {GAP / 3600:g} h)"
    )
    return (
        f"<p>{how}; {_count(resumed, 'run')} resumed from "
        f"{'its checkpoint' if resumed == 1 else 'their checkpoints'}.</p><ul>{items}</ul>"
    )


@dataclass
class NotStarted:
    """A run of the study file that the store does not hold; `shorter`, when a sweep will not run it: its
    shorter version's name, which finished unsolved (directly or through shorter ones not run either)."""

    name: str
    shorter: str | None = None


def not_started(study: Study, runs: list[Run]) -> list[NotStarted]:
    """The runs of `study` (in its order) without a stored run of the same config. Empty when no stored run is
    one of the study's: the store then holds another setting (or another study of the same name), and the
    file says nothing about it."""
    status = {r.config_hash: outcome(r) for r in runs}
    if not status.keys() & {config.hash() for config in study.runs}:
        return []
    before = predecessors(study)
    absent = []
    for config in study.runs:
        if config.hash() not in status:
            shorter = unsolved_predecessor(config, before, lambda c: status.get(c.hash()))
            absent.append(NotStarted(config.name, shorter.name if shorter is not None else None))
    return absent


def _where_it_resumes(run: Run, checkpointed: frozenset[int] | None) -> str:
    if checkpointed is None:
        return "unfinished (running or interrupted)"
    if run.id in checkpointed:
        return "unfinished (running or interrupted) — resumes from its checkpoint"
    return "claimed but not trained yet (no checkpoint) — starts from the beginning"


def _not_needed(skipped: list[NotStarted], key: str | None) -> str:
    items = "".join(f"<li>{html.escape(s.name)}: {html.escape(s.shorter)} was not solved</li>" for s in skipped)
    return (
        f"<p>{_count(len(skipped), 'run')} of the study will not run: a shorter version of the same configuration "
        f"finished unsolved (the study's <code>skip_after_failure: {html.escape(key or '')}</code>), so it counts "
        f"as not solved.</p><details><summary>which</summary><ul>{items}</ul></details>"
    )


def sittings_section(
    runs: list[Run],
    resume: str,
    absent: list[NotStarted] = (),
    skip_key: str | None = None,
    checkpointed: frozenset[int] | None = None,
) -> str:
    """The HTML section; `resume`: the command that continues these runs (e.g. the sweep's); `absent`: the
    study's runs that the store does not hold (`not_started`), `skip_key` the study's `skip_after_failure`;
    `checkpointed`: the ids of the unfinished runs that have a checkpoint (None: not known, say nothing of it)."""
    finished = [r for r in runs if r.status in FINISHED]
    repeated = [r for r in finished if r.environment.get("same_as")]  # trained nothing: another run's outcome
    finished = [r for r in finished if not r.environment.get("same_as")]
    own = own_parts(finished)  # a run that continued another counts only its new updates
    all_parts = [p for r in finished for p in parts(r, own[r.id])]
    text = "<h2>Where and when it ran</h2>"
    if all_parts:
        machines: dict[str, list[Part]] = {}
        for part in all_parts:
            machines.setdefault(part.machine, []).append(part)
        rows = "".join(
            f"<tr><td>{html.escape(machine)}</td><td>{len({p.run.id for p in ps})}</td>"
            f"<td>{sum(p.updates for p in ps)}</td><td>{sum(p.seconds for p in ps):.0f} s</td></tr>"
            for machine, ps in sorted(machines.items())
        )
        compute = sum(t or 0.0 for t in own_wall_times(finished).values())
        text += (
            f"{_how_it_ran(all_parts)}<p>Compute time: {hours_minutes(compute)} (h:mm; {compute:.0f} s), the sum "
            f"of the {len(finished)} finished runs' wall times (a run that continued another's budget counts "
            f"only its own updates).</p><table><tr><th>machine</th><th>runs</th>"
            f"<th>updates</th><th>wall time</th></tr>{rows}</table>"
        )
    if repeated:
        items = "".join(
            f"<li>{html.escape(r.name)}: run {r.environment['same_as']['run']}'s outcome ({html.escape(r.ended)}, "
            f"within its {r.environment['same_as']['steps']} updates)</li>"
            for r in repeated
        )
        text += (
            f"<p>{_count(len(repeated), 'run')} trained nothing: a run of the same configuration with a smaller "
            "budget ended early (solved or diverged), and on the CPU a run is deterministic, so a larger budget "
            f"repeats it update for update.</p><ul>{items}</ul>"
        )
    unfinished = [r for r in runs if r.status not in FINISHED]
    to_run = [a for a in absent if a.shorter is None]
    if unfinished or to_run:
        items = "".join(
            f"<li>{html.escape(r.name)}: "
            + (
                _where_it_resumes(r, checkpointed)
                if r.status == "running"
                else f"failed ({html.escape((r.error or '').splitlines()[0] if r.error else 'no message')}) — runs again"
            )
            + "</li>"
            for r in unfinished
        )
        items += "".join(f"<li>{html.escape(a.name)}: not run yet</li>" for a in to_run)
        count = len(unfinished) + len(to_run)
        text += (
            f"<p><strong>{count} of {len(runs) + len(absent)} runs are not finished</strong>; the same command "
            f"continues them: <code>{html.escape(resume)}</code>.</p>"
            + (
                f"<ul>{items}</ul>"
                if count <= LISTED
                else f"<details><summary>which</summary><ul>{items}</ul></details>"
            )
        )
    skipped = [a for a in absent if a.shorter is not None]
    if skipped:
        text += _not_needed(skipped, skip_key)
    return text
