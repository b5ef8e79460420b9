"""The remedy ladder (rnnlab.report.ladder): its table from a study's runs.csv as the module defines it, the
README's copy of it, its picture and its CLI. Run: `.venv/bin/pytest tests/test_ladder.py`.
"""

import csv
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.lab.study import load_study, make_study
from rnnlab.report.findings import readme_table
from rnnlab.report.ladder import END, START, ladder, ladder_grid, ladder_table

ROOT = Path(__file__).parents[1]

MINI = {
    "name": "mini-ladder",
    "claim": "c",
    "source": "s",
    "defaults": {"hidden_size": 4, "steps": 100, "eval_every": 50},
    "grid": {"task": ["adding", "copy"], "seq_len": [10, 20], "seed": [0, 1, 2]},
    "order": "seeds",
    "variants": [{"name": "LSTM", "cell": "lstm"}, {"name": "tanh", "cell": "rnn_tanh"}],
}

# (rung, task, T, seed) → (status, solved_at, steps, wall_time, horizon_first, horizon_last); absent: not run
RUNS = {
    ("LSTM", "adding", 10, 0): ("solved", 40, 40, 4.0, 3, 9),
    ("LSTM", "adding", 10, 1): ("solved", 60, 60, 6.0, 3, 9),
    ("LSTM", "adding", 10, 2): ("solved", 50, 50, 5.0, 3, 9),
    ("LSTM", "adding", 20, 0): ("solved", 80, 80, 16.0, 2, 19),
    ("LSTM", "adding", 20, 1): ("solved", 90, 90, 22.5, 4, 15),
    ("LSTM", "adding", 20, 2): ("completed", None, 100, 30.0, 3, 7),
    ("LSTM", "copy", 10, 0): ("solved", 70, 70, 7.0, 1, 5),
    ("LSTM", "copy", 10, 1): ("completed", None, 100, 10.0, 1, 2),
    ("LSTM", "copy", 20, 0): ("running", None, None, None, None, None),
    ("tanh", "adding", 10, 0): ("solved", 90, 90, 0.9, 2, 4),
    ("tanh", "adding", 10, 1): ("completed", None, 100, 1.0, 2, 2),
    ("tanh", "adding", 10, 2): ("completed", None, 100, 1.2, 2, 3),
}


def _write_csv(study, path: Path, runs=RUNS) -> None:
    """A runs.csv as `rnnlab runs export` writes it (the columns the ladder reads), for `runs` (RUNS above)."""
    columns = ["name", "status", "metric_name", "solved_at", "steps", "wall_time", "config_hash", "solved_threshold"]
    columns += ["horizon_first", "horizon_last", "config.task", "config.seq_len", "config.steps", "config.success"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for config in study.runs:
            key = (config.name.split(" · ")[0], config.task, config.seq_len, config.seed)
            if key not in runs:
                continue
            status, solved_at, steps, wall, first, last = runs[key]
            writer.writerow(
                {
                    "name": config.name,
                    "status": status,
                    "metric_name": "mse",
                    "solved_at": solved_at,
                    "steps": steps,
                    "wall_time": wall,
                    "config_hash": config.hash(),
                    "solved_threshold": 0.01,
                    "horizon_first": first,
                    "horizon_last": last,
                    "config.task": config.task,
                    "config.seq_len": config.seq_len,
                    "config.steps": config.steps,
                    "config.success": "task",
                }
            )


def test_the_table_gives_the_longest_length_a_majority_solved_the_horizons_and_the_cost(tmp_path):
    study = make_study(MINI)
    _write_csv(study, tmp_path / "mini-ladder" / "runs.csv")
    table = ladder(tmp_path, study=study).splitlines()
    assert table[2:] == [
        # adding: T = 20 solved by 2 of 3 (80, 90 → median 85); at T = 20 horizons 3 → 15; s/update 0.2, 0.25, 0.3
        "| LSTM | adding | T = 20 (2/3), 85 updates | 3 → 15 (T = 20) | 0.250 (T = 20) |",
        # copy: 1 of 2 finished at T = 10 is no majority; T = 20 has only an unfinished run
        "| LSTM | copy | – | 1 → 3.5 (T = 10) | 0.100 (T = 10) |",
        # 1 of 3 is no majority either
        "| tanh | adding | – | 2 → 3 (T = 10) | 0.0100 (T = 10) |",
        "| tanh | copy | no finished run (6 not run) | – | – |",
    ]
    picture = tmp_path / "mini-ladder" / "ladder.png"
    assert picture.stat().st_size > 10_000 and picture.read_bytes()[:4] == b"\x89PNG"


def test_an_unfinished_run_is_named_and_a_missing_csv_is_all_not_run(tmp_path):
    study = make_study(MINI)
    table = ladder_table(ladder_grid(study, tmp_path / "absent.csv"))
    assert table.count("no finished run (6 not run)") == 4
    mostly_running = {**MINI, "grid": {"task": ["copy"], "seq_len": [20], "seed": [0, 1]}}
    study = make_study(mostly_running)
    _write_csv(study, tmp_path / "runs.csv")
    assert "| LSTM | copy | no finished run (1 not run, 1 unfinished) | – | – |" in ladder_table(
        ladder_grid(study, tmp_path / "runs.csv")
    )


def test_a_seed_not_run_after_failing_a_shorter_length_counts_as_not_solved_there(tmp_path):
    """With `skip_after_failure: seq_len` the sweep does not run seed 2 at T = 20 (it failed T = 10): without
    the rule 2/2 finished seeds solved T = 20; with it, 2 of 3 did, and the tanh rung's T = 20 is 0/2 not run."""
    runs = {
        ("LSTM", "adding", 10, 0): ("solved", 40, 40, 4.0, 3, 9),
        ("LSTM", "adding", 10, 1): ("solved", 60, 60, 6.0, 3, 9),
        ("LSTM", "adding", 10, 2): ("completed", None, 100, 10.0, 3, 5),
        ("LSTM", "adding", 20, 0): ("solved", 80, 80, 16.0, 2, 19),
        ("LSTM", "adding", 20, 1): ("solved", 90, 90, 22.5, 4, 15),
        ("tanh", "adding", 10, 0): ("completed", None, 100, 1.0, 2, 2),
        ("tanh", "adding", 10, 1): ("solved", 90, 90, 0.9, 2, 4),
        ("tanh", "adding", 10, 2): ("completed", None, 100, 1.2, 2, 3),
    }
    rows = {}
    for skip in (False, True):
        study = make_study(
            {
                **MINI,
                "grid": {**MINI["grid"], "task": ["adding"]},
                **({"skip_after_failure": "seq_len"} if skip else {}),
            }
        )
        _write_csv(study, tmp_path / "runs.csv", runs)
        grid = ladder_grid(study, tmp_path / "runs.csv")
        rows[skip] = ladder_table(grid).splitlines()[2:]
        statuses = [r.status for r in grid["tanh"]["adding"][20]]
        assert statuses == (["skipped", "not run", "skipped"] if skip else ["not run"] * 3)
    assert rows[False][0] == "| LSTM | adding | T = 20 (2/2), 85 updates | 3 → 17 (T = 20) | 0.225 (T = 20) |"
    assert rows[True][0] == "| LSTM | adding | T = 20 (2/3), 85 updates | 3 → 17 (T = 20) | 0.225 (T = 20) |"
    assert rows[True][1] == rows[False][1] == "| tanh | adding | – | 2 → 3 (T = 10) | 0.0100 (T = 10) |"


def test_the_readme_holds_the_generated_ladder():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_table(readme, START, END) == ladder(ROOT / "docs" / "studies", figure=False), (
        "README.md's ladder table differs from docs/studies/ladder/runs.csv: run "
        "`rnnlab studies --ladder --readme README.md` and review the change"
    )
    rungs = {config.name.split(" · ")[0] for config in load_study("ladder").runs}
    assert {"tanh RNN", "IRNN", "LSTM", "LSTM chrono", "GRU", "IndRNN", "minGRU", "minLSTM"} <= rungs


def test_the_cli_writes_the_ladder_between_its_markers_and_refuses_both_tables(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\nrest\n", encoding="utf-8")
    assert main(["studies", "--ladder", "--root", str(tmp_path), "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert "ladder table updated" in capsys.readouterr().out
    assert text.startswith(f"intro\n{START}\n| rung | task |") and text.endswith(f"{END}\nrest\n")
    assert (tmp_path / "ladder" / "ladder.png").exists()
    assert main(["studies", "--findings", "--ladder"]) == 2
    assert "give --findings or --ladder, not both" in capsys.readouterr().err
    readme.write_text("no markers\n", encoding="utf-8")
    assert main(["studies", "--ladder", "--root", str(tmp_path), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert f"must hold the table between one {START}" in err and "\n" not in err.strip()


@pytest.mark.parametrize("rung", ["IndRNN", "minGRU", "minLSTM"])
def test_the_element_wise_rungs_run_with_their_own_initialisation(rung):
    """The ladder's IndRNN/minGRU/minLSTM rungs name no init: they get each module's own (`init: default`)."""
    config = next(c for c in load_study("ladder").runs if c.name.startswith(f"{rung} · "))
    assert config.resolved_init == "default"
