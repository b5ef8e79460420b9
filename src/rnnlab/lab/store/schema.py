"""The store's file format: what an rnnlab store file is, its tables, and how a new one is created.

Tables: ``meta`` (schema version), ``runs`` (config, hash, status, timings, final metrics, environment,
study, the task's facts), ``metrics`` (run, step, name, value), ``flows`` (run, step, horizon, decay rate, r²,
profile by lag, of the probe loss; the task loss's horizon and decay rate are metrics), ``studies`` (name,
the claim it reproduces and its source). An older store is brought to this version by `migrations.py`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from rnnlab.lab.store.records import STATUSES, StoreError

SCHEMA_VERSION = 2  # 2: the task's facts stored with each run (runs.higher_is_better, solved_threshold, stream_task)
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    study TEXT,
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    created_at REAL NOT NULL,
    finished_at REAL,
    steps INTEGER,
    metric_name TEXT,
    final_metric REAL,
    final_loss REAL,
    solved_at INTEGER,
    diverged_at INTEGER,
    clip_rate REAL,
    wall_time REAL,
    environment TEXT NOT NULL,
    error TEXT,
    higher_is_better INTEGER,
    solved_threshold REAL,
    stream_task INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_hash ON runs (config_hash, study);
CREATE TABLE IF NOT EXISTS metrics (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (run_id, step, name)
);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    claim TEXT NOT NULL,
    source TEXT NOT NULL,
    description TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS flows (
    run_id INTEGER NOT NULL REFERENCES runs (id),
    step INTEGER NOT NULL,
    horizon INTEGER NOT NULL,
    decay_rate REAL NOT NULL,
    r2 REAL NOT NULL,
    profile TEXT NOT NULL,
    PRIMARY KEY (run_id, step)
);
"""


def create(db: sqlite3.Connection) -> None:
    """Create the tables of this schema version (inside the caller's transaction)."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def schema_version(db: sqlite3.Connection) -> int | None:
    """The version recorded in the meta table; None where the table has none."""
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else int(row[0])


def refuse_unless_sqlite(path: Path) -> None:
    """A non-empty file that is not an SQLite database is someone's data: SQLite would take a file shorter than
    its header for an empty database and write rnnlab's schema over it. Refuse it, untouched."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise StoreError(f"cannot read store {str(path)!r}: {error.strerror}") from None
    if head != SQLITE_HEADER:
        raise StoreError(
            f"{str(path)!r} exists and is not an rnnlab store (not an SQLite database); it was left untouched — "
            "give a new file name or an existing store"
        )
