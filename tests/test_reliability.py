"""Faults: a full disk while checkpointing, two sweeps on one store at once, a worker killed mid-sweep,
repeated kills of a training run. Afterwards nothing finished is lost, duplicated or half-written, the store
passes its check, and resumed runs end with the results they would have had.
Run: `.venv/bin/pytest tests/test_reliability.py`.
"""

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

import rnnlab.lab.trainer as train_module
from rnnlab.lab.config import make_config
from rnnlab.lab.store import Store
from rnnlab.lab.trainer import Trainer, load_checkpoint
from tests.processes import alive, children, cmdline

TINY = {
    "task": "adding",
    "seq_len": 12,
    "hidden_size": 8,
    "steps": 60,
    "eval_every": 20,
    "batch_size": 16,
    "checkpoint_every": 10,
    "stop_when_solved": False,
}


def test_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = make_config(TINY)
    reference = Trainer(config).run()
    path = tmp_path / "c.pt"
    real_save = torch.save
    calls = {"n": 0}

    def save_until_full(obj, handle, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the third checkpoint hits a full disk after writing a few bytes
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(train_module.torch, "save", save_until_full)
    with pytest.raises(OSError, match="No space left"):
        Trainer(config, checkpoint_path=path).run()
    monkeypatch.setattr(train_module.torch, "save", real_save)
    assert load_checkpoint(path)["step"] == 20, "the last good checkpoint is intact"
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"], "no partial temporary file is left"
    resumed = Trainer(config, checkpoint_path=path).run()
    assert [e.metric for e in resumed.evaluations] == [e.metric for e in reference.evaluations]


def _study_file(tmp_path, name, seeds, steps=60):
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": name,
                "claim": "c",
                "source": "s",
                "defaults": {**TINY, "steps": steps},
                "grid": {"seed": list(seeds)},
                "variants": [{"name": "gru", "cell": "gru"}],
            }
        )
    )
    return path


def _sweep(study, store, workers=1):
    return [
        sys.executable,
        "-m",
        "rnnlab",
        "sweep",
        str(study),
        "--workers",
        str(workers),
        "--store",
        str(store),
        "--no-progress",
    ]


def test_two_sweeps_on_one_store_at_once(tmp_path):
    """Each run is recorded once and trained once: a sweep leaves the runs the other one has claimed and is
    training to it (`claimed_elsewhere`), instead of resuming them beside it."""
    study = _study_file(tmp_path, "shared", range(4))
    store = tmp_path / "s.db"
    first = subprocess.Popen(_sweep(study, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(_sweep(study, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    trained = 0
    for process in (first, second):
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        trained += int(re.search(r"(\d+) run\(s\) trained", out).group(1))
    assert trained == 4, "the two sweeps trained 4 runs between them, none twice"
    runs = Store(store).runs(study="shared")
    assert len(runs) == 4 and all(r.status == "completed" for r in runs)
    assert len({r.config_hash for r in runs}) == 4, "no run recorded twice"
    assert not any("claimed_by" in r.environment for r in runs), "a finished run is nobody's claim"
    assert Store(store).check() == []


def test_a_killed_worker_is_replaced_and_its_run_resumes(tmp_path):
    study = _study_file(tmp_path, "workerkill", range(3), steps=150)
    store = tmp_path / "s.db"
    driver = subprocess.Popen(
        _sweep(study, store, workers=2), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    checkpoints = tmp_path / "s.db.checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline and not (checkpoints.exists() and any(checkpoints.iterdir())):
        time.sleep(0.05)
    workers = [p for p in children(driver.pid) if "spawn_main" in cmdline(p) and "resource_tracker" not in cmdline(p)]
    assert workers, "the sweep has worker processes"
    os.kill(workers[0], signal.SIGKILL)
    _, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err
    runs = Store(store).runs(study="workerkill")
    assert len(runs) == 3 and all(r.status == "completed" for r in runs), [(r.name, r.status, r.error) for r in runs]
    assert Store(store).check() == []
    # The interrupted run ended with the same result as an uninterrupted one.
    for run in runs:
        expected = Trainer(make_config({**run.config, "name": run.name})).run()
        assert run.final_metric == pytest.approx(expected.final_metric, rel=0, abs=0)


@pytest.mark.parametrize("stop", ["ctrl-c", "kill"])
def test_ctrl_c_or_kill_stops_a_sweep_promptly_and_leaves_the_rest_resumable(tmp_path, stop):
    """A few seconds into a sweep of runs that would take minutes, either SIGINT to the whole process group
    (what Ctrl-C in a terminal sends) or SIGTERM to the driver alone (`kill`, the way to stop a sweep started
    with `nohup … &`): the sweep exits within seconds, says what it kept and how to resume."""
    study = _study_file(tmp_path, "ctrlc", range(4), steps=100_000)
    store = tmp_path / "s.db"
    # A terminal's foreground job receives Ctrl-C; a job started in the background by a non-interactive shell
    # (`nohup rnnlab sweep … &`) inherits SIGINT ignored, so Ctrl-C never reaches it: `kill` must stop it.
    handler = "signal.default_int_handler" if stop == "ctrl-c" else "signal.SIG_IGN"
    start = f"import signal, runpy, sys; signal.signal(signal.SIGINT, {handler}); "
    start += "sys.argv[0] = 'rnnlab'; runpy.run_module('rnnlab', run_name='__main__')"
    driver = subprocess.Popen(
        [sys.executable, "-c", start, *_sweep(study, store, workers=2)[3:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a shell job
    )
    try:
        checkpoints = tmp_path / "s.db.checkpoints"
        deadline = time.time() + 120
        # Two runs' own checkpoints, not one and a half-written '.run-1.pt.….tmp' beside it.
        while time.time() < deadline and len(list(checkpoints.glob("run-*.pt"))) < 2:
            time.sleep(0.05)
        workers = [
            p for p in children(driver.pid) if "spawn_main" in cmdline(p) and "resource_tracker" not in cmdline(p)
        ]
        assert len(workers) == 2
        if stop == "ctrl-c":
            os.killpg(driver.pid, signal.SIGINT)
        else:
            os.kill(driver.pid, signal.SIGTERM)
        interrupted = time.time()
        _, err = driver.communicate(timeout=60)
    finally:  # a failure must not leave a sweep training in the background
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.communicate()
    assert time.time() - interrupted < 15, "stopped promptly"
    assert driver.returncode == 130
    assert "rnnlab: interrupted: 0 run(s) of this sweep finished" in err and "run the same command again" in err
    assert "2 left unfinished" in err and "and 2 not started" in err, err
    assert err.count("\n") == 1, err
    runs = Store(store).runs(study="ctrlc")
    assert len(runs) == 2 and all(r.status == "running" for r in runs), "resumable, nothing marked finished"
    assert all(Store(store).checkpoint_path(r.id).exists() for r in runs), "the two it started; the others handed back"
    assert Store(store).check() == []
    time.sleep(1)
    assert not any(alive(p) for p in workers), "no worker left behind"


def _as_nobody(action, stderr: Path) -> int:
    """Run `action()` in a forked child with uid/gid 65534 (tests run as root, which no permission stops), its
    stderr going to `stderr`; the child's exit status is action's return value. Everything it needs must be
    imported before the fork."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 99
        try:
            sys.stderr = open(stderr, "w", buffering=1)  # noqa: SIM115 - as root, before dropping privileges
            os.setgid(65534)
            os.setuid(65534)
            status = action()
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges to another user needs root")
def test_a_read_only_store_can_be_read_refuses_writes_in_one_line_and_is_not_modified(tmp_path):
    import hashlib
    import tempfile

    import rnnlab.cli.runs
    import rnnlab.cli.train  # noqa: F401 - imported before the fork: the child may not read this checkout
    from rnnlab.cli import main

    folder = Path(tempfile.mkdtemp(prefix="rnnlab-readonly-", dir="/tmp"))  # pytest's tmp_path is root-only
    try:
        folder.chmod(0o755)
        path = folder / "s.db"
        train = ["train", "--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "4", "--no-progress"]
        assert main([*train, "--store", str(path)]) == 0
        path.chmod(0o444)
        folder.chmod(0o555)
        before = hashlib.sha256(path.read_bytes()).hexdigest()
        err = tmp_path / "err.txt"

        def read_then_write() -> int:
            listed = main(["runs", "list", "--store", str(path)])
            written = main([*train, "--seed", "7", "--store", str(path)])
            return 10 * listed + written

        assert _as_nobody(read_then_write, err) == 2, "runs list exits 0, train exits 2"
        message = err.read_text()
        assert message.count("\n") == 1 and "is read-only here: nothing can be written to it" in message
        assert hashlib.sha256(path.read_bytes()).hexdigest() == before, "the store is unchanged"
        assert sorted(p.name for p in folder.iterdir()) == ["s.db", "s.db.checkpoints"], "no -wal or -shm left"
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


def _kill_loop(tmp_path, kills: int, seed: int, steps: int = 400) -> dict:
    """Sweep studies of 3 runs with 2 workers, killing (SIGKILL) the driver or one of its workers at random
    moments, starting the same sweep again after a driver kill, until `kills` kills have landed — a study that
    finishes first is checked and the next one started. Each study must end complete, consistent and
    bit-identical to uninterrupted runs. Returns the kills by kind."""
    import random

    rng = random.Random(seed)
    landed = {"driver": 0, "worker": 0}
    for round_ in range(kills + 1):
        if sum(landed.values()) >= kills:
            break
        study = _study_file(tmp_path, f"killloop{round_}", range(3 * round_, 3 * round_ + 3), steps=steps)
        store = tmp_path / f"s{round_}.db"
        _kill_one_study(rng, study, store, landed, kills)
        _check_against_uninterrupted(store, f"killloop{round_}")
    return landed


def _kill_one_study(rng, study, store, landed: dict, kills: int) -> None:
    driver, worker_kills = None, 0
    while sum(landed.values()) < kills:
        if driver is None:
            driver = subprocess.Popen(
                _sweep(study, store, workers=2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            worker_kills = 0
        time.sleep(rng.uniform(1.5, 6.0))  # spawn + import take ~1.5 s; the kill then falls during training,
        # checkpoint writes or store commits
        workers = [
            p for p in children(driver.pid) if "spawn_main" in cmdline(p) and "resource_tracker" not in cmdline(p)
        ]
        if driver.poll() is not None:
            assert driver.returncode == 0
            return  # the study finished before this kill
        # A driver replaces a dead worker's pool at most 3 times (a run that kills its worker every time must
        # end as failed, not loop forever): after that, the driver is the one killed.
        target = rng.choice(["driver", "worker"]) if workers and worker_kills < 3 else "driver"
        os.kill(driver.pid if target == "driver" else rng.choice(workers), signal.SIGKILL)
        landed[target] += 1
        if target == "worker":
            worker_kills += 1
            continue
        driver.wait(timeout=60)
        driver = None
        deadline = time.time() + 120  # a worker still importing torch on a loaded machine checks only after
        while any(alive(p) for p in workers) and time.time() < deadline:
            time.sleep(0.1)  # orphaned workers exit once they see the driver gone
        assert not any(alive(p) for p in workers), "orphaned workers exited"
    if driver is not None:
        assert driver.wait(timeout=600) == 0, "the driver replaced the killed workers and finished"
    final = subprocess.run(_sweep(study, store, workers=2), capture_output=True, text=True, timeout=600, check=False)
    assert final.returncode == 0, final.stderr


def _check_against_uninterrupted(store, study: str) -> None:
    runs = Store(store).runs(study=study)
    assert len(runs) == 3 and all(r.status == "completed" for r in runs), [(r.name, r.status) for r in runs]
    assert Store(store).check() == [], "nothing lost, duplicated or half-written"
    for run in runs:  # and the results are those of uninterrupted runs, bit for bit
        expected = Trainer(make_config({**run.config, "name": run.name})).run()
        assert run.final_metric == expected.final_metric and run.final_loss == expected.final_loss


def test_kills_at_random_moments_of_a_sweep_lose_nothing(tmp_path):
    landed = _kill_loop(tmp_path, kills=3, seed=1)
    assert sum(landed.values()) >= 1


@pytest.mark.slow
def test_twenty_four_kills_of_drivers_and_workers_lose_nothing(tmp_path):
    landed = _kill_loop(tmp_path, kills=24, seed=2, steps=3000)
    assert sum(landed.values()) == 24 and min(landed.values()) >= 6, landed


def test_two_sweep_drivers_and_a_report_on_one_store_at_once(tmp_path):
    study = _study_file(tmp_path, "together", range(4), steps=120)
    store = tmp_path / "s.db"
    drivers = [
        subprocess.Popen(_sweep(study, store), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    reports = 0
    while any(d.poll() is None for d in drivers):  # report repeatedly while both drivers write
        if store.exists():
            done = subprocess.run(
                [sys.executable, "-m", "rnnlab", "report", "together", "--store", str(store), "--out",
                 str(tmp_path / "report")],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert done.returncode == 0 or "no study 'together'" in done.stderr, done.stderr
            reports += done.returncode == 0
    for driver in drivers:
        _, err = driver.communicate(timeout=300)
        assert driver.returncode == 0, err
    runs = Store(store).runs(study="together")
    assert len(runs) == 4 and all(r.status == "completed" for r in runs)
    assert Store(store).check() == []
    assert reports >= 1, "at least one report was written while the sweeps ran"
