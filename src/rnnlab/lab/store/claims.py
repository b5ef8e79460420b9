"""Sweep claims: which runs of a study a sweep takes on, decided in one write transaction each, so that
concurrent sweeps on one store serialise here and every run is trained exactly once."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from rnnlab.lab.store.records import FINISHED
from rnnlab.lab.store.writes import insert_run


def claim(
    db: sqlite3.Connection, name: str, config: dict[str, Any], config_hash: str, environment: dict[str, Any], study: str
) -> tuple[int, str]:
    """Return the finished run of this config in `study` ('finished'), or re-open an interrupted one
    ('resumed') or a failed one ('resumed-failed'), or record a new one ('new'): (run id, which of these)."""
    rows = db.execute(
        "SELECT id, status FROM runs WHERE config_hash = ? AND study = ? ORDER BY id DESC", (config_hash, study)
    ).fetchall()
    for row in rows:
        if row["status"] in FINISHED:
            return int(row["id"]), "finished"
    if rows:
        run_id = int(rows[0]["id"])
        db.execute("UPDATE runs SET status = 'running', finished_at = NULL, error = NULL WHERE id = ?", (run_id,))
        return run_id, "resumed" if rows[0]["status"] == "running" else "resumed-failed"
    return insert_run(db, name, config, config_hash, environment, study), "new"


def release(db: sqlite3.Connection, claims: list[tuple[int, str]]) -> None:
    """Undo `claim` for runs no executor ever started: a new run is deleted, a re-opened failed run is failed
    again, an interrupted one stays 'running'."""
    for run_id, state in claims:
        if state == "new":
            db.execute("DELETE FROM runs WHERE id = ? AND status = 'running'", (run_id,))
        elif state == "resumed-failed":
            db.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ? AND status = 'running'",
                (time.time(), "not run: the executor could not start", run_id),
            )
