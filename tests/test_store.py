"""The SQLite results store: round trip, one transaction per write, schema version, foreign files, check.
Run: `.venv/bin/pytest tests/test_store.py`.
"""

import csv
import sqlite3

import pytest

from rnnlab.lab.store import SCHEMA_VERSION, Store, StoreError

RESULT = {
    "status": "solved",
    "steps": 500,
    "metric_name": "mse",
    "final_metric": 0.004,
    "final_loss": 0.004,
    "solved_at": 500,
    "diverged_at": None,
    "clip_rate": 0.25,
    "wall_time": 12.5,
    "train_losses": [(50, 0.3), (100, float("nan"))],
    "evaluations": [
        {
            "step": 250,
            "metric": 0.1,
            "loss": 0.1,
            "train_loss": 0.2,
            "grad_norm": 1.5,
            "clip_rate": 0.5,
            "flow": {"step": 250, "horizon": 12, "decay_rate": 0.6, "r2": 0.99, "profile": [1.0, 0.6, 0.36]},
        },
        {
            "step": 500,
            "metric": 0.004,
            "loss": 0.004,
            "train_loss": 0.01,
            "grad_norm": 0.5,
            "clip_rate": 0.0,
            "flow": None,
        },
    ],
}


def test_round_trip(tmp_path):
    with Store(tmp_path / "s.db") as store:
        run_id = store.start_run("lstm", {"task": "adding", "seq_len": 100}, "abc", {"torch": "x"})
        assert store.run(run_id).status == "running"
        store.finish_run(run_id, RESULT)
    with Store(tmp_path / "s.db") as store:  # reopened: everything is there
        run = store.run(run_id)
        assert (run.status, run.steps, run.final_metric, run.clip_rate) == ("solved", 500, 0.004, 0.25)
        assert run.config == {"task": "adding", "seq_len": 100}
        assert store.metrics(run_id, "train_loss") == [(50, "train_loss", 0.3), (100, "train_loss", None)]
        assert store.metrics(run_id, "test_metric") == [(250, "test_metric", 0.1), (500, "test_metric", 0.004)]
        assert store.flows(run_id)[0]["profile"] == [1.0, 0.6, 0.36]
        assert store.find("abc").id == run_id and store.find("abd") is None
        assert store.find("abc", study="other") is None, "a single run is not a study's run"
        assert store.check() == []
        with sqlite3.connect(tmp_path / "s.db") as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("x", {}, "h", {})
    bad = dict(RESULT, evaluations=[*RESULT["evaluations"], {"step": 750}])  # malformed: missing keys
    with pytest.raises(KeyError):
        store.finish_run(run_id, bad)
    assert store.metrics(run_id) == [] and store.flows(run_id) == []
    assert store.run(run_id).status == "running"


def test_export_csv(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id = store.start_run("a,b", {"task": "adding", "init_options": {"t_max": 5}}, "h", {})
    store.finish_run(run_id, RESULT)
    assert store.export_csv(tmp_path / "out" / "runs.csv") == 1
    lines = (tmp_path / "out" / "runs.csv").read_text().splitlines()
    assert lines[0].startswith("id,name,study,status") and "config.task" in lines[0]
    assert '"a,b"' in lines[1] and "solved" in lines[1]


def test_export_csv_gives_the_loss_horizon_at_the_first_and_last_evaluation(tmp_path):
    store = Store(tmp_path / "s.db")
    flows = [(0, 7.0), (250, None), (500, 31.0)]  # the middle evaluation has no snapshot
    evaluations = [
        {**RESULT["evaluations"][0], "step": step, "flow": None}
        if horizon is None
        else {
            **RESULT["evaluations"][0],
            "step": step,
            "flow": {**RESULT["evaluations"][0]["flow"], "step": step, "loss_horizon": horizon, "loss_decay_rate": 0.5},
        }
        for step, horizon in flows
    ]
    with_flows = store.start_run("flows", {"task": "adding"}, "h1", {})
    store.finish_run(with_flows, dict(RESULT, evaluations=evaluations))
    without = store.start_run("old", {"task": "adding"}, "h2", {})
    store.finish_run(without, RESULT)  # recorded before the loss horizon existed
    store.export_csv(tmp_path / "runs.csv")
    rows = list(csv.DictReader((tmp_path / "runs.csv").read_text().splitlines()))
    assert [(r["name"], r["horizon_first"], r["horizon_last"]) for r in rows] == [
        ("flows", "7.0", "31.0"),
        ("old", "", ""),
    ]


def test_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "s.db"
    Store(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    before = path.read_bytes()
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this rnnlab's"):
        Store(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("kind", ["other_sqlite", "garbage"])
def test_foreign_files_are_refused(tmp_path, kind):
    path = tmp_path / "s.db"
    if kind == "other_sqlite":
        with sqlite3.connect(path) as raw:
            raw.execute("CREATE TABLE customers (id INTEGER)")
    else:
        path.write_bytes(b"this is not a database at all" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not an rnnlab store"):
        Store(path)
    assert path.read_bytes() == before


def test_folder_path_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        Store(tmp_path)


def test_check_finds_orphans_and_incomplete_runs(tmp_path):
    store = Store(tmp_path / "s.db")
    store.start_run("x", {}, "h", {})
    with sqlite3.connect(tmp_path / "s.db") as raw:
        raw.execute("INSERT INTO metrics VALUES (99, 1, 'train_loss', 0.5)")
        raw.execute("UPDATE runs SET status = 'solved'")
    problems = store.check()
    assert any("run 99, which does not exist" in p for p in problems)
    assert any("summary is incomplete" in p for p in problems)


@pytest.mark.parametrize("content", [b"x", b"my notes\n", b"SQLite format 2\x00" + b"\x00" * 200])
def test_an_existing_file_that_is_not_a_store_is_refused_untouched(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(StoreError, match=r"is not an rnnlab store \(not an SQLite database\); it was left untouched"):
        Store(path)
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"], "no journal or WAL file left beside it"


def test_the_cli_refuses_a_text_file_as_store_in_one_line(tmp_path, capsys):
    from rnnlab.cli import main

    path = tmp_path / "notes.txt"
    path.write_text("x")
    assert main(["runs", "list", "--store", str(path)]) == 2
    assert "not an rnnlab store" in capsys.readouterr().err
    assert path.read_text() == "x"


def test_record_run_writes_a_finished_run_in_one_transaction(tmp_path):
    store = Store(tmp_path / "s.db")
    run_id = store.record_run("done elsewhere", {"task": "adding"}, "h", {}, RESULT)
    assert store.run(run_id).status == RESULT["status"] and store.flows(run_id)
    with pytest.raises(ValueError, match="finished status"):
        store.record_run("half", {}, "h2", {}, dict(RESULT, status="running"))
    assert [r.id for r in store.runs()] == [run_id], "the refused run left no row behind"


def test_prune_releases_the_claimed_runs_that_never_trained_and_only_those(tmp_path, capsys):
    """A sweep stopped between claiming its runs and training them leaves 'running' runs with nothing in them;
    `runs prune` deletes those, but not a run with a checkpoint, one a live process here claims (this one
    included: `Store.release_untrained` called beside its own sweep), one claimed on another machine, nor a
    finished one."""
    import os
    import subprocess
    import sys

    from rnnlab.cli import main
    from rnnlab.lab.store.claims import claimant, process_start

    store = Store(tmp_path / "s.db")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = {**claimant(), "pid": other.pid, "started": process_start(other.pid)}
        gone = {**claimant(), "pid": 2**22 + 1, "started": 1}  # no such process
        claims = {
            "untrained": {"claimed_by": gone},
            "untrained, no claim": {},
            "checkpointed": {"claimed_by": gone},
            "live here": {"claimed_by": live},
            "this process": {"claimed_by": claimant()},
            "elsewhere": {"claimed_by": {**gone, "host": "another-machine"}},
            "finished": {},
        }
        ids = {name: store.start_run(name, {"steps": 4}, name, env) for name, env in claims.items()}
        store.checkpoint_path(ids["checkpointed"]).parent.mkdir(exist_ok=True)
        store.checkpoint_path(ids["checkpointed"]).write_bytes(b"a checkpoint")
        with sqlite3.connect(tmp_path / "s.db") as db:
            db.execute("UPDATE runs SET status = 'completed' WHERE id = ?", (ids["finished"],))
        store.close()
        assert main(["runs", "prune", "--store", str(tmp_path / "s.db")]) == 0
        assert "Released 2 claimed run(s) that never trained" in capsys.readouterr().out
        left = {r.name for r in Store(tmp_path / "s.db").runs()}
        assert left == {"checkpointed", "live here", "this process", "elsewhere", "finished"}
        assert os.path.exists(Store(tmp_path / "s.db").checkpoint_path(ids["checkpointed"]))
    finally:
        other.kill()
        other.wait()
