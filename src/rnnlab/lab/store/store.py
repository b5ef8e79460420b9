"""The results store: one SQLite file (stdlib `sqlite3`, WAL) holding every run, its metrics over steps and
its gradient-flow snapshots.

Every write is one transaction, so a run is either wholly recorded or not at all; a killed process leaves
at most a run marked 'running' (with a checkpoint to resume from), never a half-written result. The store
knows nothing of torch: it takes and returns plain data. The tables are in `schema.py`; a store written by
an older rnnlab is migrated once when first opened for writing (`migrations.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnlab.lab.store import export
from rnnlab.lab.store.claims import claim, claimed_elsewhere, claimed_on_other_host, release
from rnnlab.lab.store.migrations import migrate
from rnnlab.lab.store.records import FINISHED, Run, StoreError, run_from_row
from rnnlab.lab.store.schema import SCHEMA_VERSION, create, refuse_unless_sqlite, schema_version
from rnnlab.lab.store.writes import copy_outcome, insert_run, result_rows, write_result

DEFAULT_PATH = Path("runs") / "rnnlab.db"


class Store:
    """Open (or create) the store at `path`. Raises StoreError for a file that is not an rnnlab store or
    whose schema is newer than this rnnlab understands. A store of an older schema is migrated once (in one
    transaction; no stored value changes, see migrations.py) unless it is read-only here, or opened with
    `read_only` (which needs an existing store), where it is read as it is; `schema_version` says which."""

    def __init__(self, path: str | Path = DEFAULT_PATH, read_only: bool = False):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"store path {str(self.path)!r} is a folder; give a file path such as runs/rnnlab.db")
        exists = self.path.exists()
        if read_only and not (exists and self.path.stat().st_size > 0):
            raise StoreError(f"no store at {str(self.path)!r} to read")
        if exists and self.path.stat().st_size > 0:
            refuse_unless_sqlite(self.path)
        if not exists:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create the folder for store {str(self.path)!r}: {error.strerror}") from None
        # A store this process may not write (file or folder read-only) is opened for reading only: it can be
        # listed, shown, exported and reported, and any write is refused in one line, leaving the file as it is.
        # `read_only`: the caller's promise to write nothing (a dry run), kept the same way — nor is an older
        # store migrated.
        writable = os.access(self.path, os.W_OK) and os.access(self.path.parent, os.W_OK)
        self.read_only = read_only or (exists and not writable)
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
            version = schema_version(self._db)
            if version is None:
                raise StoreError(f"{str(self.path)!r} is not an rnnlab store (no schema version)")
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"store {str(self.path)!r} has schema version {version}, newer than this rnnlab's "
                    f"{SCHEMA_VERSION}; upgrade rnnlab to read it"
                )
            self.schema_version = version
            if not self.read_only:
                self._db.execute("PRAGMA journal_mode = WAL")
                if version < SCHEMA_VERSION:
                    self._migrate()
            return
        if exists and os.path.getsize(self.path) > 0 and not os.access(self.path, os.W_OK):
            raise StoreError(f"store {str(self.path)!r} is read-only")
        with self._transaction() as db:
            create(db)
        self._db.execute("PRAGMA journal_mode = WAL")
        self.schema_version = SCHEMA_VERSION

    def _migrate(self) -> None:
        """Bring an older store to this schema version; another process may have done it meanwhile."""
        with self._transaction() as db:
            version = schema_version(db)
            if version is not None and version < SCHEMA_VERSION:
                migrate(db, version)
        self.schema_version = SCHEMA_VERSION

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
            return insert_run(db, name, config, config_hash, environment, study)

    def finish_run(self, run_id: int, result: dict[str, Any]) -> None:
        """Write a finished run — summary, metrics over steps and flow snapshots — in one transaction.

        `result` is `TrainResult.to_dict()`: plain data with keys status, steps, metric_name, final_metric,
        final_loss, solved_at, diverged_at, clip_rate, wall_time, evaluations, train_losses. An evaluation
        may also be its step and flow alone (a monitor's record of a user's own loop has no test scores).
        """
        with self._transaction() as db:
            write_result(db, run_id, result, self.path)

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
            run_id = insert_run(db, name, config, config_hash, environment, study)
            write_result(db, run_id, result, self.path)
        return run_id

    def give_outcome(self, run_id: int, source_id: int) -> None:
        """Make claimed run `run_id`, which has not trained, the outcome of finished run `source_id`: the same
        config with a smaller budget that solved or diverged before that budget ran out, so that the larger run
        would repeat it update for update (the sweep decides: `rnnlab.lab.sweep.ended_early`). One transaction:
        status, summary, metrics and flows copied; its environment names the source (`same_as`) and it has no
        wall time or parts of its own, so compute totals count the training once."""
        source = self.run(source_id)
        if source.status not in ("solved", "diverged"):
            raise StoreError(f"run {source_id} {source.status}: only a run that ended early has a longer run's outcome")
        same_as = json.dumps({"run": source_id, "steps": source.config.get("steps")})
        with self._transaction() as db:
            updated = db.execute(
                "UPDATE runs SET environment = json_remove(json_set(environment, '$.same_as', json(?)), '$.parts') "
                "WHERE id = ? AND status = 'running'",
                (same_as, run_id),
            ).rowcount
            if updated != 1:
                raise StoreError(f"run {run_id} is not a claimed run in {str(self.path)!r}")
            db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            db.execute("DELETE FROM flows WHERE run_id = ?", (run_id,))
            copy_outcome(db, source_id, run_id)

    def claim_run(
        self,
        name: str,
        config: dict[str, Any],
        config_hash: str,
        environment: dict[str, Any],
        study: str | None,
        again: bool = False,
    ) -> tuple[int, str]:
        """In one write transaction (so concurrent sweeps on one store serialise here): return the finished
        run of this config in `study` ('finished'; with `again` a finished run does not count), leave one another
        live process on this machine trains ('busy': `environment["claimed_by"]` names each claimant), or re-open
        an interrupted one ('resumed') or a failed one ('resumed-failed'), or record a new one ('new'). Study None:
        among `rnnlab train`'s single runs. Returns (run id, which of these)."""
        with self._transaction() as db:
            return claim(db, name, config, config_hash, environment, study, again)

    def release_claims(self, claims: list[tuple[int, str]]) -> None:
        """Undo `claim_run` for runs no executor ever started (e.g. the executor could not start): a new run is
        deleted, a re-opened failed run is failed again, an interrupted one stays 'running'. One transaction."""
        with self._transaction() as db:
            release(db, claims)

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

    def prune_checkpoints(self, keep_completed: bool = False) -> tuple[int, int]:
        """Delete the checkpoints of finished runs and of runs no longer in the store; a 'running' run keeps its
        own (it may resume from it), and with `keep_completed` a 'completed' one too (a longer budget may
        continue it: rnnlab.lab.sweep.shorter_run). Returns (files deleted, bytes freed)."""
        folder = self.path.with_name(self.path.name + ".checkpoints")
        if not folder.is_dir():
            return 0, 0
        kept = ("running", "completed") if keep_completed else ("running",)
        marks = ", ".join("?" for _ in kept)
        keep = {
            self.checkpoint_path(r[0]).name
            for r in self._db.execute(f"SELECT id FROM runs WHERE status IN ({marks})", kept)
        }
        count = size = 0
        for path in folder.glob("run-*.pt"):
            if path.name not in keep:
                size += path.stat().st_size
                path.unlink(missing_ok=True)
                count += 1
        return count, size

    def release_untrained(self) -> int:
        """Delete the 'running' runs that never trained: no checkpoint, no part recorded, and claimed by no live
        process on this machine nor by one elsewhere (a sweep stopped between claiming its runs and training
        them leaves these; a later sweep claims them anew). One transaction, so no claim changes meanwhile.
        Returns how many."""
        with self._transaction() as db:
            rows = db.execute("SELECT id, environment FROM runs WHERE status = 'running'").fetchall()
            untrained = []
            for row in rows:
                environment = json.loads(row["environment"] or "{}")
                owner = environment.get("claimed_by") or {}
                if self.checkpoint_path(row["id"]).exists() or environment.get("parts"):
                    continue
                if claimed_on_other_host(environment) is not None:
                    continue  # its claimant cannot be seen from here
                if claimed_elsewhere(environment) is not None or owner.get("pid") == os.getpid():
                    continue  # a live claimant here, or this very process
                untrained.append(row["id"])
            for run_id in untrained:
                for table, key in (("metrics", "run_id"), ("flows", "run_id"), ("runs", "id")):
                    db.execute(f"DELETE FROM {table} WHERE {key} = ?", (run_id,))
        return len(untrained)

    # ------------------------------------------------------------------------------------------ reads

    def runs(self, study: str | None = None, status: str | None = None) -> list[Run]:
        query, args = "SELECT * FROM runs WHERE 1 = 1", []
        if study is not None:
            query += " AND study = ?"
            args.append(study)
        if status is not None:
            query += " AND status = ?"
            args.append(status)
        return [run_from_row(r) for r in self._db.execute(query + " ORDER BY id", args)]

    def run(self, run_id: int) -> Run:
        row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id} in {str(self.path)!r}")
        return run_from_row(row)

    def find(self, config_hash: str, study: str | None = None, statuses: tuple[str, ...] = FINISHED) -> Run | None:
        """The latest run with this config hash and one of these statuses, in `study` — or, with study None,
        among single runs (`rnnlab train`), never a study's run."""
        marks = ", ".join("?" for _ in statuses)
        query = f"SELECT * FROM runs WHERE config_hash = ? AND status IN ({marks}) AND study IS ?"
        args: list[Any] = [config_hash, *statuses, study]
        row = self._db.execute(query + " ORDER BY id DESC LIMIT 1", args).fetchone()
        return None if row is None else run_from_row(row)

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

    def progress(self, run_id: int) -> tuple[int, list[tuple[int, str, float | None]], list[dict[str, Any]]] | None:
        """A running run's evaluations so far, read from its checkpoint (the store has a run's metrics and flows
        only once it has finished): the update the checkpoint was written at, and rows shaped as `metrics` and
        `flows` give them. None without a readable checkpoint."""
        from rnnlab.lab.checkpoints import checkpoint_progress  # torch only when asked

        found = checkpoint_progress(self.checkpoint_path(run_id))
        if found is None:
            return None
        step, result = found
        metrics, flows = result_rows(run_id, result)
        return (
            step,
            sorted(((s, name, value) for _, s, name, value in metrics), key=lambda row: row[:2]),
            [
                {
                    "run_id": run_id,
                    "step": s,
                    "horizon": horizon,
                    "decay_rate": rate,
                    "r2": r2,
                    "profile": json.loads(p),
                }
                for _, s, horizon, rate, r2, p in flows
            ],
        )

    def checkpoint_path(self, run_id: int) -> Path:
        """Where a run's checkpoint lives: beside the store, `<store>.checkpoints/run-<id>.pt`."""
        return self.path.with_name(self.path.name + ".checkpoints") / f"run-{run_id}.pt"

    # ------------------------------------------------------------------------------------------ export, check

    def export_csv(self, path: str | Path, study: str | None = None) -> int:
        """Write one CSV row per run (the task's facts and levels beside its summary, config keys flattened as
        config.<key>); atomically. Returns the count."""
        return export.export_csv(self._db, self.runs(study=study), path)

    def check(self) -> list[str]:
        """Integrity check: SQLite's own, then rnnlab's invariants. Returns the problems found (empty: OK)."""
        return export.check(self._db)
