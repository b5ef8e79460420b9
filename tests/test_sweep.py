"""Studies and sweeps: bundled studies validate, local and Ray executors, resume after SIGKILL of the driver,
failures recorded. Run: `.venv/bin/pytest tests/test_sweep.py`.
"""

import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rnnlab.lab.config import ConfigError
from rnnlab.lab.store import Store
from rnnlab.lab.study import bundled_studies, load_study, make_study
from rnnlab.lab.sweep import ExecutorUnavailable, plan, run_study
from tests.processes import alive, children, kill_trees, processes_where

TINY = {
    "task": "adding",
    "seq_len": 12,
    "hidden_size": 8,
    "steps": 30,
    "eval_every": 10,
    "batch_size": 16,
    "stop_when_solved": False,
}


def _study(name="tiny", seeds=(0, 1), variants=None):
    return make_study(
        {
            "name": name,
            "claim": "c",
            "source": "s",
            "defaults": TINY,
            "grid": {"seed": list(seeds)},
            "variants": variants or [{"name": "gru", "cell": "gru"}, {"name": "tanh", "cell": "rnn_tanh"}],
        }
    )


def test_every_bundled_study_validates():
    names = set(bundled_studies())
    assert {"vanishing", "truncation", "demo", "adding-t100", "copy-lengths", "temporal-order-clipping"} <= names
    for name in names:
        study = load_study(name)
        assert study.runs and study.claim and study.source, name
        assert len({r.name for r in study.runs}) == len(study.runs)


def test_grid_times_variants_and_names():
    study = _study(seeds=(0, 1, 2))
    assert len(study.runs) == 6
    assert study.runs[0].name == "gru · seed=0" and study.runs[-1].name == "tanh · seed=2"


def test_a_study_ordered_by_seeds_runs_every_variant_at_seed_0_first(tmp_path):
    data = {"name": "tiny", "claim": "c", "source": "s", "defaults": TINY, "grid": {"seed": [0, 1]}, "order": "seeds"}
    data["variants"] = [{"name": "gru", "cell": "gru"}, {"name": "tanh", "cell": "rnn_tanh"}]
    names = [r.name for r in make_study(data).runs]
    assert names == ["gru · seed=0", "tanh · seed=0", "gru · seed=1", "tanh · seed=1"]
    _, jobs = plan(make_study(data), Store(tmp_path / "s.db"))
    assert [j.name for j in jobs] == names, "claimed and run in that order"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "defualts": {}}, "unknown key 'defualts'"),
        ({"name": "../etc", "defaults": TINY}, "study name '../etc' is not allowed"),
        ({"name": "/abs", "defaults": TINY}, "is not allowed"),
        ({"name": "x", "defaults": TINY, "grid": {"seq_len": 5}}, "'grid' must map config keys to non-empty lists"),
        ({"name": "x", "defaults": {**TINY, "cell": "lstn"}}, "run 'x': unknown cell 'lstn'"),
        (
            {"name": "x", "defaults": TINY, "variants": [{"name": "a"}, {"name": "a", "seed": 1}]},
            "two runs are named 'a'",
        ),
        ({"name": "x", "defaults": TINY, "variants": [{"name": "a"}, {"name": "b"}]}, "same config as another run"),
        ({"name": "x", "defaults": TINY, "order": "random"}, "unknown order 'random'; choose from: variants, seeds"),
    ],
)
def test_bad_studies_are_one_line_errors(data, message):
    with pytest.raises(ConfigError) as info:
        make_study(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_local_sweep_stores_each_run_once_and_skips_on_rerun(tmp_path):
    store = Store(tmp_path / "s.db")
    study = _study()
    summary = run_study(study, store, workers=2, progress=False)
    assert (summary.ran, summary.skipped, summary.failed) == (4, 0, 0)
    runs = store.runs(study="tiny")
    assert len(runs) == 4 and all(r.status == "completed" for r in runs)
    again = run_study(study, store, workers=2, progress=False)
    assert (again.ran, again.skipped) == (0, 4)
    assert len(store.runs(study="tiny")) == 4
    assert store.check() == []
    assert store.study("tiny")["claim"] == "c"


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    store = Store(tmp_path / "s.db")
    study = _study(seeds=(0,))
    # A checkpoint that cannot be read makes the first run fail in its worker; the other run is unaffected.
    from rnnlab.lab.sweep import plan

    _, jobs = plan(study, store)
    (tmp_path / "s.db.checkpoints").mkdir()
    (tmp_path / "s.db.checkpoints" / f"run-{jobs[0].run_id}.pt").write_bytes(b"garbage")
    summary = run_study(study, store, workers=1, progress=False)
    assert (summary.ran, summary.failed) == (1, 1)
    failed = store.runs(study="tiny", status="failed")
    assert len(failed) == 1 and "unreadable" in failed[0].error


def test_a_part_of_a_study_runs_alone_and_the_rest_skips_it_later(tmp_path):
    from rnnlab.lab.study import select_runs

    store = Store(tmp_path / "s.db")
    study = _study(seeds=(0, 1))
    part = select_runs(study, {"seed": ["0"], "variant": ["gru", "tanh"]})
    assert [r.name for r in part.runs] == ["gru · seed=0", "tanh · seed=0"] and part.name == study.name
    assert run_study(part, store, workers=1, progress=False).ran == 2
    rest = run_study(study, store, workers=1, progress=False)
    assert (rest.ran, rest.skipped) == (2, 2), "the part's runs are the study's own (same hashes, same study)"
    assert [r.name for r in select_runs(study, {"variant": ["tanh"]}).runs] == ["tanh · seed=0", "tanh · seed=1"]
    assert len(select_runs(study, {"lr": ["1e-3"]}).runs) == 4, "1e-3 on a command line is the config's 0.001"


def test_a_variant_whose_name_has_commas_is_selected_whole():
    from rnnlab.lab.study import select_runs

    study = _study(
        seeds=(0,), variants=[{"name": "gru, wide", "cell": "gru"}, {"name": "gru", "cell": "gru", "lr": 0.01}]
    )
    assert [r.name for r in select_runs(study, {"variant": ["gru, wide"]}).runs] == ["gru, wide"]
    assert len(select_runs(study, {"variant": ["gru, wide,gru"]}).runs) == 2, "the longest join that names a variant"
    assert [r.name for r in select_runs(study, {"variant": ["gru"]}).runs] == ["gru"]
    with pytest.raises(ConfigError, match=re.escape("no run has variant=wide; its runs have variant gru, gru, wide")):
        select_runs(study, {"variant": ["gru,wide"]})


@pytest.mark.parametrize(
    ("only", "message"),
    [
        ({"sede": ["0"]}, "unknown key 'sede' to select runs by; did you mean 'seed'?"),
        ({"seed": ["0", "7"]}, "no run has seed=7; its runs have seed 0, 1"),
        ({"seed": ["0,7"]}, "no run has seed=7; its runs have seed 0, 1"),
        ({"seed": [" , "]}, "no value given for seed; write seed=VALUE[,VALUE…]"),
        ({"variant": ["lstm"]}, "no run has variant=lstm; its runs have variant gru, tanh"),
        ({"task_options": ["{symbols: 3}"]}, "no run has task_options={symbols: 3}; its runs have task_options {}"),
    ],
)
def test_selecting_runs_that_do_not_exist_is_a_one_line_error(only, message):
    from rnnlab.lab.study import select_runs

    with pytest.raises(ConfigError, match=re.escape(message)):
        select_runs(_study(), only)


def _study_file(tmp_path) -> Path:
    """A two-run study file (one GRU variant, seeds 0 and 1) for the command-line tests."""
    data = {"name": "tiny", "claim": "c", "source": "s", "defaults": TINY, "grid": {"seed": [0, 1]}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**data, "variants": [{"name": "gru", "cell": "gru"}]}))
    return path


def test_sweep_only_on_the_command_line(tmp_path, capsys):
    from rnnlab.cli import main

    path = _study_file(tmp_path)
    store = str(tmp_path / "s.db")
    assert main(["sweep", str(path), "--store", store, "--only", "seed=1", "--no-progress"]) == 0
    assert "1 of its 2 runs (seed=1)" in capsys.readouterr().out
    assert [r.name for r in Store(store).runs(study="tiny")] == ["gru · seed=1"]
    assert main(["sweep", str(path), "--store", store, "--only", "seed", "--no-progress"]) == 2
    assert "--only expects KEY=VALUE" in capsys.readouterr().err


def test_the_closing_table_tells_a_run_another_sweep_trains_from_an_interrupted_one(tmp_path, capsys):
    """The table a sweep ends with lists every run of the study; one it left alone says whether another live
    process trains it now or it was interrupted (a run of an earlier sitting), never a bare 'running'."""
    from rnnlab.cli import main
    from rnnlab.lab.store.claims import claimant, process_start

    path = _study_file(tmp_path)
    store = tmp_path / "s.db"
    first = load_study(path).runs[0]
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {**claimant(), "pid": other.pid, "started": process_start(other.pid)}
        Store(store).claim_run(first.label(), first.canonical(), first.hash(), {"claimed_by": owner}, "tiny")
        assert main(["sweep", str(path), "--store", str(store), "--only", "seed=1", "--no-progress"]) == 0
        table = capsys.readouterr().out
        assert f"training (pid {other.pid})" in table and "completed" in table
    finally:
        other.kill()
        other.wait()
    assert main(["sweep", str(path), "--store", str(store), "--only", "seed=1", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert "interrupted" in table and "running" not in table


def test_a_dry_run_says_what_a_sweep_would_do_and_writes_nothing(tmp_path, capsys):
    from rnnlab.cli import main

    path = _study_file(tmp_path)
    store = tmp_path / "s.db"
    assert main(["sweep", str(path), "--store", str(store), "--dry-run"]) == 0
    assert "2 new" in capsys.readouterr().out and not store.exists(), "no store is created by a dry run"
    assert main(["sweep", str(path), "--store", str(store), "--only", "seed=0", "--no-progress"]) == 0
    capsys.readouterr()
    before = store.read_bytes()
    assert main(["sweep", str(path), "--store", str(store), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "skip: completed" in out and "1 skip, 1 new" in out
    assert store.read_bytes() == before, "a dry run writes nothing"


def test_killed_sweep_driver_resumes_with_every_run_exactly_once(tmp_path):
    study_file = tmp_path / "study.yaml"
    study_file.write_text(
        yaml.safe_dump(
            {
                "name": "killme",
                "claim": "c",
                "source": "s",
                "defaults": {**TINY, "steps": 60, "checkpoint_every": 10},
                "grid": {"seed": [0, 1, 2, 3]},
                "variants": [{"name": "gru", "cell": "gru"}],
            }
        )
    )
    store_path = tmp_path / "s.db"
    cmd = [
        sys.executable,
        "-m",
        "rnnlab",
        "sweep",
        str(study_file),
        "--workers",
        "2",
        "--store",
        str(store_path),
        "--no-progress",
    ]
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill the driver once at least one run has finished
        if store_path.exists() and Store(store_path).runs(study="killme", status="completed"):
            break
        time.sleep(0.1)
    workers = children(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = len(Store(store_path).runs(study="killme", status="completed"))
    assert finished_before >= 1
    deadline = time.time() + 30  # the orphaned workers notice that the driver is gone and exit
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(alive(pid) for pid in workers), "no worker outlives a killed driver"
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    runs = Store(store_path).runs(study="killme")
    assert len(runs) == 4 and all(r.status == "completed" for r in runs), [(r.name, r.status) for r in runs]
    assert len({r.config_hash for r in runs}) == 4
    assert Store(store_path).check() == []


def test_ray_executor_matches_local(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'rnnlab[ray]'); CI installs it")
    study = _study(seeds=(0,))
    local = Store(tmp_path / "local.db")
    run_study(study, local, workers=1, progress=False)
    on_ray = Store(tmp_path / "ray.db")
    summary = run_study(study, on_ray, workers=2, executor="ray", progress=False)
    assert summary.ran == 2 and summary.failed == 0
    expected = {r.name: r.final_metric for r in local.runs()}
    assert {r.name: r.final_metric for r in on_ray.runs()} == expected
    # The schedule on Ray too: a run waits for its shorter version and is not run when that one was not solved;
    # a study whose budget grew continues its completed runs.
    lengths = Store(tmp_path / "lengths.db")
    summary = run_study(_lengths_study(seeds=(0, 1)), lengths, executor="ray", workers=2, progress=False)
    assert (summary.ran, summary.not_needed) == (2, 4)
    continued = run_study(_study(seeds=(0,), variants=[{"name": "gru", "cell": "gru", "steps": 60}]), on_ray,
                          executor="ray", progress=False)  # fmt: skip
    assert continued.ran == 1
    longer = next(r for r in on_ray.runs() if r.steps == 60)
    assert [(p["from_step"], p["to_step"]) for p in longer.environment["parts"]] == [(0, 30), (30, 60)]


def test_ray_missing_is_a_one_line_error(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ExecutorUnavailable, match=r"needs Ray, which is not installed: pip install 'rnnlab\[ray\]'"):
        run_study(_study(), Store(tmp_path / "s.db"), executor="ray", progress=False)


def test_an_executor_that_cannot_start_releases_the_runs_it_claimed(tmp_path, monkeypatch):
    """A failed executor start (a Ray address that does not answer) leaves the store as it found it: new runs are
    not left 'running' forever, a failed run is failed again, an interrupted one stays resumable."""
    import rnnlab.lab.sweep as sweep_module
    from rnnlab.lab.sweep import ExecutorUnavailable

    store = Store(tmp_path / "s.db")
    study = make_study({"name": "claims", "defaults": TINY, "grid": {"seed": [0, 1, 2]}})
    first, second, _ = study.runs
    env = {}
    interrupted, _ = store.claim_run(first.label(), first.canonical(), first.hash(), env, "claims")
    failed, _ = store.claim_run(second.label(), second.canonical(), second.hash(), env, "claims")
    store.fail_run(failed, "RuntimeError: boom")

    def cannot_start(*args, **kwargs):
        raise ExecutorUnavailable("the ray executor could not start on ray://127.0.0.1:1: connection refused")

    monkeypatch.setattr(sweep_module, "_run_local", cannot_start)
    with pytest.raises(ExecutorUnavailable, match="could not start"):
        run_study(study, store, workers=1, progress=False)
    statuses = {r.id: r.status for r in store.runs(study="claims")}
    assert statuses == {interrupted: "running", failed: "failed"}, "the new run was removed, the others restored"
    assert store.check() == []


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 120) -> None:
    import socket

    deadline = time.time() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def _ray_logs(temp_dir: str, pattern: str = "ray_client_server*", chars: int = 1500) -> str:
    """The tails of the Ray Client servers' logs, so that a failure on CI says what the server saw."""
    from pathlib import Path

    tails = [
        f"--- {p.name}\n{p.read_text(errors='replace')[-chars:]}"
        for p in sorted(Path(temp_dir).glob(f"session_*/logs/{pattern}"))
    ]
    return "\n".join(tails) or f"(no {pattern} logs under {temp_dir})"


def test_a_sweep_on_a_running_ray_cluster_through_ray_client(tmp_path):
    """The documented `--address ray://HOST:PORT` for real: a Ray head with its client server is started here (token
    authentication on, as Ray ≥ 2.59 does by default), the CLI sweeps through Ray Client, and the results equal a
    local sweep's. Hermetic: the cluster's token is made here and handed over in RAY_AUTH_TOKEN (not whatever
    ~/.ray/auth_token an earlier test left), and the cluster keeps its files in a folder of its own."""
    import os
    import secrets
    import shutil
    import tempfile
    from pathlib import Path

    pytest.importorskip("ray", reason="Ray is not installed (pip install 'rnnlab[ray]'); CI installs it")
    ray_cli = Path(sys.executable).parent / "ray"
    if not ray_cli.exists():
        pytest.skip(f"no `ray` command beside {sys.executable}")
    study_file = tmp_path / "roundtrip.yaml"
    study_file.write_text(
        yaml.safe_dump({"name": "roundtrip", "claim": "c", "defaults": TINY, "grid": {"seed": [0, 1]}})
    )
    # The session folder holds Unix sockets, whose paths must stay under ~107 bytes: a short folder in /tmp.
    temp_dir = tempfile.mkdtemp(prefix="rnnlab-ray-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    port, client_port = _free_port(), _free_port()
    head = [str(ray_cli), "start", "--head", f"--port={port}", f"--ray-client-server-port={client_port}",
            f"--temp-dir={temp_dir}", "--num-cpus=2", "--include-dashboard=false", "--node-ip-address=127.0.0.1",
            "--disable-usage-stats"]  # fmt: skip
    started = subprocess.run(head, env=env, capture_output=True, text=True, timeout=180, check=False)
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        _wait_for_port(client_port)  # `ray start` returns before its client server listens (seconds, under load)
        rnnlab = [sys.executable, "-m", "rnnlab", "sweep", str(study_file), "--no-progress"]
        remote = [*rnnlab, "--executor", "ray", "--address", f"ray://127.0.0.1:{client_port}"]
        for _attempt in range(2):
            done = subprocess.run([*remote, "--store", str(tmp_path / "ray.db")], env=env, capture_output=True,
                                  text=True, timeout=400, check=False)  # fmt: skip
            # Ray's client proxier forks each session's server from a process full of gRPC threads, and that
            # server can die at birth ("Initialization failure from server: psutil.ZombieProcess", seen once
            # here under load; ray-project/ray#63408): the sweep then refused to start and released its claims,
            # so one more session is a clean second try.
            if "Initialization failure from server" not in done.stderr:
                break
        assert done.returncode == 0, done.stderr[-2000:] + "\n" + _ray_logs(temp_dir)
        local = subprocess.run([*rnnlab, "--store", str(tmp_path / "local.db")], capture_output=True, text=True,
                               timeout=300, check=False)  # fmt: skip
        assert local.returncode == 0, local.stderr[-2000:]
        on_ray = {r.name: (r.status, r.final_metric) for r in Store(tmp_path / "ray.db").runs()}
        here = {r.name: (r.status, r.final_metric) for r in Store(tmp_path / "local.db").runs()}
        assert len(on_ray) == 2 and on_ray == here
        assert Store(tmp_path / "ray.db").check() == []
    finally:
        # This test's cluster only: `ray stop --force` kills every process whose command line names a Ray part,
        # such as a pytest given tests/test_monitor.py ("monitor.py"), with this very test in it. Ours name the
        # cluster's folder (the client server: its GCS port), and the rest are their children.
        kill_trees(
            processes_where(
                lambda line: temp_dir in line or ("ray.util.client.server" in line and f":{port} " in f"{line} ")
            )
        )
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_a_ray_client_connection_whose_server_did_not_start_is_tried_again(capsys):
    """Ray 2.60's client server sometimes dies as it starts (seen on CI and here); the next attempt connects."""
    from types import SimpleNamespace

    from rnnlab.lab.sweep import CLIENT_ATTEMPTS, _init_ray

    failure = ConnectionAbortedError(
        "Initialization failure from server:\nTraceback (most recent call last):\nRuntimeError: Starting Ray client "
        "server failed. See ray_client_server_23000.err for detailed logs."
    )
    calls = []

    def init(**kwargs):
        calls.append(kwargs)
        if sum(c != "shutdown" for c in calls) < CLIENT_ATTEMPTS:
            raise failure

    fake = SimpleNamespace(init=init, shutdown=lambda: calls.append("shutdown"))
    _init_ray(fake, {"address": "ray://head:10001"}, "ray://head:10001")
    assert [c for c in calls if c != "shutdown"] == [{"address": "ray://head:10001", "log_to_driver": False,
                                                      "configure_logging": False}] * CLIENT_ATTEMPTS  # fmt: skip
    assert "trying again (2/3)" in capsys.readouterr().err
    calls.clear()

    def always(**kwargs):
        calls.append(kwargs)
        raise failure

    with pytest.raises(ConnectionAbortedError):  # the last attempt's error is the caller's to report
        _init_ray(SimpleNamespace(init=always, shutdown=lambda: None), {}, "ray://head:10001")
    assert len(calls) == CLIENT_ATTEMPTS
    calls.clear()
    with pytest.raises(ConnectionAbortedError):  # a local cluster, or any other error: no second attempt
        _init_ray(SimpleNamespace(init=always, shutdown=lambda: None), {}, None)
    assert len(calls) == 1


def test_a_multi_line_ray_error_keeps_its_heading_and_the_traceback_s_last_line():
    from rnnlab.lab.sweep import _one_line

    server_side = ConnectionAbortedError(
        'Initialization failure from server:\nTraceback (most recent call last):\n  File "proxier.py", line 780\n'
        "RuntimeError: Proxy failed to Connect to backend!\n"
    )
    assert _one_line(server_side) == (
        "Initialization failure from server: RuntimeError: Proxy failed to Connect to backend!"
    )
    assert _one_line(ConnectionError("refused")) == "refused"
    assert _one_line(TimeoutError()) == "TimeoutError"


def test_a_ray_client_address_failure_names_token_authentication(monkeypatch):
    from rnnlab.lab.sweep import _auth_hint

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    assert "RAY_AUTH_MODE=token" in _auth_hint("ray://head:10001")
    assert _auth_hint(None) == "" and _auth_hint("127.0.0.1:6379") == ""
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert _auth_hint("ray://head:10001") == ""


# ---------------------------------------------------------------------------------------- skip_after_failure

SOLVED = {"status": "solved", "steps": 2, "metric_name": "mse", "final_metric": 0.005, "final_loss": 0.005,
          "solved_at": 2, "diverged_at": None, "clip_rate": 0.0, "wall_time": 0.1, "evaluations": [], "train_losses": []}  # fmt: skip


def _lengths_study(lengths=(5, 10, 20), seeds=(0,), skip="seq_len", name="lengths"):
    return make_study(_lengths_data(lengths, seeds, skip, name))


def _lengths_data(lengths=(5, 10, 20), seeds=(0,), skip="seq_len", name="lengths"):
    """One tanh RNN at several lengths; 2 updates never solve the adding task (MSE < 0.01)."""
    data = {
        "name": name,
        "defaults": {**TINY, "steps": 2, "eval_every": 1},
        "grid": {"seq_len": list(lengths), "seed": list(seeds)},
        "order": "seeds",
        "variants": [{"name": "tanh", "cell": "rnn_tanh"}],
    }
    return {**data, "skip_after_failure": skip} if skip else data


def test_skip_after_failure_names_a_grid_key_with_numbers():
    assert _lengths_study().skip_after_failure == "seq_len"
    for bad, why in [("steps", "got 'steps'"), ("seed", "got 'seed'"), ("seq_len ", "got 'seq_len '")]:
        with pytest.raises(ConfigError, match=why) as error:
            _lengths_study(seeds=(0, 1), skip=bad)  # a seed is no length, though a numeric grid key
        assert "such keys: seq_len" in str(error.value) and "\n" not in str(error.value)


def test_each_run_waits_on_its_next_shorter_version_of_the_same_seed():
    from rnnlab.lab.study import predecessors

    study = _lengths_study(lengths=(20, 5, 10), seeds=(0, 1))  # the grid's order does not matter
    before = {config.name: shorter.name for config in study.runs if (shorter := predecessors(study).get(config.hash()))}
    assert before == {
        "tanh · seq_len=10 · seed=0": "tanh · seq_len=5 · seed=0",
        "tanh · seq_len=20 · seed=0": "tanh · seq_len=10 · seed=0",
        "tanh · seq_len=10 · seed=1": "tanh · seq_len=5 · seed=1",
        "tanh · seq_len=20 · seed=1": "tanh · seq_len=10 · seed=1",
    }
    assert predecessors(_lengths_study(skip=None)) == {}


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ({5: "completed"}, 5),  # not solved: neither 10 nor 20 is needed
        ({5: "diverged"}, 5),
        ({5: "solved", 10: "completed"}, 10),
        ({5: "solved"}, None),  # 10 has not run: 20 waits on it, not on 5
        ({5: "solved", 10: "solved"}, None),
        ({5: "completed", 10: "solved"}, None),  # the nearest shorter run decides
        ({5: "running"}, None),  # not decided yet
        ({5: "failed"}, None),  # a crash says nothing about the task; it is run again
        ({}, None),
    ],
)
def test_a_run_is_not_needed_when_its_nearest_decided_shorter_version_was_not_solved(statuses, expected):
    from rnnlab.lab.study import predecessors, unsolved_predecessor

    study = _lengths_study()
    longest = study.runs[-1]
    failed = unsolved_predecessor(longest, predecessors(study), lambda c: statuses.get(c.seq_len))
    assert (failed.seq_len if failed else None) == expected


def test_a_sweep_does_not_run_the_longer_versions_of_a_run_that_was_not_solved(tmp_path, capsys):
    from rnnlab.cli import main

    store = Store(tmp_path / "s.db")
    summary = run_study(_lengths_study(seeds=(0, 1)), store, workers=2, progress=False)
    assert (summary.ran, summary.not_needed, summary.skipped, summary.failed) == (2, 4, 0, 0)
    runs = store.runs(study="lengths")
    assert sorted((r.name, r.status) for r in runs) == [
        ("tanh · seq_len=5 · seed=0", "completed"),
        ("tanh · seq_len=5 · seed=1", "completed"),
    ], "the runs not needed leave nothing in the store"
    again = run_study(_lengths_study(seeds=(0, 1)), store, progress=False)
    assert (again.ran, again.not_needed, again.skipped) == (0, 4, 2)
    path = tmp_path / "lengths.yaml"
    path.write_text(yaml.safe_dump(_lengths_data(seeds=(0, 1))), encoding="utf-8")
    store.close()
    assert main(["sweep", str(path), "--store", str(tmp_path / "s.db"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "not needed: seq_len=5 was not solved" in out and "2 skip, 4 not needed" in out


def test_a_solved_shorter_run_lets_the_next_length_run_and_a_dry_run_says_what_waits(tmp_path):
    from rnnlab.lab.sweep import preview

    study = _lengths_study()
    store = Store(tmp_path / "s.db")
    shortest = study.runs[0]
    store.record_run(shortest.label(), shortest.canonical(), shortest.hash(), {}, SOLVED, study="lengths")
    assert [action for _, action in preview(study, store)] == ["skip: solved", "new", "new (if seq_len=10 is solved)"]
    summary = run_study(study, store, progress=False)
    assert (summary.ran, summary.not_needed, summary.skipped) == (1, 1, 1), "10 ran (and failed), so 20 did not"
    statuses = {r.name: r.status for r in store.runs(study="lengths")}
    assert statuses == {"tanh · seq_len=5": "solved", "tanh · seq_len=10": "completed"}


def test_a_shorter_run_that_met_the_criterion_and_ran_on_counts_as_solved(tmp_path):
    """stop_when_solved: false: the shorter run used its budget ('completed') but records where it first met the
    criterion, so the next length is needed; without that record it was not solved."""
    from rnnlab.lab.sweep import preview

    study = _lengths_study()
    shortest = study.runs[0]
    for solved_at, second in ((1, "new"), (None, "not needed: seq_len=5 was not solved")):
        store = Store(tmp_path / f"{solved_at}.db")
        ran_on = {**SOLVED, "status": "completed", "solved_at": solved_at}
        store.record_run(shortest.label(), shortest.canonical(), shortest.hash(), {}, ran_on, study="lengths")
        assert [action for _, action in preview(study, store)][:2] == ["skip: completed", second]


def test_a_part_of_a_study_skips_runs_whose_shorter_version_outside_it_was_not_solved(tmp_path):
    from rnnlab.lab.study import select_runs

    store = Store(tmp_path / "s.db")
    run_study(select_runs(_lengths_study(), {"seq_len": ["5"]}), store, progress=False)
    summary = run_study(select_runs(_lengths_study(), {"seq_len": ["10", "20"]}), store, progress=False)
    assert (summary.ran, summary.not_needed) == (0, 2)


def test_the_schedule_starts_a_run_only_after_its_shorter_version_finished(tmp_path):
    from rnnlab.lab.sweep import _Schedule

    study = _lengths_study(seeds=(0, 1))
    store = Store(tmp_path / "s.db")
    summary, jobs = plan(study, store)
    schedule = _Schedule(study, store, summary, jobs, display=None)
    first = schedule.take(2)
    assert [j.name for j in first] == ["tanh · seq_len=5 · seed=0", "tanh · seq_len=5 · seed=1"]
    assert schedule.take(2) == [], "both longer runs of each seed wait"
    store.finish_run(first[0].run_id, SOLVED)
    schedule.done(first[0])
    assert [j.name for j in schedule.take(2)] == ["tanh · seq_len=10 · seed=0"]
    store.fail_run(first[1].run_id, "RuntimeError: a crash")
    schedule.done(first[1])
    assert [j.name for j in schedule.take(None)] == ["tanh · seq_len=10 · seed=1"], "a crash is no failure to learn"


def test_a_run_claimed_by_a_stopped_sweep_is_removed_when_it_is_not_needed(tmp_path):
    """A sweep stopped before it started a run leaves it 'running' without a checkpoint; once its shorter
    version fails, the next sweep removes it rather than leave it 'running' for ever."""
    study = _lengths_study()
    store = Store(tmp_path / "s.db")
    plan(study, store)  # claims all three, as a sweep killed at once would leave them
    assert [r.status for r in store.runs(study="lengths")] == ["running"] * 3
    summary = run_study(study, store, progress=False)
    assert (summary.ran, summary.not_needed) == (1, 2)
    assert [(r.name, r.status) for r in store.runs(study="lengths")] == [("tanh · seq_len=5", "completed")]


def test_a_dry_run_bounds_the_compute_from_the_finished_runs_of_the_same_config_but_seed_and_budget(tmp_path):
    from rnnlab.lab.cost import Estimate, estimate
    from rnnlab.lab.sweep import preview

    study = _lengths_study(lengths=(5, 10), seeds=(0, 1, 2), skip=None)
    store = Store(tmp_path / "s.db")
    for seed, wall in ((0, 0.1), (1, 0.3)):  # 2 updates each: 0.05 and 0.15 s per update, median 0.1
        done = next(r for r in study.runs if (r.seq_len, r.seed) == (5, seed))
        store.record_run(
            done.label(), done.canonical(), done.hash(), {}, {**SOLVED, "wall_time": wall}, study="lengths"
        )
    cost = estimate(study, store, preview(study, store))
    assert (cost.runs, cost.unknown) == (1, 3), "seed 2 at length 5 has the others' rate; length 10 has none"
    assert cost.seconds == pytest.approx(0.1 * 2)
    assert estimate(study, None, preview(study, None)) == Estimate(0.0, 0, 6)


def test_a_dry_run_times_the_variants_with_nothing_to_go_by_when_asked(tmp_path, capsys, monkeypatch):
    """`--measure N` trains each variant that has no finished run for 2N updates here and estimates from the
    last N; the rest keep the store's rates; nothing is written."""
    from rnnlab.cli import main
    from rnnlab.lab import cost
    from rnnlab.lab.sweep import preview

    study = _lengths_study(lengths=(5, 10), seeds=(0, 1), skip=None)
    store = Store(tmp_path / "s.db")
    done = next(r for r in study.runs if (r.seq_len, r.seed) == (5, 0))
    store.record_run(done.label(), done.canonical(), done.hash(), {}, {**SOLVED, "wall_time": 0.2}, study="lengths")
    actions = preview(study, store)
    left = cost.untimed(study, store, actions)
    assert [c.seq_len for c in left.values()] == [10], "one variant, length 10, has no rate; length 5 has"
    rate = cost.time_updates(next(iter(left.values())), 3)
    assert 0 < rate < 5, "a tiny tanh RNN's update, in seconds"
    estimated = cost.estimate(study, store, actions, dict.fromkeys(left, 0.5))
    assert (estimated.runs, estimated.timed, estimated.unknown) == (3, 2, 0)
    assert estimated.seconds == pytest.approx(0.1 * 2 + 0.5 * 2 * 2), "seed 1 at T = 5 at the stored rate"

    timed = []
    monkeypatch.setattr(cost, "time_updates", lambda config, n, threads: timed.append((config.seq_len, n)) or 0.5)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_lengths_data(lengths=(5, 10), seeds=(0, 1), skip=None)))
    before = (tmp_path / "s.db").read_bytes()
    assert main(["sweep", str(path), "--store", str(tmp_path / "s.db"), "--dry-run", "--measure", "4"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert timed == [(10, 4)] and "Timed tanh · seed=0 · seq_len=10: 0.5 s per update" in out
    assert "at most 0:00 (h:mm) for 3 of the runs" in out and "(2 of them at the rate timed here just now)" in out
    assert (tmp_path / "s.db").read_bytes() == before, "nothing stored"
    assert main(["sweep", str(path), "--store", str(tmp_path / "s.db"), "--measure", "4"]) == 2
    assert "give it with --dry-run" in capsys.readouterr().err


def test_a_dry_run_says_where_a_checkpointed_run_resumes_and_counts_only_its_updates_left(tmp_path):
    from rnnlab.lab.checkpoints import save_checkpoint
    from rnnlab.lab.cost import estimate
    from rnnlab.lab.sweep import preview

    study = _study(seeds=(0, 1), variants=[{"name": "gru", "cell": "gru"}])
    store = Store(tmp_path / "s.db")
    first, second = study.runs
    store.record_run(
        first.label(), first.canonical(), first.hash(), {}, {**SOLVED, "steps": 30, "wall_time": 3.0}, study="tiny"
    )
    _, jobs = plan(study, store)  # claims seed 1, as a sweep stopped after its first checkpoint leaves it
    save_checkpoint({"step": 20}, Path(jobs[0].checkpoint))
    actions = preview(study, store)
    assert actions[1] == (second.label(), "resume from its checkpoint at update 20 of 30")
    assert estimate(study, store, actions).seconds == pytest.approx(0.1 * 10), "10 updates left at 0.1 s each"
    Path(jobs[0].checkpoint).write_bytes(b"garbage")
    assert preview(study, store)[1][1] == "fail: its checkpoint is unreadable", "as the sweep would record it"


def test_a_run_another_live_sweep_trains_is_left_to_it_and_taken_over_once_that_sweep_is_gone(tmp_path):
    """A 'running' run whose claimant is another live process on this machine is 'busy': a second sweep skips
    it (and its dry run says so) instead of training it beside the first; once that process is gone the run
    resumes here."""
    from rnnlab.lab.store.claims import claimant, process_start
    from rnnlab.lab.sweep import preview

    study = _study(seeds=(0,), variants=[{"name": "gru", "cell": "gru"}])
    store = Store(tmp_path / "s.db")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {**claimant(), "pid": other.pid, "started": process_start(other.pid)}
        (config,) = study.runs
        run_id, state = store.claim_run(
            config.label(), config.canonical(), config.hash(), {"claimed_by": owner}, "tiny"
        )
        assert state == "new" and store.run(run_id).environment["claimed_by"]["pid"] == other.pid
        assert preview(study, store) == [(config.label(), f"skip: another sweep trains it now (pid {other.pid})")]
        summary, jobs = plan(study, store)
        assert (summary.elsewhere, jobs) == (1, []), "left to the other sweep"
        assert store.run(run_id).environment["claimed_by"]["pid"] == other.pid, "its claim untouched"
    finally:
        other.kill()
        other.wait()
    summary, jobs = plan(study, store)
    assert summary.elsewhere == 0 and [j.claim for j in jobs] == ["resumed"], "its claimant is gone"
    assert store.run(run_id).environment["claimed_by"]["pid"] == os.getpid(), "claimed by this process now"
    assert run_study(study, store, progress=False).ran == 1
    assert "claimed_by" not in store.run(run_id).environment, "a finished run is nobody's claim"


def test_a_reused_pid_is_not_taken_for_the_claimant():
    from rnnlab.lab.store.claims import claimant, claimed_elsewhere, claimed_on_other_host

    me = claimant()
    assert claimed_elsewhere({"claimed_by": me}) is None, "this process's own claim is its to resume"
    if me["started"] is None:
        pytest.skip("no /proc here: a claimant's start time cannot be read")
    parent = {**me, "pid": os.getppid(), "started": me["started"] + 10**9}  # alive, but started at another time
    assert claimed_elsewhere({"claimed_by": parent}) is None
    assert claimed_elsewhere({"claimed_by": {**parent, "host": "elsewhere"}}) is None, "another machine: not seen"
    assert claimed_on_other_host({"claimed_by": {**parent, "host": "elsewhere"}}) == "elsewhere"
    assert claimed_on_other_host({"claimed_by": me}) is None and claimed_on_other_host({}) is None
    assert claimed_elsewhere({}) is None


def test_a_study_whose_budget_grew_continues_its_completed_runs(tmp_path):
    """Run at 20 updates, then the same study at 40: each run trains only updates 21–40, from its shorter run's
    kept checkpoint, and ends exactly as a run of 40 from scratch in another store."""
    from rnnlab.lab.cost import estimate
    from rnnlab.lab.sweep import preview, shorter_run

    def study(steps):
        return make_study(
            {"name": "budget", "defaults": {**TINY, "steps": steps, "eval_every": 10}, "grid": {"seed": [0, 1]}}
        )

    store = Store(tmp_path / "s.db")
    run_study(study(20), store, progress=False)
    assert [action for _, action in preview(study(40), store)] == [
        "new: continues run 1 from its 20 updates",
        "new: continues run 2 from its 20 updates",
    ]
    rate = statistics.median(r.wall_time / r.steps for r in store.runs(study="budget"))
    assert estimate(study(40), store, preview(study(40), store)).seconds == pytest.approx(2 * rate * 20)
    from rnnlab.lab.sweep import _Schedule

    summary, jobs = plan(study(40), store)
    assert [j.start_from for j in jobs] == [None, None], "decided when each starts"
    assert [Path(j.start_from).name for j in _Schedule(study(40), store, summary, jobs, None).take(None)] == [
        "run-1.pt",
        "run-2.pt",
    ]
    store.release_claims([(j.run_id, j.claim) for j in jobs])
    assert run_study(study(40), store, progress=False).ran == 2
    fresh = Store(tmp_path / "fresh.db")
    run_study(study(40), fresh, progress=False)
    longer = {r.name: r for r in store.runs(study="budget") if r.steps == 40}
    for run in fresh.runs(study="budget"):
        assert longer[run.name].final_metric == run.final_metric and longer[run.name].config == run.config
        mine = [v for _, name, v in store.metrics(longer[run.name].id) if name == "train_loss"]
        assert mine == [v for _, name, v in fresh.metrics(run.id) if name == "train_loss"]
        parts = longer[run.name].environment["parts"]
        assert [(p["from_step"], p["to_step"]) for p in parts] == [(0, 20), (20, 40)]
    import csv

    store.export_csv(tmp_path / "runs.csv", study="budget")
    with (tmp_path / "runs.csv").open(newline="") as handle:
        rows = {(r["name"], r["steps"]): r for r in csv.DictReader(handle)}
    for run in longer.values():
        own, shorter = float(rows[run.name, "40"]["own_wall_time"]), float(rows[run.name, "20"]["wall_time"])
        assert own == pytest.approx(run.wall_time - shorter, abs=0.01), "updates 21–40 only"
    store.close()
    from rnnlab.cli import main

    assert main(["runs", "prune", "--keep-completed", "--store", str(tmp_path / "s.db")]) == 0
    store = Store(tmp_path / "s.db")
    assert shorter_run(store, "budget", study(80).runs[0]).steps == 40, "kept: the 40-update run goes on"
    assert store.prune_checkpoints()[0] == 4, "the four completed runs' checkpoints"
    assert shorter_run(store, "budget", study(80).runs[0]) is None, "pruned: nothing to continue"


# An IRNN-like ReLU RNN under plain SGD: at lr 3 it diverges (seed 0 at update 18, seed 1 at 2), at lr 1 it
# completes 40 updates.
ENDS_EARLY = {**TINY, "seq_len": 10, "hidden_size": 8, "cell": "rnn_relu", "init": "identity", "optimizer": "sgd",
              "eval_every": 5}  # fmt: skip
WILD_AND_CALM = [{"name": "wild", "lr": 3.0}, {"name": "calm", "lr": 1.0}]


def test_a_larger_budget_repeats_a_run_that_ended_early_without_training_it(tmp_path):
    """A run that diverged (or solved) before its budget ran out is the outcome of the same config at any larger
    budget: the sweep records it as such (no training, no wall time), and a run of the larger budget trained
    from scratch in another store ends at the same update with the same numbers."""
    from rnnlab.lab.cost import estimate
    from rnnlab.lab.sweep import preview
    from rnnlab.report.html import build_report

    def study(steps):
        return make_study(
            {
                "name": "early",
                "defaults": {**ENDS_EARLY, "steps": steps},
                "grid": {"seed": [0, 1]},
                "variants": WILD_AND_CALM,
            }
        )

    store = Store(tmp_path / "s.db")
    run_study(study(40), store, progress=False)
    ended = {r.name: (r.status, r.diverged_at) for r in store.runs(study="early")}
    assert ended == {"wild · seed=0": ("diverged", 18), "wild · seed=1": ("diverged", 2),
                     "calm · seed=0": ("completed", None), "calm · seed=1": ("completed", None)}  # fmt: skip
    actions = dict(preview(study(80), store))
    assert actions["wild · seed=0"] == "same as run 1: diverged at update 18, within its 40 updates"
    assert actions["calm · seed=0"] == "new: continues run 3 from its 40 updates"
    assert estimate(study(80), store, list(actions.items())).runs == 2, "only the calm runs need compute"

    summary = run_study(study(80), store, progress=False)
    assert (summary.repeated, summary.ran, summary.skipped) == (2, 2, 0)
    fresh = Store(tmp_path / "fresh.db")
    run_study(study(80), fresh, progress=False)
    longer = {r.name: r for r in store.runs(study="early") if r.config["steps"] == 80}
    for run in fresh.runs(study="early"):
        mine = longer[run.name]
        assert (mine.status, mine.diverged_at, mine.steps, mine.final_metric, mine.final_loss) == (
            run.status, run.diverged_at, run.steps, run.final_metric, run.final_loss)  # fmt: skip
        assert [m[1:] for m in store.metrics(mine.id) if m[1] != "train_time"] == [
            m[1:] for m in fresh.metrics(run.id) if m[1] != "train_time"
        ]
        assert [f["profile"] for f in store.flows(mine.id)] == [f["profile"] for f in fresh.flows(run.id)]
    repeated = [r for r in longer.values() if r.environment.get("same_as")]
    assert [(r.name, r.wall_time, r.environment["same_as"]) for r in repeated] == [
        ("wild · seed=0", 0.0, {"run": 1, "steps": 40}),
        ("wild · seed=1", 0.0, {"run": 2, "steps": 40}),
    ]
    assert run_study(study(80), store, progress=False).skipped == 4, "recorded once: the next sweep skips them"
    page = build_report(store, "early", tmp_path / "r").html.read_text(encoding="utf-8")
    assert "2 runs trained nothing: a run of the same configuration with a smaller budget ended early" in page
    assert "<li>wild · seed=0: run 1's outcome (diverged at update 18, within its 40 updates)</li>" in page
    assert "the sum of the 6 finished runs' wall times" in page, "the repeats add no compute"


def test_only_a_run_that_stopped_where_the_longer_one_would_is_its_outcome(tmp_path):
    from rnnlab.lab.config import make_config
    from rnnlab.lab.store import StoreError
    from rnnlab.lab.sweep import ended_early

    base = {**TINY, "seq_len": 10, "eval_every": 2}
    store = Store(tmp_path / "s.db")
    on = make_config({**base, "steps": 4})  # solved at update 2, a scheduled evaluation
    store.record_run(on.label(), on.canonical(), on.hash(), {}, {**SOLVED, "solved_at": 2}, study="s")
    off = make_config({**base, "steps": 5, "seed": 1})  # solved at its last update, 5, an evaluation off schedule
    store.record_run(off.label(), off.canonical(), off.hash(), {}, {**SOLVED, "solved_at": 5, "steps": 5}, study="s")
    assert ended_early(store, "s", make_config({**base, "steps": 8})).id == 1
    assert ended_early(store, "s", make_config({**base, "steps": 8, "seed": 1})) is None, "update 5 is not evaluated"
    assert ended_early(store, "s", make_config({**base, "steps": 3})) is None, "a smaller budget is another run"
    assert ended_early(store, "s", make_config({**base, "steps": 8, "lr_schedule": "cosine"})) is None
    assert ended_early(store, "other", make_config({**base, "steps": 8})) is None, "another study's run"
    completed = make_config({**base, "steps": 4, "seed": 2})
    result = {**SOLVED, "status": "completed", "solved_at": None}
    store.record_run(completed.label(), completed.canonical(), completed.hash(), {}, result, study="s")
    claimed = store.start_run("x", {}, "h", {}, "s")
    with pytest.raises(StoreError, match="run 3 completed: only a run that ended early"):
        store.give_outcome(claimed, 3)
    with pytest.raises(StoreError, match="run 1 is not a claimed run"):
        store.give_outcome(1, 1)


def test_in_one_sweep_a_larger_budget_waits_for_its_smaller_one_then_continues_or_repeats_it(tmp_path):
    """A study with two budgets of each config: the larger runs wait for the smaller ones of the same sweep,
    then continue them (completed) or take their outcome (diverged), instead of training from scratch beside
    them."""
    from rnnlab.lab.sweep import preview

    study = make_study(
        {
            "name": "budgets",
            "defaults": {**ENDS_EARLY, "seed": 0},
            "grid": {"steps": [20, 40]},
            "variants": WILD_AND_CALM,
        }
    )
    store = Store(tmp_path / "s.db")
    assert dict(preview(study, store))["wild · steps=40"] == (
        "new (after its 20-update version, which it continues or repeats)"
    )
    summary = run_study(study, store, workers=2, progress=False)
    assert (summary.ran, summary.repeated) == (3, 1)
    runs = {r.name: r for r in store.runs(study="budgets")}
    assert runs["wild · steps=20"].status == "diverged" and runs["wild · steps=20"].diverged_at == 18
    assert runs["wild · steps=40"].environment["same_as"] == {"run": runs["wild · steps=20"].id, "steps": 20}
    assert runs["wild · steps=40"].diverged_at == 18
    parts = runs["calm · steps=40"].environment["parts"]
    assert [(p["from_step"], p["to_step"]) for p in parts] == [(0, 20), (20, 40)], "continued, not retrained"


def test_a_worker_s_row_measures_each_run_s_speed_from_its_own_start():
    """The time left on a worker's row is its run's: a new run on the row (a resumed one at its checkpoint's
    update) starts a fresh speed estimate instead of inheriting the last run's progress; the study's row, whose
    runs differ in cost, shows none."""
    from rnnlab.lab.sweep import SweepSummary, _Display

    display = _Display(_study(), SweepSummary(study="tiny"), [], workers=1)
    try:
        display.update(7, "a", 0, 100, None)
        for step in (10, 90):
            time.sleep(0.01)
            display.update(7, "a", step, 100, 0.5)
        row = display.progress.tasks[display.workers[7]]
        assert row.completed == 90 and row.speed > 0
        display.update(7, "b", 15000, 30000, None)  # resumed from its checkpoint
        assert (row.completed, row.total, row.speed) == (15000, 30000, None), "no speed from the jump to 15000"
        columns = display.progress.columns
        study_row = display.progress.tasks[display.study_task]
        assert str(columns[-1].render(study_row)) == "" and str(columns[-1].render(row)) != ""
    finally:
        display.stop()


def test_a_sweep_logging_to_a_file_says_how_each_run_is_doing_every_few_minutes(monkeypatch, capsys):
    """Where the live bars are not drawn (output to a log file, as a study left running in the background), a
    worker's run gets a line at most every LOG_EVERY_SECONDS: its update, test metric and time left."""
    from rnnlab.lab import sweep
    from rnnlab.lab.sweep import SweepSummary, _Display

    monkeypatch.setattr(sweep, "LOG_EVERY_SECONDS", 0.05)
    display = _Display(_study(), SweepSummary(study="tiny"), [], workers=1)
    try:
        assert display.log_every == 0.05, "pytest's captured output is not a terminal"
        display.update(7, "a", 0, 100, None)
        display.update(7, "a", 10, 100, 0.5)
        assert "update 10/100" not in capsys.readouterr().out, "not before the interval has passed"
        time.sleep(0.06)
        display.update(7, "a", 40, 100, 0.25)
        display.update(7, "a", 50, 100, 0.2)
        lines = [line for line in capsys.readouterr().out.splitlines() if "update" in line]
        assert len(lines) == 1 and re.search(
            r"a: update 40/100 · test metric 0.25, 0:00:0\d left at its speed$", lines[0]
        )
    finally:
        display.stop()


def test_a_pool_found_broken_when_a_job_is_submitted_is_replaced_and_the_job_runs(tmp_path, monkeypatch):
    """A worker that dies between two of the driver's looks breaks the pool, and the next `submit` raises
    BrokenProcessPool (seen under load in the kill test: the sweep crashed with an internal error). The job must
    start again in a fresh pool, as the running ones do."""
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    submitted = []
    submit = ProcessPoolExecutor.submit

    def second_submit_finds_the_pool_broken(pool, *args, **kwargs):
        submitted.append(args[1])  # the job's checkpoint path: which run
        if len(submitted) == 2:
            raise BrokenProcessPool("A child process terminated abruptly")
        return submit(pool, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", second_submit_finds_the_pool_broken)
    study = _study(seeds=(0, 1), variants=[{"name": "gru", "cell": "gru"}])
    store = Store(tmp_path / "s.db")
    summary = run_study(study, store, workers=1, progress=False)
    assert (summary.ran, summary.failed) == (2, 0)
    assert len(submitted) == 3 and submitted[1] == submitted[2], "the second run was submitted again"
    assert [r.status for r in store.runs(study="tiny")] == ["completed", "completed"]
