"""Training-step benchmark of rnnlab's BPTT engine against PyTorch, side by side in one run.

For rnn_tanh, lstm and gru at two shapes — adding (T=200, B=64, I=2, H=128) and fastrnns (T=100, B=64,
I=512, H=512) — it times one training step (zero_grad + forward + loss + backward) of:

  rnnlab+rec   rnnlab module with per-step gradient recording on
  rnnlab       rnnlab module, recording off
  fused        torch.nn module, PyTorch's defaults (denormals not flushed)
  fused+ftz    torch.nn module with torch.set_flush_denormal(True)
  cell-loop    an autograd loop over the torch.nn cell (nn.LSTMCell, …)

With --device cuda the same runs on a GPU against cuDNN ("fused"; rnnlab then runs its Python time loop).
Variants are interleaved (in short blocks, after an untimed step) within each round, so machine noise hits
all of them alike; it prints medians,
the ratio to fused+ftz, achieved GFLOP/s, the fraction of the GEMM throughput measured on the spot for the
same matrix products (the faster of torch.mm and the engine's GEMM for each), and (with --memory) the peak
resident memory two steps add, in a fresh process. Results also go to a JSON file so later runs can be compared.

    .venv/bin/python benchmarks/bench_engine.py                  # all cells and shapes
    .venv/bin/python benchmarks/bench_engine.py --cells lstm --shapes adding --repeats 15 --memory
    .venv/bin/python benchmarks/bench_engine.py --gemm aten     # the engine without oneDNN, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

import rnnlab
from rnnlab.recurrent import native

SHAPES = {"adding": (200, 64, 2, 128), "fastrnns": (100, 64, 512, 512)}
GATES = {"rnn_tanh": 1, "lstm": 4, "gru": 3}
VARIANTS = ("rnnlab+rec", "rnnlab", "fused", "fused+ftz", "cell-loop")
DEVICE = torch.device("cpu")  # --device; on CUDA "fused" is cuDNN and denormal flushing does not apply


def step_flops(cell: str, steps: int, batch: int, inputs: int, hidden: int) -> float:
    """GEMM FLOPs of one training step: input projection and its weight gradient, and three recurrent
    products per step (forward h·W_hhᵀ, backward dpre·W_hh, weight gradient). Pointwise work is not counted."""
    gh = GATES[cell] * hidden
    recurrent = 2.0 * steps * batch * hidden * gh
    projection = 2.0 * steps * batch * inputs * gh
    return 3 * recurrent + 2 * projection


def _modules(cell: str, inputs: int, hidden: int, seed: int = 0):
    torch.manual_seed(seed)
    kind = {"rnn_tanh": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    fused = kind(inputs, hidden)
    ours = rnnlab.from_torch(fused)
    cell_cls = {"rnn_tanh": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}[cell]
    loop = cell_cls(inputs, hidden)
    loop.load_state_dict({k.removesuffix("_l0"): v for k, v in fused.state_dict().items()})
    return fused, ours, loop


def _make_step(variant: str, cell: str, shape: str):
    steps, batch, inputs, hidden = SHAPES[shape]
    fused, ours, loop = (m.to(DEVICE) for m in _modules(cell, inputs, hidden))
    x = torch.randn(steps, batch, inputs, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    target = torch.rand(batch, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    readout = (torch.randn(hidden, generator=torch.Generator().manual_seed(3)) / hidden**0.5).to(DEVICE)

    def loss_of(last):  # a regression on the last step, like the adding task
        return ((last @ readout - target) ** 2).mean()

    if variant.startswith("rnnlab"):
        record = variant == "rnnlab+rec"

        def step():
            ours.zero_grad()
            if record:
                with rnnlab.record_gradients(ours):
                    out, _ = ours(x)
                    loss_of(out[-1]).backward()
            else:
                out, _ = ours(x)
                loss_of(out[-1]).backward()

        return step, None
    if variant.startswith("fused"):
        flush = variant == "fused+ftz"

        def step():
            fused.zero_grad()
            out, _ = fused(x)
            loss_of(out[-1]).backward()

        return step, flush

    def step():
        loop.zero_grad()
        h = torch.zeros(batch, hidden, device=DEVICE)
        state = (h, h) if cell == "lstm" else h
        for t in range(steps):
            state = loop(x[t], state)
        last = state[0] if cell == "lstm" else state
        loss_of(last).backward()

    return step, False


def _time(step, flush) -> float:
    if flush is not None:
        torch.set_flush_denormal(flush)
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    torch.set_flush_denormal(False)
    return elapsed


def _gemm_products(cell: str, shape: str) -> list[tuple[int, tuple[int, int, int]]]:
    """The matrix products `step_flops` counts, as (how many, (m, k, n))."""
    steps, batch, inputs, hidden = SHAPES[shape]
    gh = GATES[cell] * hidden
    rows = steps * batch
    return [
        (steps, (batch, hidden, gh)),  # forward h·W_hhᵀ per step
        (steps, (batch, gh, hidden)),  # backward dpre·W_hh per step
        (1, (hidden, rows, gh)),  # dW_hh over all steps
        (1, (rows, inputs, gh)),  # input projection
        (1, (inputs, rows, gh)),  # dW_ih
    ]


def gemm_throughput(cell: str, shape: str, repeats: int = 5) -> tuple[float, dict[str, float]]:
    """GFLOP/s of this step's matrix products alone, each timed with torch.mm (MKL) and with the engine's GEMM
    (oneDNN where it pays), the faster of the two per product: the best rate this machine reaches on them.
    Returns (best rate, {backend: rate})."""
    ext = native.extension()
    backends = {"torch.mm": torch.mm}
    if ext is not None and DEVICE.type == "cpu":
        backends["engine"] = lambda a, b: ext.matmul(a, b, False)
    total_flops, best_time, per_backend = 0.0, 0.0, dict.fromkeys(backends, 0.0)
    for count, (m, k, n) in _gemm_products(cell, shape):
        a, b = torch.randn(m, k, device=DEVICE), torch.randn(k, n, device=DEVICE)
        total_flops += 2.0 * m * k * n * count
        times = {}
        for name, mm in backends.items():
            mm(a, b)

            def products(mm=mm, a=a, b=b, count=count):
                for _ in range(count):
                    mm(a, b)

            samples = [_time(products, None) for _ in range(repeats)]
            times[name] = statistics.median(samples)
            per_backend[name] += times[name]
        best_time += min(times.values())
    return total_flops / best_time / 1e9, {k: total_flops / t / 1e9 for k, t in per_backend.items()}


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def step_peak_mb(step, flush, steps: int = 2) -> float:
    """Peak resident memory during `steps` steps above the resident memory before the first (sampled every
    0.5 ms). Memory kept between steps (rnnlab's reused scratch buffers) counts, as it should."""
    import threading

    before, peak, running = _rss_mb(), [0.0], [True]

    def sample():
        while running[0]:
            peak[0] = max(peak[0], _rss_mb())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    for _ in range(steps):
        _time(step, flush)
    running[0] = False
    thread.join()
    return max(0.0, max(peak[0], _rss_mb()) - before)


def peak_memory_mb(cell: str, shape: str, variant: str) -> float:
    """Peak memory of two training steps from the state before the first, in a fresh process (the compiled
    engine loaded beforehand, so its code is not counted)."""
    code = (
        "import sys; sys.path.insert(0, 'benchmarks'); import bench_engine as b; b.native.extension();"
        f"s, f = b._make_step({variant!r}, {cell!r}, {shape!r});"
        "import gc; gc.collect(); print(b.step_peak_mb(s, f))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="rnn_tanh,lstm,gru")
    parser.add_argument("--shapes", default="adding,fastrnns")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=5, help="rounds over all variants")
    parser.add_argument("--block", type=int, default=3, help="timed steps per variant and round (after one untimed)")
    parser.add_argument("--memory", action="store_true", help="also measure peak memory (fresh process each)")
    parser.add_argument("--gemm", choices=native.GEMMS, default="auto", help="the engine's GEMM (RNNLAB_GEMM)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (then the baseline is cuDNN, 'fused')")
    parser.add_argument("--json", default="benchmarks/results/engine.json")
    args = parser.parse_args(argv)
    global DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: this machine has no usable CUDA device (torch.cuda.is_available() is False)")
    cells, shapes = args.cells.split(","), args.shapes.split(",")
    variants = args.variants.split(",")
    baseline = "fused+ftz"
    if DEVICE.type == "cuda":  # flushing denormals is a CPU setting: on CUDA the fused variants are the same
        variants, baseline = [v for v in variants if v != "fused+ftz"], "fused"
        args.memory = False  # peak memory below is host memory of a fresh process; not meaningful here
    os.environ["RNNLAB_GEMM"] = args.gemm  # also for the fresh processes of --memory
    ext = native.extension()
    if ext is not None:
        ext.set_gemm(args.gemm)
    gemm_used = ext.gemm_backend() if ext is not None else "torch"
    results = []
    print(
        f"rnnlab {rnnlab.__version__}, torch {torch.__version__}, engine {native.backend()}, gemm {gemm_used}, "
        f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    for shape in shapes:
        for cell in cells:
            steps = {v: _make_step(v, cell, shape) for v in variants}
            for step, flush in steps.values():  # warm up (and build the C++ engine once)
                _time(step, flush)
            times = {v: [] for v in variants}
            for _ in range(args.repeats):
                for v in variants:  # a short block per variant: the first step after a switch pays for caches
                    _time(*steps[v])
                    times[v] += [_time(*steps[v]) for _ in range(args.block)]
            gemm, gemm_by_backend = gemm_throughput(cell, shape)
            flops = step_flops(cell, *SHAPES[shape])
            base = statistics.median(times[baseline]) if baseline in times else None
            rates = ", ".join(f"{k} {v:.0f}" for k, v in gemm_by_backend.items())
            print(
                f"\n{shape} {SHAPES[shape]} {cell}: {flops / 1e9:.2f} GFLOP/step, "
                f"GEMM rate here {gemm:.0f} GFLOP/s (best per product; {rates})"
            )
            print(
                f"  {'variant':<11} {'median ms':>10} {'vs ' + baseline:>13} {'GFLOP/s':>8} {'% of GEMM':>10}"
                + (f" {'peak MB':>8}" if args.memory else "")
            )
            for v in variants:
                median = statistics.median(times[v])
                row = {
                    "shape": shape,
                    "cell": cell,
                    "variant": v,
                    "median_ms": median * 1e3,
                    "baseline": baseline,
                    "ratio_vs_baseline": median / base if base else None,
                    "gflops": flops / median / 1e9,
                    "gemm_gflops": gemm,
                    "gemm_gflops_by_backend": gemm_by_backend,
                    "fraction_of_gemm": flops / median / 1e9 / gemm,
                    "all_ms": [t * 1e3 for t in times[v]],
                }
                if args.memory:
                    row["peak_mb"] = peak_memory_mb(cell, shape, v)
                results.append(row)
                ratio = f"{row['ratio_vs_baseline']:.2f}×" if base else "-"
                print(
                    f"  {v:<11} {row['median_ms']:>10.1f} {ratio:>13} {row['gflops']:>8.0f} "
                    f"{row['fraction_of_gemm']:>9.0%}" + (f" {row['peak_mb']:>8.0f}" if args.memory else "")
                )
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "torch": torch.__version__,
        "rnnlab": rnnlab.__version__,
        "engine": native.backend(),
        "gemm": gemm_used,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu",
        "machine": platform.platform(),
        "time": time.time(),
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
