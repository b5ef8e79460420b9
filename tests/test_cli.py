"""The command line: help, version, and one-line errors with exit status 2 for user mistakes.
Run: `.venv/bin/pytest tests/test_cli.py`.
"""

import subprocess
import sys

import pytest

import rnnlab
import rnnlab.recurrent.init
from rnnlab.cli import main


def test_help_and_version(capsys):
    assert main([]) == 0
    assert "inits" in capsys.readouterr().out
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out.strip() == f"rnnlab {rnnlab.__version__}"


def test_inits_lists_every_scheme(capsys):
    assert main(["inits"]) == 0
    out = capsys.readouterr().out
    for name in rnnlab.recurrent.init.SCHEMES:
        assert name in out


def test_unknown_command_is_one_line_exit_2_without_traceback():
    result = subprocess.run([sys.executable, "-m", "rnnlab", "bogus"], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "invalid choice: 'bogus'" in lines[0] and "choose from" in lines[0]
    assert "Traceback" not in result.stderr


def test_diagnose_prints_a_table_and_writes_the_plot(tmp_path, capsys):
    out = tmp_path / "plots" / "flow.png"
    status = main(
        [
            "diagnose",
            "--cells",
            "rnn_tanh,lstm",
            "--init",
            "orthogonal",
            "--seq-len",
            "40",
            "--hidden",
            "16",
            "--batch",
            "4",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    text = capsys.readouterr().out
    assert "rnn_tanh:orthogonal" in text and "lstm:orthogonal" in text and "horizon" in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["flow.png"], "no temporary file left behind"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["diagnose", "--cells", "lstn"], "unknown cell 'lstn'; choose from: rnn_tanh, rnn_relu"),
        (["diagnose", "--models", "lstm:identity"], "init 'identity' does not apply to a lstm module"),
        (["diagnose", "--models", "gru:orthogonl"], "unknown init 'orthogonl'; choose from:"),
        (["diagnose", "--seq-len", "0"], "argument --seq-len: expected a positive integer, got '0'"),
        (["diagnose", "--threshold", "2"], "argument --threshold: expected a number in (0, 1], got '2'"),
        (["diagnose", "--dtype", "float16"], "invalid choice: 'float16' (choose from 'float32', 'float64')"),
        (["diagnose", "--models", "lstm", "--cells", "gru"], "give either --models or --cells/--init"),
    ],
)
def test_diagnose_bad_options_are_one_line_errors(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnlab: error: "), err
    assert message in err, err
    assert not (tmp_path / "x.png").exists()


def test_a_bug_in_rnnlab_is_reported_as_an_internal_error_with_its_traceback_kept(monkeypatch, capsys, tmp_path):
    import rnnlab.cli as cli

    def broken(args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    monkeypatch.setattr(cli.inits, "run", broken)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    assert cli.main(["inits"]) == cli.INTERNAL_ERROR == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnlab: internal error: TypeError: unsupported operand")
    assert "this is a bug in rnnlab" in err
    (written,) = tmp_path.glob("rnnlab-traceback-*.txt")
    assert str(written) in err
    assert "Traceback (most recent call last)" in written.read_text() and "broken" in written.read_text()


def test_user_mistakes_stay_exit_2_without_a_traceback_file(capsys, tmp_path):
    from rnnlab.cli import main

    assert main(["train", "--set", "hidden_size=many", "--store", str(tmp_path / "s.db")]) == 2
    assert capsys.readouterr().err.startswith("rnnlab: error: hidden_size")


def test_a_mistyped_option_or_config_key_gets_the_nearest_name(capsys, tmp_path):
    assert main(["train", "--sqe-len", "50", "--store", str(tmp_path / "s.db")]) == 2
    assert "did you mean --seq-len?" in capsys.readouterr().err
    assert main(["train", "--set", "hiden_size=8", "--store", str(tmp_path / "s.db")]) == 2
    assert "unknown config key 'hiden_size'; did you mean 'hidden_size'?" in capsys.readouterr().err


def test_a_length_the_task_rejects_is_a_one_line_error_that_stores_no_run(capsys, tmp_path):
    from rnnlab.lab.store import Store

    store = tmp_path / "s.db"
    assert main(["train", "--task", "temporal_order", "--seq-len", "3", "--store", str(store)]) == 2
    assert capsys.readouterr().err == "rnnlab: error: task 'temporal_order': seq_len must be an integer ≥ 20, got 3\n"
    assert not store.exists() or Store(store).runs() == [], "no run left 'running' for a config that cannot run"


TINY_TRAIN = [
    "--task",
    "adding",
    "--seq-len",
    "8",
    "--hidden",
    "4",
    "--steps",
    "4",
    "--eval-every",
    "2",
    "--no-progress",
]


def test_rerunning_a_finished_train_command_shows_the_run_instead_of_recording_a_duplicate(capsys, tmp_path):
    from rnnlab.lab.store import Store

    store = ["--store", str(tmp_path / "s.db")]
    assert main(["train", *TINY_TRAIN, "--lr", "0.01", "--threads", "1", *store]) == 0
    assert main(["train", *TINY_TRAIN, "--lr", "0.01", *store]) == 0
    out = capsys.readouterr().out
    assert "Already in" in out and "run 1 has this config" in out
    assert len(Store(tmp_path / "s.db").runs()) == 1
    assert main(["train", *TINY_TRAIN, "--lr", "0.01", "--again", *store]) == 0
    assert len(Store(tmp_path / "s.db").runs()) == 2


def test_a_train_run_another_live_process_trains_is_left_to_it_then_resumed(capsys, tmp_path):
    """Two identical `rnnlab train` commands at once must not train one run twice: the second says who trains it
    and stops (exit 1); once that process has ended, the same command resumes the run."""
    import json
    import sqlite3

    from rnnlab.lab.store import Store
    from rnnlab.lab.store.claims import claimant, process_start

    store = ["--store", str(tmp_path / "s.db")]
    assert main(["train", *TINY_TRAIN, *store]) == 0
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = {**claimant(), "pid": other.pid, "started": process_start(other.pid)}
        with sqlite3.connect(tmp_path / "s.db") as db:  # as if `other` were training run 1 now
            db.execute(
                "UPDATE runs SET status = 'running', environment = json_set(environment, '$.claimed_by', json(?))",
                (json.dumps(owner),),
            )
        capsys.readouterr()
        assert main(["train", *TINY_TRAIN, *store]) == 1
        assert main(["train", *TINY_TRAIN, "--again", *store]) == 1, "--again resumes an interrupted run, not this"
        out = capsys.readouterr().out
        assert out.count(f"being trained now by another process on this machine (pid {other.pid})") == 2
        (run,) = Store(tmp_path / "s.db").runs()
        assert run.status == "running" and run.environment["claimed_by"]["pid"] == other.pid, "left untouched"
        assert main(["runs", "show", "1", *store]) == 0
        shown = " ".join(capsys.readouterr().out.split())
        assert f"running — trained now by pid {other.pid} on this machine (at update 4 of 4)" in shown
    finally:
        other.kill()
        other.wait()
    assert main(["runs", "list", *store]) == 0
    listed = " ".join(capsys.readouterr().out.split())
    assert "interrupted" in listed and "4/4" in listed, "its claimant is gone; its checkpoint is at update 4"
    assert main(["train", *TINY_TRAIN, *store]) == 0
    assert "Resuming run 1 (" in capsys.readouterr().out
    (run,) = Store(tmp_path / "s.db").runs()
    assert run.status != "running" and "claimed_by" not in run.environment


def test_runs_show_of_an_unfinished_run_shows_the_evaluations_its_checkpoint_holds(capsys, tmp_path):
    """The store has a run's evaluations only once it has finished; `runs show` of a run in training (or an
    interrupted one) reads them from its checkpoint: the same table a finished run gets, up to that update."""
    import sqlite3

    store = ["--store", str(tmp_path / "s.db")]
    assert main(["train", *TINY_TRAIN, *store]) == 0
    capsys.readouterr()
    assert main(["runs", "show", "1", *store]) == 0
    finished = capsys.readouterr().out.split("Evaluations", 1)[1]
    with sqlite3.connect(tmp_path / "s.db") as db:  # as if it were still training: its checkpoint is at update 4
        db.execute("UPDATE runs SET status = 'running'")
        db.execute("DELETE FROM metrics")
        db.execute("DELETE FROM flows")
    assert main(["runs", "show", "1", *store]) == 0
    shown = capsys.readouterr().out
    assert "Evaluations so far (from its checkpoint at update 4)" in shown
    so_far = shown.split("Evaluations so far (from its checkpoint at update 4)", 1)[1]
    assert so_far.strip() and so_far.split("\n", 1)[1] == finished.split("\n", 1)[1], "the same rows"
    (tmp_path / "s.db.checkpoints" / "run-1.pt").write_bytes(b"not a checkpoint")
    assert main(["runs", "show", "1", *store]) == 0
    assert "Evaluations so far" not in capsys.readouterr().out, "an unreadable checkpoint: the store's (none)"
    assert main(["runs", "list", *store]) == 0
    assert " so far" not in capsys.readouterr().out


def test_runs_list_gives_an_unfinished_run_its_last_test_metric_so_far(capsys, tmp_path):
    import sqlite3

    from rnnlab.lab.store import Store

    store = ["--store", str(tmp_path / "s.db")]
    assert main(["train", *TINY_TRAIN, *store]) == 0
    (run,) = Store(tmp_path / "s.db").runs()
    with sqlite3.connect(tmp_path / "s.db") as db:  # as if it were still training, its checkpoint at update 4
        db.execute("UPDATE runs SET status = 'running', steps = NULL, metric_name = NULL, final_metric = NULL")
    capsys.readouterr()
    assert main(["runs", "list", *store]) == 0
    listed = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert f"{run.final_metric:.4g} so far" in listed, "its last evaluation is its final one here"
    assert f"4/4 {run.metric_name} " in listed, "its checkpoint's update and metric, which the store lacks"
    (tmp_path / "s.db.checkpoints" / "run-1.pt").write_bytes(b"not a checkpoint")
    assert main(["runs", "list", *store]) == 0
    listed = " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert "?/4 - -" in listed, "an unreadable checkpoint: nothing known of its progress"


def test_runs_show_lists_the_scores_a_task_adds_at_each_evaluation(capsys, tmp_path):
    store = ["--store", str(tmp_path / "s.db")]
    text = ["--task", "text", "--seq-len", "5", "--hidden", "4", "--steps", "2", "--eval-every", "1", "--no-progress"]
    assert main(["train", *text, *store]) == 0
    capsys.readouterr()
    assert main(["runs", "show", "1", *store]) == 0
    out = capsys.readouterr().out
    scores = out.split("The task's own scores")[1]
    assert all(f"bpc_{band}" in scores for band in ("spelling", "transition", "brackets", "agreement", "topic"))
    assert [line.split()[1] for line in scores.splitlines() if line[:1] == "│"] == ["0", "1", "2"]  # the steps
    assert main(["train", *TINY_TRAIN, *store]) == 0
    capsys.readouterr()
    assert main(["runs", "show", "2", *store]) == 0
    assert "The task's own scores" not in capsys.readouterr().out  # adding adds none


def test_runs_show_gives_the_settings_and_runs_delete_and_prune_clean_up(capsys, tmp_path):
    from rnnlab.lab.store import Store

    store = ["--store", str(tmp_path / "s.db")]
    assert main(["train", *TINY_TRAIN, "--optimizer", "rmsprop", "--lr", "0.003", "--clip-norm", "0.5", *store]) == 0
    assert main(["train", *TINY_TRAIN, "--seed", "1", *store]) == 0
    capsys.readouterr()
    assert main(["runs", "show", "1", *store]) == 0
    out = capsys.readouterr().out
    assert "rmsprop lr 0.003, alpha 0.99" in out and "global_norm at 0.5" in out and "batch size" in out
    checkpoints = tmp_path / "s.db.checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["run-1.pt", "run-2.pt"]
    assert main(["runs", "delete", "2", *store]) == 0
    assert [r.id for r in Store(tmp_path / "s.db").runs()] == [1]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["run-1.pt"]
    assert main(["runs", "delete", "7", *store]) == 2
    assert "no run 7" in capsys.readouterr().err
    assert main(["runs", "prune", *store]) == 0
    assert "Deleted 1 checkpoint(s) of finished runs" in capsys.readouterr().out
    assert list(checkpoints.iterdir()) == []
    assert Store(tmp_path / "s.db").check() == []
