"""Claims: which runs a sweep (or `rnnlab train`) takes on, decided in one write transaction each, so that
concurrent sweeps and trainings on one store serialise here and every run is trained exactly once."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from typing import Any

from rnnlab.lab.store.records import FINISHED
from rnnlab.lab.store.writes import insert_run


def claim(
    db: sqlite3.Connection,
    name: str,
    config: dict[str, Any],
    config_hash: str,
    environment: dict[str, Any],
    study: str | None,
    again: bool = False,
) -> tuple[int, str]:
    """Return the finished run of this config in `study` (None: among `rnnlab train`'s single runs) ('finished';
    with `again`, a finished run does not count), leave one that another live process on this machine has claimed
    ('busy'), or re-open an interrupted one ('resumed') or a failed one ('resumed-failed'), or record a new one
    ('new'): (run id, which of these). The claimant (`environment["claimed_by"]`, `claimant()`) is written with
    the claim."""
    rows = db.execute(
        "SELECT id, status, environment FROM runs WHERE config_hash = ? AND study IS ? ORDER BY id DESC",
        (config_hash, study),
    ).fetchall()
    finished = [row for row in rows if row["status"] in FINISHED]
    if finished and not again:
        return int(finished[0]["id"]), "finished"
    left = [row for row in rows if row["status"] not in FINISHED]
    if left:
        run_id, status = int(left[0]["id"]), left[0]["status"]
        if status == "running" and claimed_elsewhere(json.loads(left[0]["environment"] or "{}")) is not None:
            return run_id, "busy"
        db.execute(
            "UPDATE runs SET status = 'running', finished_at = NULL, error = NULL, "
            "environment = json_set(environment, '$.claimed_by', json(?)) WHERE id = ?",
            (json.dumps(environment.get("claimed_by")), run_id),
        )
        return run_id, "resumed" if status == "running" else "resumed-failed"
    return insert_run(db, name, config, config_hash, environment, study), "new"


def claimant() -> dict[str, Any]:
    """This process as a claim names it: its host, pid and the pid's start time (so that a process that later
    gets the same pid is not taken for it)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": process_start(os.getpid())}


def claimed_elsewhere(environment: dict[str, Any]) -> dict[str, Any] | None:
    """The claimant of a 'running' run when it is another process on this machine and still alive (a sweep or
    `rnnlab train` training it now), else None: it has ended (killed, crashed), so the run is free to resume. A
    claimant on another machine cannot be seen from here and counts as ended (`claimed_on_other_host`)."""
    owner = environment.get("claimed_by")
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname() or owner.get("pid") == os.getpid():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None
    started = process_start(pid)
    if started is not None and owner.get("started") is not None and started != owner["started"]:
        return None  # the pid now belongs to another process
    return owner


def claimed_on_other_host(environment: dict[str, Any]) -> str | None:
    """The host of a run's claimant when that is another machine (whose processes cannot be seen from here), else
    None (a claim made on this machine, or none)."""
    owner = environment.get("claimed_by")
    host = owner.get("host") if isinstance(owner, dict) else None
    return host if host not in (None, socket.gethostname()) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, alive
    return True


def process_start(pid: int) -> int | None:
    """When the process started (clock ticks after boot: /proc/<pid>/stat's 22nd field); None where /proc has no
    such file (another OS, or the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces: field 3 onwards
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None


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
