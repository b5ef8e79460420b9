"""Reading the store out: one CSV row per run, and the integrity check."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

from rnnlab.lab.store.records import LEVELS, STATUSES, MetricName, Run, own_wall_times

COLUMNS = (
    "id",
    "name",
    "study",
    "status",
    "steps",
    "metric_name",
    "final_metric",
    "final_loss",
    "solved_at",
    "diverged_at",
    "clip_rate",
    "wall_time",
    "config_hash",
    "higher_is_better",  # the task's facts (lab/task_facts.py), so a CSV alone can be summarised
    "solved_threshold",
    "stream_task",
)
#: The gradient horizon of the run's own loss at its first evaluation (untrained) and at its last one.
HORIZONS = ("horizon_first", "horizon_last")
#: The seconds the run trained itself: its wall time less that of the run it continued (`own_wall_times`), so
#: that a sum over rows counts every update once.
OWN_TIME = "own_wall_time"


def export_csv(db: sqlite3.Connection, runs: list[Run], path: str | Path) -> int:
    """Write one CSV row per run: its summary, the task's facts and memoryless levels, the horizon of its loss's
    gradient at its first and last evaluation, its own training time (`OWN_TIME`), then its config keys
    flattened as config.<key>; atomically. Returns the count."""
    levels: dict[int, dict[str, float | None]] = {}
    marks = ", ".join("?" for _ in LEVELS)
    for run_id, name, value in db.execute(
        f"SELECT run_id, name, value FROM metrics WHERE step = 0 AND name IN ({marks})", LEVELS
    ):
        levels.setdefault(run_id, {})[name] = value
    horizons: dict[int, list[float | None]] = {}
    for run_id, value in db.execute(
        "SELECT run_id, value FROM metrics WHERE name = ? ORDER BY run_id, step", (MetricName.LOSS_HORIZON,)
    ):
        horizons.setdefault(run_id, []).append(value)
    config_keys = sorted({k for r in runs for k in r.config})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*COLUMNS, *LEVELS, *HORIZONS, OWN_TIME, *(f"config.{k}" for k in config_keys)])
        own = own_wall_times(runs)
        for r in runs:
            config = [
                json.dumps(r.config.get(k)) if isinstance(r.config.get(k), dict) else r.config.get(k)
                for k in config_keys
            ]
            series = horizons.get(r.id, [None])
            writer.writerow(
                [getattr(r, c) for c in COLUMNS]
                + [levels.get(r.id, {}).get(n) for n in LEVELS]
                + [series[0], series[-1], own[r.id]]
                + config
            )
    os.replace(tmp, path)
    return len(runs)


def check(db: sqlite3.Connection) -> list[str]:
    """SQLite's own integrity check, then rnnlab's invariants. Returns the problems found (empty: OK)."""
    problems = [r[0] for r in db.execute("PRAGMA integrity_check") if r[0] != "ok"]
    bad_status = db.execute(
        f"SELECT id FROM runs WHERE status NOT IN ({', '.join('?' for _ in STATUSES)})", STATUSES
    ).fetchall()
    problems += [f"run {r[0]} has an unknown status" for r in bad_status]
    for r in db.execute(
        "SELECT id FROM runs WHERE status IN ('solved', 'completed', 'diverged') "
        "AND (steps IS NULL OR finished_at IS NULL OR metric_name IS NULL)"
    ):
        problems.append(f"run {r[0]} is marked finished but its summary is incomplete")
    for table in ("metrics", "flows"):
        for r in db.execute(f"SELECT DISTINCT run_id FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"):
            problems.append(f"{table} rows belong to run {r[0]}, which does not exist")
    for r in db.execute(
        "SELECT config_hash, study, COUNT(*) FROM runs WHERE status IN ('solved', 'completed', 'diverged') "
        "AND study IS NOT NULL GROUP BY config_hash, study HAVING COUNT(*) > 1"
    ):
        problems.append(f"study {r[1]!r} has {r[2]} finished runs of config {r[0]} (expected one)")
    return problems
