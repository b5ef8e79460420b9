"""The results store: one SQLite file (stdlib `sqlite3`, WAL) holding every run, its metrics over steps and
its gradient-flow snapshots.

Every write is one transaction, so a run is either wholly recorded or not at all; a killed process leaves
at most a run marked 'running' (with a checkpoint to resume from), never a half-written result. The store
knows nothing of torch: it takes and returns plain data.

Tables: ``meta`` (schema version), ``runs`` (config, hash, status, timings, final metrics, environment,
study), ``metrics`` (run, step, name, value), ``flows`` (run, step, horizon, decay rate, r², profile by
lag, of the probe loss; the task loss's horizon and decay rate are metrics), ``studies`` (name, the claim it
reproduces and its source).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DEFAULT_PATH = Path("runs") / "rnnlab.db"
FINISHED = ("solved", "completed", "diverged")
STATUSES = ("running", *FINISHED, "failed")

_SCHEMA = f"""
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
    error TEXT
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


class MetricName:
    """The names of the metrics the store records per run and step — the one place they are spelled."""

    TRAIN_LOSS = "train_loss"  # training loss, every log interval
    TEST_METRIC = "test_metric"  # the task's metric on the test set, at each evaluation
    TEST_LOSS = "test_loss"  # the task's loss on the test set, at each evaluation
    WINDOW_TRAIN_LOSS = "window_train_loss"  # mean training loss since the previous evaluation
    WINDOW_GRAD_NORM = "window_grad_norm"  # mean pre-clip gradient norm since the previous evaluation
    WINDOW_GRAD_NORM_MAX = "window_grad_norm_max"  # largest pre-clip gradient norm since the previous evaluation
    WINDOW_CLIP_RATE = "window_clip_rate"  # fraction of updates clipped since the previous evaluation
    TRAIN_TIME = "train_time"  # seconds spent in updates before the evaluation
    CHANCE = "chance"  # the task's metric for a memoryless predictor (step 0)
    BASELINE_LOSS = "baseline_loss"  # the task's loss for that predictor (step 0)
    LOSS_HORIZON = "loss_flow_horizon"  # gradient horizon of the task's own loss at each evaluation (the
    LOSS_DECAY_RATE = "loss_flow_decay_rate"  # flows table holds the probe's profile; see results.FlowSnapshot)


class StoreError(ValueError):
    """The store file cannot be used (not an rnnlab store, newer schema, unwritable); one-line message."""


@dataclass(frozen=True)
class Run:
    """One row of the runs table, with the config and environment decoded."""

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


class Store:
    """Open (or create) the store at `path`. Raises StoreError for a file that is not an rnnlab store or
    whose schema is newer than this rnnlab understands; existing data is never modified by opening it."""

    def __init__(self, path: str | Path = DEFAULT_PATH):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store path {str(self.path)!r} is a folder; give a file path such as runs/rnnlab.db")
        exists = self.path.exists()
        if exists and self.path.stat().st_size > 0:
            _refuse_unless_sqlite(self.path)
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create the folder for store {str(self.path)!r}: {error.strerror}") from None
        # A store this process may not write (file or folder read-only) is opened for reading only: it can be
        # listed, shown, exported and reported, and any write is refused in one line, leaving the file as it is.
        self.read_only = exists and not (os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK))
        try:
            self._db = self._connect()
            self._db.row_factory = sqlite3.Row
            self._check_or_create(exists)
        except sqlite3.DatabaseError as error:
            with contextlib.suppress(Exception):
                self._db.close()
            raise StoreError(f"{str(self.path)!r} is not an rnnlab store ({error})") from None

    def _connect(self) -> sqlite3.Connection:
        if not self.read_only:
            return sqlite3.connect(self.path, timeout=60, isolation_level=None)
        uri = f"file:{urllib.parse.quote(str(self.path.resolve()))}?mode=ro"
        try:
            db = sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return db
        except sqlite3.OperationalError:
            # A WAL database in a read-only folder has no shared-memory file and cannot get one: read it as an
            # immutable file (correct unless another process writes it meanwhile, which it cannot do here either).
            return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=60, isolation_level=None)

    def _check_or_create(self, exists: bool) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if exists and tables and "meta" not in tables:
            raise StoreError(f"{str(self.path)!r} is an SQLite file but not an rnnlab store (no meta table)")
        if "meta" in tables:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                raise StoreError(f"{str(self.path)!r} is not an rnnlab store (no schema version)")
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {str(self.path)!r} has schema version {version}, newer than this rnnlab's "
                    f"{SCHEMA_VERSION}; upgrade rnnlab to read it"
                )
            if not self.read_only:
                self._db.execute("PRAGMA journal_mode = WAL")
            return
        if exists and os.path.getsize(self.path) > 0 and not os.access(self.path, os.W_OK):
            raise StoreError(f"store {str(self.path)!r} is read-only")
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        self._db.execute("PRAGMA journal_mode = WAL")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it is committed, or none of it."""
        if self.read_only:
            raise StoreError(f"store {str(self.path)!r} is read-only here: nothing can be written to it")
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise StoreError(f"cannot write to store {str(self.path)!r}: {error}") from None
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            try:
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                self._db.execute("ROLLBACK")
                raise StoreError(f"cannot write to store {str(self.path)!r}: {error}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ writes

    def start_run(
        self, name: str, config: dict[str, Any], config_hash: str, environment: dict[str, Any], study: str | None = None
    ) -> int:
        """Record a new run as 'running'; returns its id."""
        with self._transaction() as db:
            return _insert_run(db, name, config, config_hash, environment, study)

    def finish_run(self, run_id: int, result: dict[str, Any]) -> None:
        """Write a finished run — summary, metrics over steps and flow snapshots — in one transaction.

        `result` is `TrainResult.to_dict()`: plain data with keys status, steps, metric_name, final_metric,
        final_loss, solved_at, diverged_at, clip_rate, wall_time, evaluations, train_losses. An evaluation
        may also be its step and flow alone (a monitor's record of a user's own loop has no test scores).
        """
        with self._transaction() as db:
            _write_result(db, run_id, result, self.path)

    def record_run(
        self,
        name: str,
        config: dict[str, Any],
        config_hash: str,
        environment: dict[str, Any],
        result: dict[str, Any],
        study: str | None = None,
    ) -> int:
        """Record a run that finished elsewhere (e.g. `rnnlab.monitor` in a user's own loop) with its result, in
        one transaction: it is in the store whole or not at all. Returns its id."""
        with self._transaction() as db:
            run_id = _insert_run(db, name, config, config_hash, environment, study)
            _write_result(db, run_id, result, self.path)
        return run_id

    def claim_run(
        self, name: str, config: dict[str, Any], config_hash: str, environment: dict[str, Any], study: str
    ) -> tuple[int, str]:
        """In one write transaction (so concurrent sweeps on one store serialise here): return the finished
        run of this config in `study` ('finished'), or re-open an interrupted one ('resumed') or a failed one
        ('resumed-failed'), or record a new one ('new'). Returns (run id, which of these)."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT id, status FROM runs WHERE config_hash = ? AND study = ? ORDER BY id DESC",
                (config_hash, study),
            ).fetchall()
            for row in rows:
                if row["status"] in FINISHED:
                    return int(row["id"]), "finished"
            if rows:
                run_id = int(rows[0]["id"])
                db.execute(
                    "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL WHERE id = ?", (run_id,)
                )
                return run_id, "resumed" if rows[0]["status"] == "running" else "resumed-failed"
            return _insert_run(db, name, config, config_hash, environment, study), "new"

    def release_claims(self, claims: list[tuple[int, str]]) -> None:
        """Undo `claim_run` for runs no executor ever started (e.g. the executor could not start): a new run is
        deleted, a re-opened failed run is failed again, an interrupted one stays 'running'. One transaction."""
        with self._transaction() as db:
            for run_id, state in claims:
                if state == "new":
                    db.execute("DELETE FROM runs WHERE id = ? AND status = 'running'", (run_id,))
                elif state == "resumed-failed":
                    db.execute(
                        "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ? AND status = 'running'",
                        (time.time(), "not run: the executor could not start", run_id),
                    )

    def save_study(self, name: str, claim: str, source: str, description: str = "") -> None:
        """Record (or update) a study's metadata; its runs carry its name."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO studies (name, claim, source, description, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET claim = excluded.claim, source = excluded.source, "
                "description = excluded.description, updated_at = excluded.updated_at",
                (name, claim, source, description, time.time()),
            )

    def fail_run(self, run_id: int, error: str) -> None:
        """Mark a run that crashed (not diverged: a bug or an environment problem) as 'failed'."""
        with self._transaction() as db:
            db.execute(
                "UPDATE runs SET status = 'failed', finished_at = ?, error = ? WHERE id = ?",
                (time.time(), error[:2000], run_id),
            )

    def delete_runs(self, run_ids: list[int]) -> int:
        """Delete runs with their metrics and flows (one transaction), then their checkpoints. A run that does
        not exist is an error and nothing is deleted. Returns the number of runs deleted."""
        ids = sorted(set(run_ids))
        with self._transaction() as db:
            marks = ", ".join("?" for _ in ids)
            found = {r[0] for r in db.execute(f"SELECT id FROM runs WHERE id IN ({marks})", ids)}
            missing = [i for i in ids if i not in found]
            if missing:
                raise StoreError(f"no run {missing[0]} in {str(self.path)!r}; nothing was deleted")
            for table in ("metrics", "flows"):
                db.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", ids)
            db.execute(f"DELETE FROM runs WHERE id IN ({marks})", ids)
        for run_id in ids:  # after the commit: a kill in between leaves a stray checkpoint, never a lost run
            self.checkpoint_path(run_id).unlink(missing_ok=True)
        return len(ids)

    def prune_checkpoints(self) -> tuple[int, int]:
        """Delete the checkpoints of finished runs and of runs no longer in the store; a 'running' run keeps its
        own (it may resume from it). Returns (files deleted, bytes freed)."""
        folder = self.path.with_name(self.path.name + ".checkpoints")
        if not folder.is_dir():
            return 0, 0
        keep = {
            self.checkpoint_path(r[0]).name for r in self._db.execute("SELECT id FROM runs WHERE status = 'running'")
        }
        count = size = 0
        for path in folder.glob("run-*.pt"):
            if path.name not in keep:
                size += path.stat().st_size
                path.unlink(missing_ok=True)
                count += 1
        return count, size

    # ------------------------------------------------------------------------------------------ reads

    def runs(self, study: str | None = None, status: str | None = None) -> list[Run]:
        query, args = "SELECT * FROM runs WHERE 1 = 1", []
        if study is not None:
            query += " AND study = ?"
            args.append(study)
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        return [_run(r) for r in self._db.execute(query + " ORDER BY id", args)]

    def run(self, run_id: int) -> Run:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in {str(self.path)!r}")
        return _run(row)

    def find(self, config_hash: str, study: str | None = None, statuses: tuple[str, ...] = FINISHED) -> Run | None:
        """The latest run with this config hash and one of these statuses, in `study` — or, with study None,
        among single runs (`rnnlab train`), never a study's run."""
        marks = ", ".join("?" for _ in statuses)
        query = f"SELECT * FROM runs WHERE config_hash = ? AND status IN ({marks}) AND study IS ?"
        args: list[Any] = [config_hash, *statuses, study]
        row = self._db.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return None if row is None else _run(row)

    def study(self, name: str) -> dict[str, Any]:
        """A study's metadata; StoreError if the store has no such study."""
        row = self._db.execute("SELECT * FROM studies WHERE name = ?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r[0] for r in self._db.execute("SELECT name FROM studies ORDER BY name")) or "none"
            raise StoreError(f"no study {name!r} in {str(self.path)!r}; studies there: {known}")
        return dict(row)

    def metrics(self, run_id: int, name: str | None = None) -> list[tuple[int, str, float | None]]:
        """(step, name, value) rows of a run, by step."""
        query, args = "SELECT step, name, value FROM metrics WHERE run_id = ?", [run_id]
        if name is not None:
            query += " AND name = ?"
            args.append(name)
        return [(r[0], r[1], r[2]) for r in self._db.execute(query + " ORDER BY step, name", args)]

    def flows(self, run_id: int) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM flows WHERE run_id = ? ORDER BY step", (run_id,))
        return [{**dict(r), "profile": json.loads(r["profile"])} for r in rows]

    def checkpoint_path(self, run_id: int) -> Path:
        """Where a run's checkpoint lives: beside the store, `<store>.checkpoints/run-<id>.pt`."""
        return self.path.with_name(self.path.name + ".checkpoints") / f"run-{run_id}.pt"

    # ------------------------------------------------------------------------------------------ export, check

    def export_csv(self, path: str | Path, study: str | None = None) -> int:
        """Write one CSV row per run (config keys flattened as config.<key>); atomically. Returns the count."""
        runs = self.runs(study=study)
        config_keys = sorted({k for r in runs for k in r.config})
        columns = [
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
        ]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns + [f"config.{k}" for k in config_keys])
            for r in runs:
                values = [getattr(r, c) for c in columns]
                config = [
                    json.dumps(r.config.get(k)) if isinstance(r.config.get(k), dict) else r.config.get(k)
                    for k in config_keys
                ]
                writer.writerow(values + config)
        os.replace(tmp, path)
        return len(runs)

    def check(self) -> list[str]:
        """Integrity check: SQLite's own, then rnnlab's invariants. Returns the problems found (empty: OK)."""
        problems = [r[0] for r in self._db.execute("PRAGMA integrity_check") if r[0] != "ok"]
        bad_status = self._db.execute(
            f"SELECT id FROM runs WHERE status NOT IN ({', '.join('?' for _ in STATUSES)})", STATUSES
        ).fetchall()
        problems += [f"run {r[0]} has an unknown status" for r in bad_status]
        for r in self._db.execute(
            "SELECT id FROM runs WHERE status IN ('solved', 'completed', 'diverged') "
            "AND (steps IS NULL OR finished_at IS NULL OR metric_name IS NULL)"
        ):
            problems.append(f"run {r[0]} is marked finished but its summary is incomplete")
        for table in ("metrics", "flows"):
            for r in self._db.execute(f"SELECT DISTINCT run_id FROM {table} WHERE run_id NOT IN (SELECT id FROM runs)"):
                problems.append(f"{table} rows belong to run {r[0]}, which does not exist")
        for r in self._db.execute(
            "SELECT config_hash, study, COUNT(*) FROM runs WHERE status IN ('solved', 'completed', 'diverged') "
            "AND study IS NOT NULL GROUP BY config_hash, study HAVING COUNT(*) > 1"
        ):
            problems.append(f"study {r[1]!r} has {r[2]} finished runs of config {r[0]} (expected one)")
        return problems


SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file


def _refuse_unless_sqlite(path: Path) -> None:
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


def _insert_run(db: sqlite3.Connection, name: str, config: dict, config_hash: str, environment: dict, study) -> int:
    """Record a new run as 'running' (inside the caller's transaction); returns its id."""
    cursor = db.execute(
        "INSERT INTO runs (name, study, config_hash, config, status, created_at, environment) "
        "VALUES (?, ?, ?, ?, 'running', ?, ?)",
        (name, study, config_hash, json.dumps(config, sort_keys=True), time.time(), json.dumps(environment)),
    )
    return int(cursor.lastrowid)


def _write_result(db: sqlite3.Connection, run_id: int, result: dict[str, Any], path: Path) -> None:
    """Write a finished run's summary, metrics and flows (inside the caller's transaction)."""
    if result["status"] not in FINISHED:
        raise ValueError(f"finish_run needs a finished status {FINISHED}, got {result['status']!r}")
    metrics = [(run_id, int(step), MetricName.TRAIN_LOSS, _real(v)) for step, v in result["train_losses"]]
    for level in (MetricName.CHANCE, MetricName.BASELINE_LOSS):  # the task's memoryless levels: reports need no task
        if result.get(level) is not None:
            metrics.append((run_id, 0, level, _real(result[level])))
    per_evaluation = {
        "metric": MetricName.TEST_METRIC,
        "loss": MetricName.TEST_LOSS,
        "train_loss": MetricName.WINDOW_TRAIN_LOSS,
        "grad_norm": MetricName.WINDOW_GRAD_NORM,
        "clip_rate": MetricName.WINDOW_CLIP_RATE,
    }
    flows = []
    for e in result["evaluations"]:
        step = int(e["step"])
        if "metric" in e or not e.get("flow"):  # a trainer's evaluation has every score (a missing one is a bug)
            metrics += [(run_id, step, name, _real(e[key])) for key, name in per_evaluation.items()]
        if "train_time" in e:  # seconds of updates before this evaluation (results from rnnlab ≥ 0.2)
            metrics.append((run_id, step, MetricName.TRAIN_TIME, _real(e["train_time"])))
        if e.get("grad_norm_max") is not None:  # results from rnnlab ≥ 0.3
            metrics.append((run_id, step, MetricName.WINDOW_GRAD_NORM_MAX, _real(e["grad_norm_max"])))
        for name, value in (e.get("extras") or {}).items():  # a task's own scores, under their own names
            metrics.append((run_id, step, name, _real(value)))
        if e.get("flow"):
            f = e["flow"]
            flows.append((run_id, step, f["horizon"], f["decay_rate"], f["r2"], json.dumps(f["profile"])))
            if f.get("loss_horizon") is not None:  # results from before it was recorded have none
                metrics.append((run_id, step, MetricName.LOSS_HORIZON, _real(f["loss_horizon"])))
                metrics.append((run_id, step, MetricName.LOSS_DECAY_RATE, _real(f["loss_decay_rate"])))
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
        "environment = CASE WHEN ? IS NULL THEN environment ELSE json_set(environment, '$.parts', json(?)) END "
        "WHERE id = ?",
        (
            result["status"],
            time.time(),
            result["steps"],
            result["metric_name"],
            _real(result["final_metric"]),
            _real(result["final_loss"]),
            result["solved_at"],
            result["diverged_at"],
            result["clip_rate"],
            result["wall_time"],
            parts,
            parts,
            run_id,
        ),
    ).rowcount
    if updated != 1:
        raise StoreError(f"run {run_id} does not exist in {str(path)!r}")


def _real(value) -> float | None:
    """NaN and infinities are stored as NULL (SQLite has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if value == value and abs(value) != float("inf") else None


def _run(row: sqlite3.Row) -> Run:
    data = dict(row)
    data["config"] = json.loads(data["config"])
    data["environment"] = json.loads(data["environment"])
    return Run(**data)
