"""The HTML report and the demo: self-contained page, escaping of hostile names, rendering in a real
browser (headless Chromium, skipped with a reason when it is not installed), and `rnnlab demo --quick`
end to end. Run: `.venv/bin/pytest tests/test_report.py`.
"""

import re
import shutil
import subprocess

import pytest

from rnnlab.cli import main
from rnnlab.lab.store import Store
from rnnlab.lab.study import make_study
from rnnlab.lab.sweep import run_study
from rnnlab.report.html import build_report

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
TINY = {"task": "adding", "hidden_size": 8, "steps": 20, "eval_every": 10, "batch_size": 16}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    store = Store(folder / "s.db")
    study = make_study(
        {
            "name": "hostile",
            "claim": HOSTILE,
            "source": "<b>bold</b>",
            "defaults": TINY,
            "grid": {"seq_len": [10, 20]},
            "variants": [{"name": HOSTILE, "cell": "gru"}, {"name": "tanh", "cell": "rnn_tanh"}],
        }
    )
    run_study(study, store, workers=1, progress=False)
    return build_report(store, "hostile", folder / "out")


def test_report_is_self_contained_with_every_plot(report):
    page = report.html.read_text()
    assert {p.name for p in report.images} == {
        "gradient-profiles.png",
        "gradient-heatmaps.png",
        "learning-curves.png",
        "success-vs-length.png",
        "gradient-norms.png",
    }
    for image in report.images:
        assert image.read_bytes()[:4] == b"\x89PNG"
    assert page.count('src="data:image/png;base64,') == 5
    assert "http://" not in page and "https://" not in page, "no network needed"
    assert "Every run" in page and "Solved?" in page and "Exploding or vanishing?" in page


def test_user_strings_are_escaped(report):
    page = report.html.read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert len(re.findall(r"<script", page)) == 0


def test_report_renders_in_headless_chromium_with_images_loaded(report, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); the rendering check needs a real browser")
    done = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            report.html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-500:]
    images = re.findall(r"<img[^>]*>", done.stdout)
    assert len(images) == 5
    assert all('data-loaded="1"' in tag for tag in images), "every embedded image decoded and loaded"


def test_report_of_an_unknown_study_is_a_clear_error(tmp_path, capsys):
    Store(tmp_path / "s.db").close()
    assert main(["report", "nope", "--store", str(tmp_path / "s.db")]) == 2
    assert "no study 'nope'" in capsys.readouterr().err
    assert main(["report", "../../etc", "--store", str(tmp_path / "s.db")]) == 2
    assert "is not allowed" in capsys.readouterr().err


def test_demo_quick_end_to_end(tmp_path, capsys):
    status = main(
        [
            "demo",
            "--quick",
            "--no-progress",
            "--workers",
            "2",
            "--store",
            str(tmp_path / "s.db"),
            "--out",
            str(tmp_path / "demo"),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "The vanishing gradient, untrained" in out and "Verdict" in out
    assert (tmp_path / "demo" / "index.html").exists() and (tmp_path / "demo" / "vanishing-gradient.png").exists()
    runs = Store(tmp_path / "s.db").runs(study="demo-quick")
    assert len(runs) == 10 and all(r.status in ("completed", "solved") for r in runs)


def test_report_with_several_seeds_shows_success_rates_and_spread(tmp_path):
    # Three seeds of two variants: the table must count every seed and give the median (min–max).
    store = Store(tmp_path / "s.db")
    study = make_study(
        {
            "name": "seeds",
            "defaults": {**TINY, "seq_len": 10, "steps": 40},
            "grid": {"seed": [0, 1, 2]},
            "variants": [{"name": "GRU", "cell": "gru"}, {"name": "tanh", "cell": "rnn_tanh"}],
        }
    )
    run_study(study, store, workers=1, progress=False)
    report = build_report(store, "seeds", tmp_path / "out", command="rnnlab report seeds --store s.db")
    page = report.html.read_text()
    assert page.count("/3 solved") == 2, "one cell per variant, each over its three seeds"
    finals = sorted(r.final_metric for r in store.runs(study="seeds") if r.name.startswith("GRU"))
    median_range = f"{finals[1]:.4g} ({finals[0]:.4g}–{finals[2]:.4g})"
    assert median_range in page
    assert "rnnlab report seeds --store s.db" in page
    assert {p.name for p in report.images} >= {"learning-curves.png", "success-vs-length.png"}


def test_success_cell_counts_seeds_and_reports_updates_to_solve():
    from rnnlab.lab.store import Run
    from rnnlab.report.success import success_cell

    def run(status, solved_at, final):
        return Run(1, "x", "s", "h", {}, status, 0.0, 1.0, 10, "mse", final, final, solved_at, None, 0.0, 1.0, {}, None)

    text, all_solved = success_cell(
        [run("solved", 500, 0.009), run("solved", 1500, 0.008), run("completed", None, 0.16)]
    )
    assert text == "2/3 solved · updates 1000 (500–1500) · unsolved final mse 0.16"
    assert not all_solved
    assert success_cell([run("solved", 250, 0.001)]) == ("1/1 solved · updates 250", True)


def test_runs_are_grouped_by_everything_but_seed_and_length():
    from rnnlab.lab.store import Run
    from rnnlab.lab.study import variant_name

    def named(name):
        return Run(1, name, "s", "h", {}, "solved", 0.0, 1.0, 1, "mse", 0.0, 0.0, 1, None, 0.0, 1.0, {}, None)

    assert variant_name(named("IRNN · lr=0.001 · seed=2").name) == "IRNN · lr=0.001"
    assert variant_name(named("LSTM · seq_len=200 · seed=0").name) == "LSTM"
    assert variant_name(named("GRU").name) == "GRU"


def test_budget_comparison_uses_characters_seen_and_training_time():
    from rnnlab.lab.store import Run
    from rnnlab.report.budgets import Curve, _chars, _seconds, best_within, characters_per_update

    run = Run(1, "k", "s", "h", {"seq_len": 20, "batch_size": 32}, "completed", 0, 1, 3, "bpc", 2.0, 1.4, None, None,
              0.0, 1.0, {}, None)  # fmt: skip
    assert characters_per_update(run) == 640
    assert (
        characters_per_update(Run(**{**run.__dict__, "config": {"seq_len": 20, "bptt_k1": 5, "batch_size": 2}})) == 10
    )
    curve = Curve(run, chars=[0, 640, 1280, 1920], seconds=[0.0, 1.0, 2.5, 4.0], values=[4.1, 2.5, 2.2, 2.3])
    assert best_within(curve, _chars, 1280) == 2.2  # early stopping within the budget
    assert best_within(curve, _chars, 1000) == 2.5
    assert best_within(curve, _seconds, 4.0) == 2.2  # the later, worse evaluation is not chosen
    assert best_within(curve, _seconds, -1) is None


def test_report_of_a_stream_study_compares_windows_at_equal_budgets(tmp_path, monkeypatch):
    store = Store(tmp_path / "s.db")
    study = make_study(
        {
            "name": "tbptt",
            "defaults": {"task": "text", "hidden_size": 8, "batch_size": 4, "cell": "gru"},
            "variants": [
                {"name": "k=5", "seq_len": 5, "steps": 8, "eval_every": 4},
                {"name": "k=10", "seq_len": 10, "steps": 4, "eval_every": 2},
            ],
        }
    )
    run_study(study, store, workers=1, progress=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the report built the task")

    monkeypatch.setattr("rnnlab.lab.tasks.text.Text.__init__", refuse)  # everything comes from the store
    report = build_report(store, "tbptt", tmp_path / "out")
    page = report.html.read_text()
    assert "Which variant wins under which budget?" in page
    assert "<th>40 characters</th>" in page  # 8 updates × 5 × 4 = 40 characters = 4 × 10 × 4: both reached it
    assert "budget-curves.png" in {p.name for p in report.images}
    # Each band of the text task's test stream, at the 40 characters both reached.
    assert "Which variant learns which dependency?" in page and "band-curves.png" in {p.name for p in report.images}
    header = "".join(f"<th>{band}</th>" for band in ("agreement", "brackets", "spelling", "topic", "transition"))
    assert f"<tr><th>variant</th>{header}<th>other</th></tr>" in page
    (run,) = [r for r in store.runs(study="tbptt") if r.name == "k=10"]
    assert "at 160 characters seen" in page  # every evaluation of both runs is within the budget
    best = min((v, step) for step, _, v in store.metrics(run.id, "test_metric"))[1]
    kept = {name: value for step, name, value in store.metrics(run.id) if step == best}
    spelling = kept["bpc_spelling"]
    assert f"{spelling:.3f} ({spelling:.3f}–{spelling:.3f})" in page


def test_band_table_reads_each_band_at_the_evaluation_early_stopping_keeps(tmp_path):
    from rnnlab.lab.store import Run
    from rnnlab.report.budgets import Curve, band_section

    run = Run(1, "k", "s", "h", {"seq_len": 5, "batch_size": 20}, "completed", 0, 1, 2, "bpc", 2.0, 1.4, None, None,
              0.0, 1.0, {}, None)  # fmt: skip
    chars, seconds = [0, 100, 200, 300], [0.0, 1.0, 2.0, 3.0]

    def curve(values, spelling, topic):
        return Curve(run, chars, seconds, values, {"spelling": spelling, "topic": topic, "other": [3.0] * 4})

    by_variant = {
        "k=5": [  # early stopping within 200 characters keeps the second evaluation of one seed, the third of the other
            curve([4.0, 2.0, 2.5, 1.0], [4.1, 1.5, 1.4, 0.1], [4.2, 3.0, 2.0, 0.1]),
            curve([4.0, 2.2, 2.1, 1.0], [4.1, 1.7, 1.6, 0.1], [4.2, 3.1, 2.9, 0.1]),
        ],
        "k=50": [curve([4.0, 3.0, 2.8, 1.0], [4.1, 2.6, 2.5, 0.1], [4.2, 2.6, 2.5, 0.1])],
    }
    figures, table = band_section(by_variant, 200, tmp_path)
    assert [f[1].name for f in figures] == ["band-curves.png"] and figures[0][1].stat().st_size > 0
    assert "<tr><th>variant</th><th>spelling</th><th>topic</th><th>other</th></tr>" in table
    assert (
        "<tr><th>k=5</th><td><strong>1.550 (1.500–1.600)</strong></td><td>2.950 (2.900–3.000)</td>"
        "<td><strong>3.000 (3.000–3.000)</strong></td></tr>"
    ) in table
    assert "<tr><th>k=50</th><td>2.500 (2.500–2.500)</td><td><strong>2.500 (2.500–2.500)</strong></td>" in table
    assert "at 200 characters seen" in table
    assert band_section({"k=5": [Curve(run, chars, seconds, [4.0] * 4)]}, 200, tmp_path) == ([], "")


def test_the_tasks_memoryless_levels_are_stored_with_each_run_and_read_from_the_store(tmp_path):
    import math

    store = Store(tmp_path / "s.db")
    study = make_study({"name": "levels", "defaults": {**TINY, "task": "copy", "seq_len": 10, "steps": 10}})
    run_study(study, store, workers=1, progress=False)
    (run,) = store.runs(study="levels")
    assert store.metrics(run.id, "baseline_loss") == [(0, "baseline_loss", pytest.approx(10 * math.log(8) / 30))]
    assert store.metrics(run.id, "chance") == [(0, "chance", pytest.approx(1 / 8))]


def test_a_baseline_study_reports_unsolved_losses_relative_to_the_baseline():
    from rnnlab.lab.store import Run
    from rnnlab.report.success import success_cell

    def run(loss):
        return Run(1, "x", "s", "h", {}, "completed", 0, 1, 10, "copy_accuracy", 0.13, loss, None, None, 0, 1, {}, None)

    text, _ = success_cell([run(0.1733), run(0.1656), run(0.1559)], baseline_loss=0.1733)
    assert text == "0/3 solved · unsolved final loss/baseline 0.9556 (0.8996–1)"


def test_a_single_train_run_gets_its_own_report(tmp_path, capsys):
    store = ["--store", str(tmp_path / "s.db")]
    train = ["train", "--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "4", "--eval-every", "2"]
    assert main([*train, "--no-progress", *store]) == 0
    run_id = Store(tmp_path / "s.db").runs()[0].id
    assert main(["report", "--run", str(run_id), "--out", str(tmp_path / "r"), *store]) == 0
    assert f"Report of run {run_id} written to" in capsys.readouterr().out
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<h2>Configuration</h2>" in page and "<th>hidden_size</th><td>4</td>" in page
    # profiles, heatmap, learning curve, success (the adding task has a success criterion), gradient norms
    assert page.count('src="data:image/png;base64,') == 5
    assert f"<title>rnnlab: Run {run_id} (" in page and f"rnnlab report --run {run_id}" in page
    assert "Claim." not in page


def test_a_monitors_saved_history_can_be_reported(tmp_path):
    """A run without a task (the user's own training, saved from a monitor) has gradient flows only."""
    import torch

    import rnnlab
    from rnnlab.integrations.store import save_monitor
    from rnnlab.report.html import build_run_report

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.GRU(3, 5))
    monitor = rnnlab.monitor(model, every=1, warn=False)
    for _ in range(3):
        model(torch.randn(7, 2, 3))[0].sum().backward()
    (run_id,) = save_monitor(monitor, tmp_path / "s.db")
    report = build_run_report(Store(tmp_path / "s.db"), run_id, tmp_path / "r")
    assert {p.name for p in report.images} == {"gradient-profiles.png", "gradient-heatmaps.png"}
    assert "Solved?" not in report.html.read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "needs a study name or --run ID"),
        (["demo", "--run", "1"], "needs a study name or --run ID"),
        (["--run", "99"], "no run 99"),
    ],
)
def test_report_needs_exactly_one_study_or_run(argv, message, tmp_path, capsys):
    Store(tmp_path / "s.db").close()
    assert main(["report", *argv, "--store", str(tmp_path / "s.db")]) == 2
    assert message in capsys.readouterr().err


def test_the_report_reads_the_store_only():
    """No module of rnnlab.report imports the tasks, the trainer or the task facts (anywhere in the module):
    what a report needs of a task is stored with each run."""
    import ast
    from pathlib import Path

    import rnnlab.report

    forbidden = ("rnnlab.lab.tasks", "rnnlab.lab.trainer", "rnnlab.lab.task_facts")
    for path in Path(rnnlab.report.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not [n for n in names if n.startswith(forbidden)], f"{path.name} imports {names}"


def test_a_new_run_stores_its_tasks_facts(tmp_path):
    store = Store(tmp_path / "s.db")
    study = make_study(
        {
            "name": "facts",
            "defaults": {**TINY, "seq_len": 10, "steps": 4, "eval_every": 2},
            "variants": [{"name": "digits", "task": "digits", "seq_len": 8}, {"name": "copy", "task": "copy"}],
        }
    )
    run_study(study, store, workers=1, progress=False)
    facts = {r.name: (r.higher_is_better, r.solved_threshold, r.stream_task) for r in store.runs(study="facts")}
    assert facts == {"digits": (True, 0.9, False), "copy": (True, 0.99, False)}


def test_a_study_run_in_parts_says_when_where_and_what_is_unfinished():
    from rnnlab.lab.store import Run
    from rnnlab.report.sittings import sittings_section

    day = 86400.0

    def run(name, status, wall, parts):
        environment = {"parts": parts} if parts is not None else {}
        run_id = ["a", "b", "old", "c"].index(name) + 1
        return Run(
            run_id, name, "s", "h", {}, status, 0, 1, 30, "mse", 0.1, 0.1, None, None, 0, wall, environment, None
        )

    def part(machine, first, last, seconds, started):
        return {"machine": machine, "from_step": first, "to_step": last, "seconds": seconds, "started_at": started}

    runs = [
        run("a", "completed", 30.0, [part("A", 0, 30, 30.0, 1000.0)]),
        run("b", "completed", 50.0, [part("A", 0, 10, 20.0, 1031.0), part("B", 10, 30, 30.0, 1000.0 + 2 * day)]),
        run("old", "solved", 100.0, None),  # stored before rnnlab kept parts
        run("c", "running", None, None),
    ]
    page = sittings_section(runs, "rnnlab sweep s --store x.db", checkpointed=frozenset({4}))
    assert "Ran in parts: 2 sittings (training periods more than 1 h apart); 1 run resumed from its checkpoint" in page
    assert (
        "1970-01-01 00:16 UTC: 2 runs, 40 updates on A" in page
        and "1970-01-03 00:16 UTC: 1 run, 20 updates on B" in page
    )
    assert "<tr><td>A</td><td>2</td><td>40</td><td>50 s</td></tr>" in page
    assert "<tr><td>B</td><td>1</td><td>20</td><td>30 s</td></tr>" in page
    assert "<td>not recorded (run stored before rnnlab kept its parts)</td><td>1</td><td>30</td><td>100 s</td>" in page
    assert "Compute time: 0:03 (h:mm; 180 s), the sum of the 3 finished runs' wall times (a run" in page
    assert "1 of 4 runs are not finished" in page and "<code>rnnlab sweep s --store x.db</code>" in page
    assert "<li>c: unfinished (running or interrupted) — resumes from its checkpoint</li>" in page
    never = sittings_section(runs, "x", checkpointed=frozenset())  # claimed by a sweep stopped before it trained
    assert "<li>c: claimed but not trained yet (no checkpoint) — starts from the beginning</li>" in never
    assert "<li>c: unfinished (running or interrupted)</li>" in sittings_section(runs, "x"), "not known: not said"
    one = sittings_section(runs[:1], "x")
    assert "Ran in one sitting, starting 1970-01-01 00:16 UTC." in one and "not finished" not in one
    resumed_soon = run("b", "completed", 50.0, [part("A", 0, 10, 20.0, 1031.0), part("A", 10, 30, 30.0, 1600.0)])
    soon = sittings_section([runs[0], resumed_soon], "x")
    assert "Ran in one sitting (no pause of more than 1 h); 1 run resumed from its checkpoint." in soon
    assert "sittings" not in soon.split("</p>")[0], "no plural for one sitting"


def test_the_report_lists_the_study_files_runs_the_store_lacks(tmp_path, capsys):
    """Run part of a study; its report names the runs still to run and those a shorter failure made
    unnecessary (skip_after_failure), from the study file, and nothing for a store of another setting."""
    import yaml

    from rnnlab.lab.study import select_runs

    data = {
        "name": "lengths",
        "claim": "Open: does tanh solve it?",
        "defaults": {**TINY, "steps": 2, "eval_every": 1},  # 2 updates never solve adding (MSE < 0.01)
        "grid": {"seq_len": [5, 10, 20], "seed": [0, 1]},
        "skip_after_failure": "seq_len",
        "variants": [{"name": "tanh", "cell": "rnn_tanh"}],
    }
    study = make_study(data)
    store = Store(tmp_path / "s.db")
    run_study(select_runs(study, {"seed": ["0"], "seq_len": ["5"]}), store, workers=1, progress=False)
    page = build_report(store, "lengths", tmp_path / "r", plan=study).html.read_text(encoding="utf-8")
    assert "<strong>3 of 6 runs are not finished</strong>" in page
    assert all(f"<li>tanh · seq_len={t} · seed=1: not run yet</li>" in page for t in (5, 10, 20))
    assert "2 runs of the study will not run: a shorter version of the same configuration finished unsolved" in page
    for t in (10, 20):  # 20 through 10, which did not run either
        assert f"<li>tanh · seq_len={t} · seed=0: tanh · seq_len=5 · seed=0 was not solved</li>" in page
    assert "seq_len=10 · seed=0: not run yet" not in page

    without = build_report(store, "lengths", tmp_path / "r0").html.read_text(encoding="utf-8")
    assert "not finished" not in without and "will not run" not in without  # the store alone knows no plan
    rewritten = make_study({**data, "claim": "Decided: tanh solves none.", "source": "a paper, p. 2"})
    page = build_report(store, "lengths", tmp_path / "r3", plan=rewritten).html.read_text(encoding="utf-8")
    assert "<strong>Claim.</strong> Decided: tanh solves none.</p>" in page, "the study file's text, not the sweep's"
    assert "<strong>Source.</strong> a paper, p. 2</p>" in page
    assert "<strong>Claim.</strong> Open: does tanh solve it?</p>" in without, "without a plan: the sweep's"
    other = make_study({**data, "defaults": {**data["defaults"], "hidden_size": 9}})
    page = build_report(store, "lengths", tmp_path / "r1", plan=other).html.read_text(encoding="utf-8")
    assert "not finished" not in page and "will not run" not in page  # none of its runs are in this store

    path = tmp_path / "lengths.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    store.close()
    args = ["report", "lengths", "--store", str(tmp_path / "s.db"), "--out", str(tmp_path / "r2")]
    assert main([*args, "--study-file", str(path)]) == 0
    assert "3 of 6 runs are not finished" in (tmp_path / "r2" / "index.html").read_text(encoding="utf-8")
    path.write_text(yaml.safe_dump({**data, "name": "other"}), encoding="utf-8")
    assert main([*args, "--study-file", str(path)]) == 2
    assert f"study file '{path}' is study 'other', not 'lengths'" in capsys.readouterr().err
    assert main(["report", "--run", "1", "--store", str(tmp_path / "s.db"), "--study-file", str(path)]) == 2
    assert "--study-file goes with a study name, not with --run" in capsys.readouterr().err


def test_a_run_that_continued_another_counts_only_its_own_updates_and_seconds(tmp_path):
    """A run of a larger budget keeps the parts of the run it continued: the report's compute, machines and
    sittings, and runs.csv's own_wall_time, count those once."""
    from rnnlab.lab.store import Run
    from rnnlab.lab.store.records import own_parts, own_wall_times
    from rnnlab.report.sittings import sittings_section

    def part(first, last, seconds, started):
        return {"machine": "A", "from_step": first, "to_step": last, "seconds": seconds, "started_at": started}

    def run(run_id, name, wall, parts):
        env = {"parts": parts}
        return Run(run_id, name, "s", name, {}, "completed", 0, 1, 30, "mse", 0.1, 0.1, None, None, 0, wall, env, None)

    first = [part(0, 100, 40.0, 1000.0)]
    runs = [
        run(1, "short", 40.0, first),
        run(2, "long", 70.0, [*first, part(100, 200, 30.0, 5000.0)]),  # continued run 1
        run(3, "other seed", 50.0, [part(0, 100, 50.0, 1000.0)]),  # same steps, its own sitting
    ]
    assert own_wall_times(runs) == {1: 40.0, 2: 30.0, 3: 50.0}
    assert [len(parts) for parts in own_parts(runs).values()] == [1, 1, 1]
    page = sittings_section(runs, "x")
    assert "Compute time: 0:02 (h:mm; 120 s), the sum of the 3 finished runs' wall times" in page
    assert "<tr><td>A</td><td>3</td><td>300</td><td>120 s</td></tr>" in page, "updates 0–100 of 'long' once"
    assert "0 runs resumed" in page, "continuing another run's budget is not resuming"
