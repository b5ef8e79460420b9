"""The README's table of reproduced findings: generated from the study files and their committed runs.csv
(rnnlab.report.findings), equal to what README.md holds between its markers, numbers formatted as the module
defines, and the study-file keys behind it validated. Run: `.venv/bin/pytest tests/test_findings.py`.
"""

import csv
import math
import statistics
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.lab.config import ConfigError
from rnnlab.lab.study import load_study, make_study
from rnnlab.report.findings import (
    END,
    START,
    CsvRun,
    finding_row,
    findings_table,
    readme_table,
    study_numbers,
    update_readme,
)
from rnnlab.report.format import hours_minutes, sig3

ROOT = Path(__file__).parents[1]


def test_the_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_table(readme) == findings_table(ROOT / "docs" / "studies"), (
        "README.md's findings table differs from the study files and runs.csv: run "
        "`rnnlab studies --findings --readme README.md` and review the change"
    )


def test_the_copy_ratio_is_the_median_of_every_seed_against_the_closed_form_baseline():
    """F4: final loss / (10·log 8 / (T + 20)) over the three seeds at T = 100 (each stopped when it first beat
    the baseline by 10 %), recomputed here from the CSV's losses with the baseline's closed form, not from its
    baseline column."""
    with (ROOT / "docs" / "studies" / "copy-lengths" / "runs.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["config.seq_len"] == "100"]
    ratios = sorted(float(r["final_loss"]) / (10 * math.log(8) / 120) for r in rows)
    assert len(ratios) == 3 and [round(v, 3) for v in ratios] == [0.896, 0.899, 0.899]
    expected = f"final loss/baseline {sig3(statistics.median(ratios))} ({sig3(ratios[0])}–{sig3(ratios[-1])})"
    assert expected == "final loss/baseline 0.899 (0.896–0.899)"
    row = next(line for line in findings_table(ROOT / "docs" / "studies").splitlines() if "**F4**" in line)
    assert f"LSTM, T = 100: 3/3 solved, median 10250 updates (6250–19500), budget 50000; {expected};" in row


def _run(name="A · seed=0", status="completed", final=0.5, solved_at=None, criterion=True, **kwargs) -> CsvRun:
    fields = dict(
        name=name,
        status=status,
        metric_name="mse",
        final_metric=final,
        final_loss=final,
        solved_at=solved_at,
        wall_time=10.0,
        seq_len=100,
        budget=1000,
        beats_baseline=False,
        baseline_loss=None,
        has_criterion=criterion,
    )
    return CsvRun(**{**fields, **kwargs})


def test_numbers_per_variant_follow_the_documented_format():
    runs = [
        _run("A · seed=0", "solved", 0.004, 250),
        _run("A · seed=1", "solved", 0.006, 500),
        _run("A · seed=2", "completed", 0.16555),
        _run("A · seed=3", "diverged", None),
        _run("A · seed=4", "running", None),
        _run("B · seed=0", "solved", 0.001, 300),
        _run("B · seed=1", "solved", 0.001, 300, seq_len=200),
    ]
    assert study_numbers(runs) == (
        "A: 2/4 solved, median 375 updates (250–500), budget 1000; unsolved final mse 0.166, 1 diverged, "
        "1 unfinished; B, T = 100: 1/1 solved, at 300 updates, budget 1000; B, T = 200: 1/1 solved, at 300 "
        "updates, budget 1000"
    )


def test_a_run_that_met_its_criterion_and_ran_on_counts_as_solved_at_its_first_crossing():
    """stop_when_solved: false — the run used its budget ('completed') and records where it first met it."""
    runs = [
        _run("D · seed=0", "completed", 0.002, 400),
        _run("D · seed=1", "solved", 0.008, 600),
        _run("D · seed=2", "completed", 0.3),
    ]
    assert study_numbers(runs) == "D: 2/3 solved, median 500 updates (400–600), budget 1000; unsolved final mse 0.300"


def test_a_median_halfway_between_two_counts_rounds_up_and_the_baseline_ratio_covers_every_seed():
    runs = [
        _run("C · seed=0", "solved", 0.1, 250, beats_baseline=True, baseline_loss=0.2),
        _run("C · seed=1", "solved", 0.2, 375, beats_baseline=True, baseline_loss=0.2),
        _run("C · seed=2", "completed", 0.19, beats_baseline=True, baseline_loss=0.2),
    ]
    assert study_numbers(runs) == (
        "C: 2/3 solved, median 313 updates (250–375), budget 1000; final loss/baseline 0.950 (0.500–1.00)"
    )


def test_a_study_without_a_criterion_gives_its_final_metric():
    runs = [
        _run(f"k=5 · seed={s}", final=v, criterion=False, metric_name="bpc") for s, v in enumerate([1.3, 1.25, 1.4])
    ]
    assert study_numbers(runs) == "k=5: final bpc 1.30 (1.25–1.40), 3 runs of 1000 updates"


def test_three_significant_digits_and_hours_minutes():
    assert [sig3(v) for v in (0.95833, 1.0, 0.1646, 6789.0, 0.000123, 0.9996, 12.345)] == [
        "0.958",
        "1.00",
        "0.165",
        "6790",
        "0.000123",
        "1.00",
        "12.3",
    ]
    assert [hours_minutes(s) for s in (0, 29, 31, 1201, 4980, 36000)] == [
        "0:00",
        "0:00",
        "0:01",
        "0:20",
        "1:23",
        "10:00",
    ]


def test_a_study_not_run_yet_says_so_in_words_that_do_not_depend_on_the_root(tmp_path, monkeypatch):
    row = next(line for line in findings_table(tmp_path).splitlines() if "**F2**" in line)
    assert "not run yet (no adding-t100/runs.csv)" in row and "| – |" in row
    monkeypatch.chdir(tmp_path.parent)
    assert findings_table(tmp_path.name) == findings_table(tmp_path), "a relative root gives the same table"


def _csv(path: Path, rows: list[dict]) -> Path:
    columns = ["name", "status", "metric_name", "final_metric", "final_loss", "solved_at", "wall_time"]
    columns += ["config.seq_len", "config.steps", "solved_threshold", "config_hash"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows({"metric_name": "mse", "solved_threshold": "0.01", "wall_time": "60", **r} for r in rows)
    return path


def _two_seed_study(steps: int):
    data = {"name": "s", "defaults": {"task": "adding", "seq_len": 50, "steps": steps}, "grid": {"seed": [0, 1]}}
    return make_study({**data, "variants": [{"name": "LSTM", "cell": "lstm"}], "finding": "F1 x", "paper": "p"})


def test_only_the_runs_of_the_study_files_current_setting_count(tmp_path):
    """A study file changed after its runs.csv was written (a longer budget): the earlier runs are not counted
    under the new setting's words; a run of the new setting the CSV lacks is 'not run'."""
    earlier, current = _two_seed_study(1000), _two_seed_study(5000)

    def row(config, **fields):
        return {
            "name": config.name,
            "config.seq_len": 50,
            "config.steps": config.steps,
            "config_hash": config.hash(),
            **fields,
        }

    done = {"status": "solved", "final_metric": "0.005", "final_loss": "0.005", "solved_at": "4000"}
    stale = {"status": "completed", "final_metric": "0.17", "final_loss": "0.17"}
    path = _csv(tmp_path / "runs.csv", [row(c, **stale) for c in earlier.runs])
    assert "the current setting has not run yet (" in finding_row(current, path)
    assert "(its runs.csv holds 2 runs of an earlier setting)" in finding_row(current, path)
    assert "| 0:00 |" in finding_row(current, path), "the earlier runs' compute is not counted either"
    _csv(path, [row(c, **stale) for c in earlier.runs] + [row(current.runs[0], **done)])
    assert (
        "| LSTM: 1/1 solved, at 4000 updates, budget 5000, 1 not run; runs.csv also holds 2 runs of an earlier "
        "setting, not counted |" in finding_row(current, path)
    )
    assert "| 0:01 |" in finding_row(current, path)


def test_every_bundled_finding_study_has_its_keys_and_others_stay_valid():
    assert load_study("vanishing").finding is None and load_study("demo").verdict is None
    f4 = load_study("copy-lengths")
    assert f4.finding.startswith("F4 ") and f4.paper and f4.verdict.startswith("**partly**")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"finding": "three"}, "'finding' must start with its number"),
        ({"finding": 3}, "'finding' must be one line of text"),
        ({"paper": ""}, "'paper' must be one line of text"),
        ({"verdict": "two\nlines"}, "'verdict' must be one line of text"),
        ({"verdikt": "x"}, "unknown key 'verdikt'"),
    ],
)
def test_bad_finding_keys_are_one_line_errors(keys, message):
    with pytest.raises(ConfigError, match=message):
        make_study({"name": "s", "defaults": {"task": "adding"}, **keys})


def test_the_cli_prints_the_table_and_rewrites_a_readme_between_its_markers(tmp_path, capsys):
    root = str(ROOT / "docs" / "studies")
    assert main(["studies", "--findings", "--root", root]) == 0
    assert capsys.readouterr().out.strip() == findings_table(root)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{START}\nold table\n{END}\n\nafter\n", encoding="utf-8")
    assert main(["studies", "--findings", "--root", root, "--readme", str(readme)]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text == f"# x\n\nbefore\n\n{START}\n{findings_table(root)}\n{END}\n\nafter\n"
    assert "findings table updated" in capsys.readouterr().out
    assert not update_readme(readme, findings_table(root)), "a second run changes nothing"
    readme.write_text("no markers\n", encoding="utf-8")
    assert main(["studies", "--findings", "--root", root, "--readme", str(readme)]) == 2
    assert "between one <!-- findings:start -->" in capsys.readouterr().err
