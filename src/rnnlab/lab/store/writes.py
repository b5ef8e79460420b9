"""Writing a run into the store's tables, inside the caller's transaction: a new run, and a finished run's
summary, metrics over steps, gradient-flow snapshots and task facts."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from rnnlab.lab.store.records import FINISHED, LEVELS, MetricName, StoreError

# Per evaluation: the result's key → the metric's name (every one of them in a trainer's evaluation).
PER_EVALUATION = {
    "metric": MetricName.TEST_METRIC,
    "loss": MetricName.TEST_LOSS,
    "train_loss": MetricName.WINDOW_TRAIN_LOSS,
    "grad_norm": MetricName.WINDOW_GRAD_NORM,
    "clip_rate": MetricName.WINDOW_CLIP_RATE,
}


def insert_run(db: sqlite3.Connection, name: str, config: dict, config_hash: str, environment: dict, study) -> int:
    """Record a new run as 'running'; returns its id."""
    cursor = db.execute(
        "INSERT INTO runs (name, study, config_hash, config, status, created_at, environment) "
        "VALUES (?, ?, ?, ?, 'running', ?, ?)",
        (name, study, config_hash, json.dumps(config, sort_keys=True), time.time(), json.dumps(environment)),
    )
    return int(cursor.lastrowid)


def result_rows(run_id: int, result: dict[str, Any]) -> tuple[list[tuple], list[tuple]]:
    """The (run, step, name, value) metric rows and the flow rows of a result."""
    metrics = [(run_id, int(step), MetricName.TRAIN_LOSS, real(v)) for step, v in result["train_losses"]]
    for level in LEVELS:  # the task's memoryless levels: reports need no task
        if result.get(level) is not None:
            metrics.append((run_id, 0, level, real(result[level])))
    flows = []
    for e in result["evaluations"]:
        step = int(e["step"])
        if "metric" in e or not e.get("flow"):  # a trainer's evaluation has every score (a missing one is a bug)
            metrics += [(run_id, step, name, real(e[key])) for key, name in PER_EVALUATION.items()]
        if "train_time" in e:  # seconds of updates before this evaluation (results from rnnlab ≥ 0.2)
            metrics.append((run_id, step, MetricName.TRAIN_TIME, real(e["train_time"])))
        if e.get("grad_norm_max") is not None:  # results from rnnlab ≥ 0.3
            metrics.append((run_id, step, MetricName.WINDOW_GRAD_NORM_MAX, real(e["grad_norm_max"])))
        if e.get("omega") is not None:  # runs with regularizer omega
            metrics.append((run_id, step, MetricName.WINDOW_OMEGA, real(e["omega"])))
        for name, value in (e.get("extras") or {}).items():  # a task's own scores, under their own names
            metrics.append((run_id, step, name, real(value)))
        if e.get("flow"):
            f = e["flow"]
            flows.append((run_id, step, f["horizon"], f["decay_rate"], f["r2"], json.dumps(f["profile"])))
            if f.get("loss_horizon") is not None:  # results from before it was recorded have none
                metrics.append((run_id, step, MetricName.LOSS_HORIZON, real(f["loss_horizon"])))
                metrics.append((run_id, step, MetricName.LOSS_DECAY_RATE, real(f["loss_decay_rate"])))
    return metrics, flows


def write_result(db: sqlite3.Connection, run_id: int, result: dict[str, Any], path: Path) -> None:
    """Write a finished run's summary, metrics and flows (`path` names the store in errors)."""
    if result["status"] not in FINISHED:
        raise ValueError(f"finish_run needs a finished status {FINISHED}, got {result['status']!r}")
    metrics, flows = result_rows(run_id, result)
    # Which machine ran which updates (a run resumed in another sitting has several parts): kept in the run's
    # environment, beside the machine that started it.
    parts = json.dumps(result["parts"]) if result.get("parts") else None
    db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
    db.execute("DELETE FROM flows WHERE run_id = ?", (run_id,))
    db.executemany("INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)", metrics)
    db.executemany(
        "INSERT INTO flows (run_id, step, horizon, decay_rate, r2, profile) VALUES (?, ?, ?, ?, ?, ?)", flows
    )
    updated = db.execute(
        "UPDATE runs SET status = ?, finished_at = ?, steps = ?, metric_name = ?, final_metric = ?, "
        "final_loss = ?, solved_at = ?, diverged_at = ?, clip_rate = ?, wall_time = ?, error = NULL, "
        "higher_is_better = ?, solved_threshold = ?, stream_task = ?, "
        "environment = json_remove(CASE WHEN ? IS NULL THEN environment "
        "ELSE json_set(environment, '$.parts', json(?)) END, '$.claimed_by') "  # finished: nobody's claim any more
        "WHERE id = ?",
        (
            result["status"],
            time.time(),
            result["steps"],
            result["metric_name"],
            real(result["final_metric"]),
            real(result["final_loss"]),
            result["solved_at"],
            result["diverged_at"],
            result["clip_rate"],
            result["wall_time"],
            result.get("higher_is_better"),  # results without a task (a monitor's) have no facts
            real(result.get("solved_threshold")),
            result.get("stream_task"),
            parts,
            parts,
            run_id,
        ),
    ).rowcount
    if updated != 1:
        raise StoreError(f"run {run_id} does not exist in {str(path)!r}")


def copy_outcome(db: sqlite3.Connection, source_id: int, target_id: int) -> None:
    """Give run `target_id` the finished outcome of run `source_id` — status, summary, metrics and flows — with
    no wall time of its own (it trained nothing; see `Store.record_outcome_of`)."""
    db.execute(
        "UPDATE runs SET (status, finished_at, steps, metric_name, final_metric, final_loss, solved_at, "
        "diverged_at, clip_rate, wall_time, higher_is_better, solved_threshold, stream_task) = "
        "(SELECT status, ?, steps, metric_name, final_metric, final_loss, solved_at, diverged_at, clip_rate, 0.0, "
        "higher_is_better, solved_threshold, stream_task FROM runs WHERE id = ?) WHERE id = ?",
        (time.time(), source_id, target_id),
    )
    db.execute(
        "INSERT INTO metrics (run_id, step, name, value) SELECT ?, step, name, value FROM metrics WHERE run_id = ?",
        (target_id, source_id),
    )
    db.execute(
        "INSERT INTO flows (run_id, step, horizon, decay_rate, r2, profile) "
        "SELECT ?, step, horizon, decay_rate, r2, profile FROM flows WHERE run_id = ?",
        (target_id, source_id),
    )


def real(value) -> float | None:
    """NaN and infinities are stored as NULL (SQLite has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None
