"""The benchmark scripts keep working: each runs on its smallest configuration and writes what it promises.
No timing is asserted here (this machine is shared and noisy); speed lives in the scripts' own output."""

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import bench_cornn
import bench_exprnn
import bench_grid
import bench_indrnn
import bench_omp_wait
import bench_peephole
import bench_scan


def test_the_grid_benchmark_writes_json_table_and_heatmap(tmp_path):
    heatmap = tmp_path / "grid.png"
    assert bench_grid.main(["--sections", "smoke", "--budget", "0", "--block", "1", "--out", str(tmp_path),
                            "--heatmap", str(heatmap)]) == 0  # fmt: skip
    data = json.loads((tmp_path / "grid.json").read_text())
    assert [r["cell"] for r in data["results"]] == ["rnn_tanh", "lstm", "gru"]
    for r in data["results"]:
        assert r["rounds"] == 4 and all(len(rounds) == 4 for rounds in r["samples_ms"].values())
        assert r["ratio"] == pytest.approx(r["medians_ms"]["rnnlab"] / r["medians_ms"]["torch+ftz-all"])
    table = (tmp_path / "grid.md").read_text().splitlines()
    assert len(table) == 2 + 3 and "| T=6 B=2 I=3 H=8 | lstm |" in table[3]
    assert not heatmap.exists()  # the smoke shape is not on the H × B grid the heatmap draws


def test_each_variant_runs_in_every_position_of_a_round_equally_often(monkeypatch):
    """The variant after torch.nn's runs on the caches torch.nn filled: a fixed order biased the comparison.
    rnnlab with and without recording run as adjacent pairs, in alternating order."""
    calls = []
    fake = {v: ((lambda v=v: calls.append(v)), None) for v in bench_grid.VARIANTS}
    monkeypatch.setattr(bench_grid, "make_steps", lambda cell, shape: fake)
    monkeypatch.setattr(bench_grid, "timed", lambda step, flush: step() or 1e-3)
    result = bench_grid.measure("lstm", bench_grid.Shape(6, 2, 3, 8), budget_s=0, block=2)
    rounds = calls[len(bench_grid.VARIANTS) :]  # after the warm-up
    # A unit is one untimed and 2 timed steps of a torch variant, or two untimed and 2 pairs of rnnlab's.
    per_round, i = [], 0
    for _ in range(result["rounds"]):
        units = []
        while len(units) < len(bench_grid.UNITS):
            if rounds[i] == "rnnlab+rec":
                assert rounds[i : i + 6] == ["rnnlab+rec", "rnnlab", "rnnlab+rec", "rnnlab", "rnnlab", "rnnlab+rec"]
                units.append("rnnlab")
                i += 6
            else:
                assert rounds[i : i + 3] == [rounds[i]] * 3
                units.append(rounds[i])
                i += 3
        per_round.append(units)
    assert i == len(rounds)
    for position in range(len(bench_grid.UNITS)):
        assert sorted(r[position] for r in per_round) == sorted(bench_grid.UNITS)


def test_the_grid_plan_prunes_by_size_but_keeps_the_named_shapes(capsys):
    assert bench_grid.main(["--plan", "--max-gflop", "1", "--sections", "small-input,issue-15"]) == 0
    out = capsys.readouterr().out
    assert "T=200 B=256 I=8 H=128" not in out  # 21 GFLOP per LSTM step: over the cap
    assert "T=200 B=16 I=8 H=32" in out
    assert "large (T=50 B=128 I=1024 H=1024)" in out  # named in issue 15: run whatever its size


def test_step_flops_counts_every_layer():
    one = bench_grid.step_flops("lstm", bench_grid.Shape(10, 2, 3, 4))
    # 3 recurrent products of 2·(T·B)·H·4H and 2 input products of 2·(T·B)·I·4H
    assert one == 3 * 2 * 20 * 4 * 16 + 2 * 2 * 20 * 3 * 16
    two = bench_grid.step_flops("lstm", bench_grid.Shape(10, 2, 3, 4, layers=2))
    assert two == one + 3 * 2 * 20 * 4 * 16 + 2 * 2 * 20 * 4 * 16


def test_the_baseline_flushes_every_pool_thread_and_torch_ftz_only_the_caller():
    ext = bench_grid.native.extension()
    if ext is None:
        pytest.skip("the pool can be set only through the compiled engine")
    seen = {}
    for flush in (True, "all"):
        bench_grid.timed(lambda f=flush: seen.__setitem__(f, tuple(ext.pool_denormals_flushed())), flush)
    flushing, team = seen["all"]
    assert flushing == team
    flushing, team = seen[True]
    assert flushing == 1 or team == 1, "torch.set_flush_denormal sets the calling thread only"
    assert ext.pool_denormals_flushed()[0] == 0, "and both are undone after the step"


def test_the_recording_benchmark_writes_one_line_per_shape(tmp_path, monkeypatch):
    import bench_recording

    monkeypatch.setattr(bench_recording, "SHAPES", [("lstm", 6, 2, 3, 8), ("gru", 6, 1, 3, 8)])
    out = tmp_path / "recording.txt"
    assert bench_recording.main(["--pairs", "4", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and "4 adjacent pairs" in lines[0]
    assert lines[1].startswith("lstm     T=6 B=2 I=3 H=8: step ") and "recording " in lines[1]


def test_the_gpu_check_says_so_in_one_line_without_cuda_and_times_on_the_cpu_when_asked(tmp_path, capsys, monkeypatch):
    import gpu_check

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.md"
    assert gpu_check.main(["--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert said.count("\n") == 1 and "no CUDA device" in said
    assert not out.exists()
    args = ["--device", "cpu", "--no-tests", "--sections", "smoke", "--repeats", "2", "--out", str(out)]
    assert gpu_check.main(args) == 0
    rows = [line.split(" | ") for line in out.read_text().splitlines() if line.startswith("| T=6 B=2 I=3 H=8 |")]
    assert [r[1] for r in rows] == ["rnn_tanh", "lstm", "gru"]
    assert all(float(r[2]) > 0 and r[6].startswith("**") for r in rows)  # torch.nn's time, the ratio in bold


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_the_gpu_checks_cell_loop_computes_what_torch_nn_computes(cell):
    """The cell loop the recorded path is compared with runs the same network, with the same weights."""
    import gpu_check

    torch.manual_seed(0)
    reference = bench_grid.CELLS[cell][0](3, 5, num_layers=2, dtype=torch.float64)
    cells = gpu_check.cell_stack(cell, reference, torch.device("cpu"))
    x = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(gpu_check.cell_loop(cells, x), reference(x)[0], rtol=1e-12, atol=1e-12)


def test_the_scan_benchmark_writes_one_row_per_length(tmp_path):
    out = tmp_path / "scan.txt"
    argv = ["--lengths", "6,9", "--batch", "2", "--input-size", "3", "--hidden", "4", "--rounds", "1"]
    assert bench_scan.main([*argv, "--loop-max", "6", "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["6", "9"]
    assert rows[0].split()[2] != "—" and rows[1].split()[2] == "—", "the loop is timed up to --loop-max only"


def test_the_indrnn_benchmark_times_the_three_variants_and_writes_one_row_per_length(tmp_path):
    out = tmp_path / "indrnn.txt"
    argv = ["--lengths", "5,7", "--batch", "2", "--input-size", "3", "--hidden", "4", "--rounds", "1"]
    assert bench_indrnn.main([*argv, "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["5", "7"] and all(len(row.split()) == 6 for row in rows)


def test_the_peephole_benchmark_compares_equal_computations_and_writes_one_row_per_length(tmp_path):
    out = tmp_path / "peephole.txt"
    argv = ["--lengths", "5,7", "--batch", "2", "--input-size", "3", "--hidden", "4", "--rounds", "1"]
    assert bench_peephole.main([*argv, "--out", str(out)]) == 0  # it checks the paper's loop against the module
    rows = out.read_text().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["5", "7"] and all(len(row.split()) == 8 for row in rows)


@pytest.mark.slow  # six fresh processes that each import torch, one of them beside a spinning competitor: ~40 s
def test_the_omp_wait_benchmark_times_each_setting_alone_and_beside_a_competitor(tmp_path):
    out = tmp_path / "omp.txt"
    argv = ["--seq-len", "3", "--hidden", "4", "--competitor-threads", "1", "--out", str(out)]
    assert bench_omp_wait.main(argv) == 0
    rows = out.read_text().splitlines()[2:]
    assert len(rows) == len(bench_omp_wait.SETTINGS)
    assert all(float(row.split()[-1]) > 0 and float(row.split()[-2]) > 0 for row in rows)


def test_the_cornn_benchmark_checks_parity_and_writes_one_row_per_length(tmp_path):
    out = tmp_path / "cornn.txt"
    argv = ["--lengths", "5,7", "--batch", "2", "--input-size", "3", "--hidden", "4", "--rounds", "1"]
    assert bench_cornn.main([*argv, "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["5", "7"] and all(len(row.split()) == 6 for row in rows)


def test_the_exprnn_benchmark_compares_equal_computations(tmp_path):
    """The paper's loop computes what rnnlab.ExpRNN computes (else the ratio compares different work), and the
    script writes one row per length."""
    torch.manual_seed(0)
    ours = bench_exprnn.rnnlab.ExpRNN(3, 6, batch_first=True)
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(bench_exprnn.PaperLoop(ours)(x), ours(x)[0], rtol=1e-5, atol=1e-6)
    out = tmp_path / "exprnn.txt"
    argv = ["--lengths", "4,7", "--batch", "2", "--input-size", "3", "--hidden", "5", "--rounds", "1"]
    assert bench_exprnn.main([*argv, "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["4", "7"] and all(row.endswith("×") for row in rows)
