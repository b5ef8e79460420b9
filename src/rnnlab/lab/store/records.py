"""What the store holds and hands back: run statuses, the metric names, a run's row, the store's error."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

FINISHED = ("solved", "completed", "diverged")
STATUSES = ("running", *FINISHED, "failed")


def met_criterion(run) -> bool:
    """Whether a run (a stored `Run`, or a runs.csv row parsed) met its success criterion: it stopped there
    ('solved'), or it was told to run on (`stop_when_solved: false`) and records the first update that met it as
    `solved_at` while its status says it used its budget ('completed')."""
    return run.status == "solved" or run.solved_at is not None


def outcome(run) -> str:
    """A run's status as `study.unsolved_predecessor` reads it: 'solved' for every run that met its criterion
    (`met_criterion`), stopped there or not; otherwise its status."""
    return "solved" if met_criterion(run) else run.status


class MetricName:
    """The names of the metrics the store records per run and step — the one place they are spelled."""

    TRAIN_LOSS = "train_loss"  # training loss, every log interval
    TEST_METRIC = "test_metric"  # the task's metric on the test set, at each evaluation
    TEST_LOSS = "test_loss"  # the task's loss on the test set, at each evaluation
    WINDOW_TRAIN_LOSS = "window_train_loss"  # mean training loss since the previous evaluation
    WINDOW_GRAD_NORM = "window_grad_norm"  # mean pre-clip gradient norm since the previous evaluation
    WINDOW_GRAD_NORM_MAX = "window_grad_norm_max"  # largest pre-clip gradient norm since the previous evaluation
    WINDOW_CLIP_RATE = "window_clip_rate"  # fraction of updates clipped since the previous evaluation
    WINDOW_OMEGA = "window_omega"  # mean Pascanu Ω since the previous evaluation (regularizer omega only)
    TRAIN_TIME = "train_time"  # seconds spent in updates before the evaluation
    CHANCE = "chance"  # the task's metric for a memoryless predictor (step 0)
    BASELINE_LOSS = "baseline_loss"  # the task's loss for that predictor (step 0)
    LOSS_HORIZON = "loss_flow_horizon"  # gradient horizon of the task's own loss at each evaluation (the
    LOSS_DECAY_RATE = "loss_flow_decay_rate"  # flows table holds the probe's profile; see results.FlowSnapshot)
    BAND_PREFIX = "bpc_"  # bpc_<band>: a stream task's bits per character on one band of its held-out stream


LEVELS = (MetricName.CHANCE, MetricName.BASELINE_LOSS)  # the task's memoryless levels, metrics at step 0


class StoreError(ValueError):
    """The store file cannot be used (not an rnnlab store, newer schema, unwritable); one-line message."""


@dataclass(frozen=True)
class Run:
    """One row of the runs table, with the config and environment decoded. The task's facts
    (`higher_is_better`, `solved_threshold`, `stream_task`) are None for a run without a task (a monitor's
    history), for a run not finished since rnnlab stored them, and in an older store opened read-only."""

    id: int
    name: str
    study: str | None
    config_hash: str
    config: dict[str, Any]
    status: str
    created_at: float
    finished_at: float | None
    steps: int | None
    metric_name: str | None
    final_metric: float | None
    final_loss: float | None
    solved_at: int | None
    diverged_at: int | None
    clip_rate: float | None
    wall_time: float | None
    environment: dict[str, Any]
    error: str | None
    higher_is_better: bool | None = None  # the metric's direction
    solved_threshold: float | None = None  # the metric's success threshold (None: none, or not known)
    stream_task: bool | None = None  # a stream task (truncated BPTT over one text)

    @property
    def ended(self) -> str:
        """How a run that ended early ended: 'diverged at update 162124' / 'solved at update 4750'."""
        return f"{self.status} at update {self.diverged_at if self.status == 'diverged' else self.solved_at}"


def run_from_row(row: sqlite3.Row) -> Run:
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["environment"] = json.loads(data["environment"])
    for flag in ("higher_is_better", "stream_task"):  # SQLite keeps booleans as 0/1
        if data.get(flag) is not None:
            data[flag] = bool(data[flag])
    return Run(**data)


def _part_key(part: dict[str, Any]) -> tuple:
    return (part.get("machine"), part.get("from_step"), part.get("to_step"), part.get("started_at"))


def _inherited(runs: list[Run]) -> dict[int, int]:
    """How many leading parts each run shares with the run it continued (`Trainer.continue_from`: a run of a
    larger budget starts from a completed run's final state and keeps that run's parts, which are then a proper
    prefix of its own); 0 for a run that continued none."""
    keys = {run.id: tuple(_part_key(p) for p in run.environment.get("parts") or []) for run in runs}
    whole = set(keys.values())  # every run's parts, one lookup per prefix (not every run against every run)

    def shared(mine: tuple) -> int:
        return max((n for n in range(1, len(mine)) if mine[:n] in whole), default=0)

    return {run_id: shared(mine) for run_id, mine in keys.items()}


def own_parts(runs: list[Run]) -> dict[int, list[dict[str, Any]]]:
    """Each run's own parts (the sittings that trained it): its recorded parts less those it kept from the run
    it continued. Summed over `runs`, every update and second counts once."""
    shared = _inherited(runs)
    return {run.id: (run.environment.get("parts") or [])[shared[run.id] :] for run in runs}


def own_wall_times(runs: list[Run]) -> dict[int, float | None]:
    """Each run's own training time: its wall time less the seconds of the parts it kept from the run it
    continued (a run recorded as another's outcome, `same_as`, has 0 already)."""
    shared = _inherited(runs)
    times: dict[int, float | None] = {}
    for run in runs:
        kept = (run.environment.get("parts") or [])[: shared[run.id]]
        inherited = sum(p.get("seconds") or 0.0 for p in kept)
        times[run.id] = None if run.wall_time is None else max(0.0, run.wall_time - inherited)
    return times
