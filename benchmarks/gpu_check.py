"""The GPU check of issue 25: the fused path's parity on CUDA, and a training step's speed against torch.nn.

On a machine with CUDA it
1. runs tests/test_fused.py, whose device-parametrised tests then run on CUDA as well as the CPU (parity of
   the fused path with torch.nn in float64, the dispatch decision, cuDNN's flat weight buffer);
2. times one training step — zero_grad, forward, a loss on the last step, backward, an SGD step — of
     torch.nn      the torch.nn module (cuDNN)
     rnnlab        the rnnlab module, nothing recorded: torch's fused op (`rnnlab.recurrent.fused`)
     rnnlab+rec    the rnnlab module inside `rnnlab.record_gradients`: the engine's Python loop on CUDA
     cell loop     a Python loop over torch.nn's cell (`nn.LSTMCell`, `nn.GRUCell`, `nn.RNNCell`), one per
                   layer: the obvious way to see every step, and what rnnlab+rec should not lose to
   at the shapes of bench_grid.py's grid, each step between two `torch.cuda.synchronize()`, the variants
   interleaved round by round (their order rotated), the median of `--repeats` rounds;
and prints a table of medians and ratios, written to benchmarks/results/gpu.md. Without CUDA it prints one
line saying so and exits 0 (`--device cpu` times on the CPU instead: only for the test that keeps this script
working; rnnlab's CPU speed is bench_grid.py's subject).

    .venv/bin/python benchmarks/gpu_check.py                                  # parity, then the whole grid
    .venv/bin/python benchmarks/gpu_check.py --sections issue-15 --repeats 20 # the named shapes only
    .venv/bin/python benchmarks/gpu_check.py --no-tests --minutes 5           # timing only, stop after 5 min
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import bench_grid
import rnnlab
from results_file import write_lines

VARIANTS = ("torch.nn", "rnnlab", "rnnlab+rec", "cell loop")
CELL_LOOPS = {"rnn_tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}  # torch.nn's one-step modules
ROOT = Path(__file__).resolve().parents[1]


def cell_stack(cell_name: str, reference: nn.Module, device: torch.device) -> nn.ModuleList:
    """torch.nn's cells with the weights of `reference` (a torch.nn RNN/LSTM/GRU of that cell), one per layer."""
    cells = nn.ModuleList()
    for layer in range(reference.num_layers):
        inputs = reference.input_size if layer == 0 else reference.hidden_size
        cell = CELL_LOOPS[cell_name](inputs, reference.hidden_size, dtype=reference.weight_ih_l0.dtype)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(reference, f"{name}_l{layer}"))
        cells.append(cell)
    return cells.to(device)


def cell_loop(cells: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
    """x (T, B, I) through the stack of cells step by step → the top layer's outputs (T, B, H)."""
    layer_input = x
    for cell in cells:
        h = x.new_zeros((x.shape[1], cell.hidden_size))
        state = (h, h) if isinstance(cell, nn.LSTMCell) else h
        outputs = []
        for t in range(x.shape[0]):
            state = cell(layer_input[t], state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        layer_input = torch.stack(outputs)  # (T, B, H)
    return layer_input


def make_steps(cell: str, shape: bench_grid.Shape, device: torch.device) -> dict:
    """Each variant's training step (a callable), on `device`."""
    torch.manual_seed(0)
    reference = bench_grid.CELLS[cell][0](shape.inputs, shape.hidden, num_layers=shape.layers).to(device)
    ours = rnnlab.from_torch(reference)
    cells = cell_stack(cell, reference, device)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape.steps, shape.batch, shape.inputs, generator=gen).to(device)
    target = torch.rand(shape.batch, generator=gen).to(device)
    readout = (torch.randn(shape.hidden, generator=gen) / shape.hidden**0.5).to(device)

    def training_step(module, forward, record: bool):
        optimizer = torch.optim.SGD(module.parameters(), lr=1e-4)

        def step():
            optimizer.zero_grad()
            if record:
                with rnnlab.record_gradients(module):
                    loss = ((forward(x)[-1] @ readout - target) ** 2).mean()
                    loss.backward()
            else:
                loss = ((forward(x)[-1] @ readout - target) ** 2).mean()
                loss.backward()
            optimizer.step()

        return step

    return {
        "torch.nn": training_step(reference, lambda x: reference(x)[0], False),
        "rnnlab": training_step(ours, lambda x: ours(x)[0], False),
        "rnnlab+rec": training_step(ours, lambda x: ours(x)[0], True),
        "cell loop": training_step(cells, lambda x: cell_loop(cells, x), False),
    }


def timed(step, device: torch.device) -> float:
    """One step's wall time in seconds, the device's queue empty before and after."""
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    synchronize()
    start = time.perf_counter()
    step()
    synchronize()
    return time.perf_counter() - start


def measure(cell: str, shape: bench_grid.Shape, device: torch.device, repeats: int) -> dict:
    """Median step time of each variant (ms) over `repeats` rounds, the order rotated from round to round."""
    steps = make_steps(cell, shape, device)
    for _ in range(2):  # warm-up: cuDNN's plans, the allocator's blocks
        for variant in VARIANTS:
            timed(steps[variant], device)
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i in range(repeats):
        for variant in VARIANTS[i % len(VARIANTS) :] + VARIANTS[: i % len(VARIANTS)]:
            samples[variant].append(timed(steps[variant], device))
    medians = {v: statistics.median(s) * 1e3 for v, s in samples.items()}
    return {
        "medians_ms": medians,
        "unrecorded": medians["rnnlab"] / medians["torch.nn"],
        "recorded": medians["rnnlab+rec"] / medians["torch.nn"],
        "recorded_vs_loop": medians["rnnlab+rec"] / medians["cell loop"],
    }


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| shape | cell | torch.nn ms | rnnlab ms | rnnlab+rec ms | cell loop ms | rnnlab / torch.nn | "
        "rnnlab+rec / torch.nn | rnnlab+rec / cell loop |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        m = r["medians_ms"]
        lines.append(
            f"| {r['label']} | {r['cell']} | {m['torch.nn']:.3f} | {m['rnnlab']:.3f} | {m['rnnlab+rec']:.3f} | "
            f"{m['cell loop']:.3f} | **{r['unrecorded']:.2f}×** | {r['recorded']:.2f}× | {r['recorded_vs_loop']:.2f}× |"
        )
    return lines


def run_parity_tests() -> tuple[bool, str]:
    """tests/test_fused.py in a fresh process (its tests parametrised over the devices present); → (passed,
    pytest's summary line)."""
    command = [sys.executable, "-m", "pytest", "tests/test_fused.py", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    lines = [line for line in (done.stdout or done.stderr).splitlines() if line.strip()]
    if done.returncode != 0:
        print(done.stdout[-6000:], done.stderr[-2000:], sep="\n")
    return done.returncode == 0, lines[-1] if lines else f"pytest exited with {done.returncode}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench_grid.add_grid_arguments(parser)  # --cells, --sections, --max-gflop: the grid's configurations
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds per configuration (the median)")
    parser.add_argument("--minutes", type=float, default=None, help="stop timing after this long (write what ran)")
    parser.add_argument("--no-tests", action="store_true", help="skip the parity tests")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cpu: the smoke test only")
    parser.add_argument("--out", default="benchmarks/results/gpu.md")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); nothing checked or timed")
        return 0
    device = torch.device(args.device)
    cells, planned, _ = bench_grid.grid_plan(parser, args)
    plan = [shape for _, shape in planned]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    header = [
        f"# Training step on {name}: rnnlab against torch.nn",
        "",
        f"rnnlab {rnnlab.__version__}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
        f"RNNLAB_ENGINE={rnnlab.recurrent.native.engine_choice()}, {time.strftime('%Y-%m-%d %H:%M')}; median of "
        f"{args.repeats} interleaved rounds, each step between two synchronizations (benchmarks/gpu_check.py).",
        "",
    ]
    failed = False
    if not args.no_tests:
        passed, summary = run_parity_tests()
        failed = not passed
        where = f"on {name} and the CPU" if device.type == "cuda" else "on the CPU only"
        header += [f"Parity (tests/test_fused.py {where}): {'passed' if passed else 'FAILED'}: {summary}", ""]
        print(header[-2], flush=True)
    started, rows = time.perf_counter(), []
    print(f"{len(plan)} shapes × {len(cells)} cells", flush=True)
    for shape in plan:
        for cell in cells:
            if args.minutes is not None and time.perf_counter() - started > 60 * args.minutes:
                break
            r = measure(cell, shape, device, args.repeats)
            r.update(cell=cell, label=shape.label())
            rows.append(r)
            print(table([r])[-1], flush=True)
    skipped = len(plan) * len(cells) - len(rows)
    lines = header + table(rows)
    if skipped:
        lines += ["", f"{skipped} configurations not timed (--minutes {args.minutes:g} reached)."]
    out = write_lines(lines, args.out)
    print(f"wrote {out} ({len(rows)} configurations in {time.perf_counter() - started:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
