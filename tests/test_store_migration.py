"""A store written by an older rnnlab (tests/data/store-v1.db, schema version 1, made by
tests/data/make_store_v1.py at commit 9df0ed2) is migrated once when opened: every stored value kept, the
task's facts and missing memoryless levels computed from each run's config; it then reports and resumes.
Run: `.venv/bin/pytest tests/test_store_migration.py`.
"""

import shutil
import sqlite3
from pathlib import Path

import pytest

from rnnlab.lab.store import SCHEMA_VERSION, Store, StoreError
from rnnlab.lab.study import make_study
from rnnlab.lab.sweep import run_study
from rnnlab.report.html import build_report
from tests.data.make_store_v1 import OLD

FIXTURE = Path(__file__).parent / "data" / "store-v1.db"


@pytest.fixture
def old_store(tmp_path) -> Path:
    """A copy of the version-1 store and its checkpoint folder (opening migrates the file in place)."""
    path = tmp_path / "store.db"
    shutil.copyfile(FIXTURE, path)
    shutil.copytree(FIXTURE.with_name(FIXTURE.name + ".checkpoints"), tmp_path / "store.db.checkpoints")
    return path


def _raw(path: Path) -> tuple[list[tuple], list[tuple], list[tuple]]:
    with sqlite3.connect(path) as db:
        return (
            db.execute("SELECT * FROM runs ORDER BY id").fetchall(),
            db.execute("SELECT * FROM metrics ORDER BY run_id, step, name").fetchall(),
            db.execute("SELECT * FROM flows ORDER BY run_id, step").fetchall(),
        )


def test_the_fixture_is_a_version_1_store():
    with sqlite3.connect(f"file:{FIXTURE}?mode=ro", uri=True) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)
        columns = [row[1] for row in db.execute("PRAGMA table_info(runs)")]
    assert "higher_is_better" not in columns and SCHEMA_VERSION == 2


def test_an_old_store_is_migrated_once_keeping_every_stored_value(old_store):
    runs_before, metrics_before, flows_before = _raw(old_store)
    with Store(old_store) as store:
        assert store.schema_version == SCHEMA_VERSION
        runs = {r.name: r for r in store.runs()}
        levels = {r.name: (store.metrics(r.id, "chance"), store.metrics(r.id, "baseline_loss")) for r in runs.values()}
        assert store.check() == []
    runs_after, metrics_after, flows_after = _raw(old_store)
    assert [row[: len(runs_before[0])] for row in runs_after] == runs_before, "every stored column unchanged"
    assert flows_after == flows_before
    added = sorted(set(metrics_after) - set(metrics_before))
    assert set(metrics_before) <= set(metrics_after)
    gru = runs["GRU"].id
    assert added == [(gru, 0, "baseline_loss", pytest.approx(1 / 6)), (gru, 0, "chance", pytest.approx(1 / 6))]
    # The facts, from each run's config: the adding task (MSE, lower is better, solved below 0.01) ...
    for name in ("GRU", "tanh", "LSTM"):
        assert (runs[name].higher_is_better, runs[name].solved_threshold, runs[name].stream_task) == (
            False,
            0.01,
            False,
        )
    # ... and the text stream (bits per character, no success criterion); its level as stored at finish.
    assert (runs["k=5"].higher_is_better, runs["k=5"].solved_threshold, runs["k=5"].stream_task) == (False, None, True)
    assert levels["k=5"][0] == [(0, "chance", pytest.approx(4.259175499207064))]
    # Once: a second opening finds version 2 and computes nothing again.
    with sqlite3.connect(old_store) as db:
        db.execute("UPDATE runs SET solved_threshold = NULL WHERE name = 'GRU'")
    with Store(old_store) as store:
        assert store.run(gru).solved_threshold is None


def test_an_old_store_reports_with_its_unfinished_run_and_resumes_it(old_store, tmp_path):
    with Store(old_store) as store:
        page = build_report(store, "old", tmp_path / "report").html.read_text()
        assert "Success criterion: test mse &lt; 0.01" in page
        assert "1 of 3 runs are not finished" in page and "LSTM: unfinished" in page
        assert f"rnnlab sweep old --store {old_store}" in page
        summary = run_study(make_study(OLD), store, workers=1, progress=False)
        assert summary.failed == 0
        lstm = next(r for r in store.runs(study="old") if r.name == "LSTM")
        assert (lstm.status, lstm.steps, lstm.solved_threshold) == ("completed", 20, 0.01)
        parts = [(p["from_step"], p["to_step"]) for p in lstm.environment["parts"]]
        assert parts == [(0, 10), (10, 20)], "resumed from its checkpoint at update 10, not trained again"
        page = build_report(store, "old", tmp_path / "report").html.read_text()
    assert "not finished" not in page and "Ran in parts" in page and "1 run resumed from its checkpoint" in page


def test_an_old_store_that_is_read_only_here_is_read_as_it_is(old_store, tmp_path, monkeypatch):
    """Not writable (simulated: this test may run as root, for whom every file is writable): no migration,
    the file unchanged, the facts unknown, and the report still renders from what the store holds."""
    import hashlib
    import os

    import rnnlab.lab.store.store as store_module

    real_access = os.access
    monkeypatch.setattr(store_module.os, "access", lambda path, mode: mode != os.W_OK and real_access(path, mode))
    before = hashlib.sha256(old_store.read_bytes()).hexdigest()
    with Store(old_store) as store:
        assert store.read_only and store.schema_version == 1
        assert {r.higher_is_better for r in store.runs()} == {None}
        page = build_report(store, "old", tmp_path / "report").html.read_text()
    assert "Exploding or vanishing?" in page and "LSTM: unfinished" in page
    assert hashlib.sha256(old_store.read_bytes()).hexdigest() == before


def test_a_dry_run_on_an_old_store_migrates_nothing_and_an_empty_file_stays_empty(old_store, tmp_path, capsys):
    """`rnnlab sweep --dry-run` opens the store read-only: an old store is planned from as it is (its file
    byte for byte unchanged), and an empty file is not given tables."""
    import hashlib

    import yaml

    from rnnlab.cli import main

    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(OLD))
    before = hashlib.sha256(old_store.read_bytes()).hexdigest()
    assert main(["sweep", str(path), "--store", str(old_store), "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "skip: completed" in out and "resume from its checkpoint at update 10" in out
    assert hashlib.sha256(old_store.read_bytes()).hexdigest() == before, "not migrated"
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["sweep", str(path), "--store", str(empty), "--dry-run"]) == 0
    assert empty.stat().st_size == 0
    with pytest.raises(StoreError, match="no store at"):
        Store(empty, read_only=True)
