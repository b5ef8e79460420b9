"""Bringing a store written by an older rnnlab to this schema version, once, when it is first opened for
writing. Each step adds what the newer version stores and computes it for the runs already there; no value
already stored is changed. A store opened read-only is read as it is (what it lacks reads as unknown).

Version 1 → 2: the task's facts with each run (`runs.higher_is_better`, `solved_threshold`, `stream_task`),
and the memoryless levels (`chance`, `baseline_loss` metrics) for finished runs stored before rnnlab recorded them,
computed from each run's stored config — so reports never need to rebuild a task.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from rnnlab.lab.store.records import FINISHED, LEVELS
from rnnlab.lab.store.schema import SCHEMA_VERSION


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Apply every step from `version` to SCHEMA_VERSION (inside the caller's write transaction)."""
    for step in range(version, SCHEMA_VERSION):
        STEPS[step](db)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def _task_facts(db: sqlite3.Connection) -> None:
    """1 → 2: add the facts' columns and fill them, and the missing levels, from each run's config."""
    # Imported here, not at the top: the store itself needs no torch, and only this one-time step (for a store
    # written before rnnlab stored the facts) has to build tasks to learn them.
    from rnnlab.lab.task_facts import facts_from_config

    for column, kind in (("higher_is_better", "INTEGER"), ("solved_threshold", "REAL"), ("stream_task", "INTEGER")):
        db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
    known: dict[str, dict | None] = {}  # a study's seeds share one task per (task, T, seed, options)
    for run_id, text, status in db.execute("SELECT id, config, status FROM runs").fetchall():
        config = json.loads(text)
        key = json.dumps([config.get(k) for k in ("task", "seq_len", "seed", "task_options")], sort_keys=True)
        if key not in known:
            known[key] = facts_from_config(config)
        facts = known[key]
        if facts is None:
            continue
        db.execute(
            "UPDATE runs SET higher_is_better = ?, solved_threshold = ?, stream_task = ? WHERE id = ?",
            (facts["higher_is_better"], facts["solved_threshold"], facts["stream_task"], run_id),
        )
        if status not in FINISHED:
            continue  # its metrics, levels included, are written when it finishes
        for level in LEVELS:  # a level recorded at finish is kept as it was
            db.execute(
                "INSERT OR IGNORE INTO metrics (run_id, step, name, value) VALUES (?, 0, ?, ?)",
                (run_id, level, facts[level]),
            )


STEPS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _task_facts}  # from version N to N + 1
