"""Speed at every shape: one training step of rnnlab against torch.nn over a grid of shapes, side by side.

For each cell (rnn_tanh, lstm, gru) and shape (T steps, batch B, input I, hidden H, layers L) it times one
training step — zero_grad, forward, a loss on the last step (as in the long-range tasks), backward — of:

  rnnlab+rec   rnnlab module, per-step gradient recording on
  rnnlab       rnnlab module, recording off
  torch        torch.nn module, PyTorch's defaults (denormals not flushed)
  torch+ftz    torch.nn module with torch.set_flush_denormal(True), which flushes the calling thread only
  torch+ftz-all  torch.nn module with denormals flushed in every thread of the OpenMP pool too (as rnnlab's
               engine does: the pool's threads run the GEMMs, and there denormals cost full price on CPUs
               that penalise them) — the strongest torch.nn there is, and the baseline every ratio is against

All variants of one configuration are interleaved in rounds (one untimed step after each switch, then a
short timed block), so machine noise hits them alike. Per configuration it reports medians, the ratio
rnnlab / torch+ftz-all with its spread over the rounds (the noise), the recording overhead, and GFLOP/s as a
fraction of this machine's GEMM rate (a 1024³ float32 torch.mm, measured at the start).

The grid (pruned so a 2-core machine runs it in ~20 minutes: configurations whose LSTM step exceeds
`--max-gflop` are left out and listed as such, except the shapes named in issue 15):

  small-input   T=200, I=8:  H ∈ {32, 64, 128, 256, 512, 1024} × B ∈ {1, 16, 64, 256}
  input=hidden  T=35, I=H:   H ∈ {32, 64, 128, 256, 512, 1024} × B ∈ {1, 16, 64, 256}
  long          T=1000, I=8: H ∈ {32, 128, 512} × B ∈ {1, 16, 64}
  two-layer     T=200, I=8, L=2: H ∈ {64, 256} × B ∈ {16, 64}
  issue-15      the shapes named in issue 15 (copy task, word LM layer, batch 1, …) and the two tuned ones

Writes a JSON file (every sample), a Markdown table, and a heatmap PNG of the ratio over H × B.

    .venv/bin/python benchmarks/bench_grid.py                          # the whole grid (make bench)
    .venv/bin/python benchmarks/bench_grid.py --sections issue-15 --cells lstm
    .venv/bin/python benchmarks/bench_grid.py --plan                   # list the configurations only
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

import rnnlab
from rnnlab.recurrent import native

CELLS = {"rnn_tanh": (nn.RNN, 1), "lstm": (nn.LSTM, 4), "gru": (nn.GRU, 3)}
VARIANTS = ("rnnlab+rec", "rnnlab", "torch", "torch+ftz", "torch+ftz-all")
# What a round rotates over: "rnnlab" times rnnlab+rec and rnnlab step by step, alternately (see `measure`).
UNITS = ("rnnlab", "torch", "torch+ftz", "torch+ftz-all")
BASELINE = "torch+ftz-all"
HIDDEN = (32, 64, 128, 256, 512, 1024)
BATCH = (1, 16, 64, 256)


@dataclass(frozen=True)
class Shape:
    steps: int
    batch: int
    inputs: int
    hidden: int
    layers: int = 1
    name: str = ""

    def label(self) -> str:
        core = f"T={self.steps} B={self.batch} I={self.inputs} H={self.hidden}" + (
            f" L={self.layers}" if self.layers > 1 else ""
        )
        return f"{self.name} ({core})" if self.name else core


def sections() -> dict[str, list[Shape]]:
    return {
        "small-input": [Shape(200, b, 8, h) for h in HIDDEN for b in BATCH],
        "input=hidden": [Shape(35, b, h, h) for h in HIDDEN for b in BATCH],
        "long": [Shape(1000, b, 8, h) for h in (32, 128, 512) for b in (1, 16, 64)],
        "two-layer": [Shape(200, b, 8, h, layers=2) for h in (64, 256) for b in (16, 64)],
        "issue-15": [
            Shape(520, 20, 10, 40, name="copy task"),
            Shape(35, 20, 200, 200, name="word LM layer"),
            Shape(300, 1, 8, 64, name="batch 1"),
            Shape(520, 32, 10, 128, name="long, mid"),
            Shape(50, 128, 1024, 1024, name="large"),
            Shape(200, 64, 2, 128, name="adding (tuned)"),
            Shape(100, 64, 512, 512, name="fastrnns (tuned)"),
        ],
        "smoke": [Shape(6, 2, 3, 8)],  # for the test that keeps this script working
    }


def step_flops(cell: str, shape: Shape) -> float:
    """GEMM FLOPs of one training step: per layer the input projection and its weight gradient, and three
    recurrent products per step (forward, backward, weight gradient). Pointwise work is not counted."""
    gh = CELLS[cell][1] * shape.hidden
    total = 0.0
    for layer in range(shape.layers):
        inputs = shape.inputs if layer == 0 else shape.hidden
        rows = shape.steps * shape.batch
        total += 3 * 2.0 * rows * shape.hidden * gh + 2 * 2.0 * rows * inputs * gh
    return total


def gemm_rate(size: int = 1024, repeats: int = 7) -> float:
    """This machine's float32 GEMM rate in GFLOP/s: the median of a size³ torch.mm."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def make_steps(cell: str, shape: Shape) -> dict[str, tuple]:
    """Each variant's training step as (callable, flush-denormals setting or None)."""
    torch.manual_seed(0)
    reference = CELLS[cell][0](shape.inputs, shape.hidden, num_layers=shape.layers)
    ours = rnnlab.from_torch(reference)
    x = torch.randn(shape.steps, shape.batch, shape.inputs, generator=torch.Generator().manual_seed(1))
    target = torch.rand(shape.batch, generator=torch.Generator().manual_seed(2))
    readout = torch.randn(shape.hidden, generator=torch.Generator().manual_seed(3)) / shape.hidden**0.5

    def training_step(module, record: bool):
        def step():
            module.zero_grad()
            if record:
                with rnnlab.record_gradients(module):
                    out, _ = module(x)
                    ((out[-1] @ readout - target) ** 2).mean().backward()
            else:
                out, _ = module(x)
                ((out[-1] @ readout - target) ** 2).mean().backward()

        return step

    return {
        "rnnlab+rec": (training_step(ours, True), None),
        "rnnlab": (training_step(ours, False), None),
        "torch": (training_step(reference, False), False),
        "torch+ftz": (training_step(reference, False), True),
        "torch+ftz-all": (training_step(reference, False), "all"),
    }


def _flush_pool(flush: bool) -> None:
    """Flush denormals (or not) in every OpenMP pool thread, through rnnlab's extension (PyTorch has no call
    for it); without the compiled engine only the calling thread can be set, and "all" equals torch+ftz."""
    ext = native.extension()
    if ext is not None:
        ext.set_pool_denormals(flush)


def timed(step, flush) -> float:
    """One step's wall time. rnnlab sets the denormal mode itself; torch's variants get theirs here: False,
    True (the calling thread, as torch.set_flush_denormal) or "all" (every pool thread too)."""
    if flush is not None:
        torch.set_flush_denormal(bool(flush))
    if flush == "all":
        _flush_pool(True)
    start = time.perf_counter()
    step()
    elapsed = time.perf_counter() - start
    torch.set_flush_denormal(False)
    if flush == "all":
        _flush_pool(False)
    return elapsed


def measure(cell: str, shape: Shape, budget_s: float, block: int) -> dict:
    """Interleaved rounds of every variant until about `budget_s` is spent: 4 or 8 rounds, the order of the
    units rotated from round to round, so that each runs in every position equally often. (With a fixed order
    the variant that follows torch.nn's ran on the caches torch.nn had just filled: recording measured +5.9 %
    in that position and −0.7 % in the next one, GRU T=200 B=64 H=32.)

    Recording's cost is a few percent, below the drift between two blocks on a shared machine (measured as
    the ratio of two blocks' medians it came out anywhere from −3 % to +24 % at steps of 1–3 ms), so rnnlab
    with and without recording run as pairs of adjacent steps, the pair's order alternating, and the overhead
    is the median of the pairs' ratios."""
    steps = make_steps(cell, shape)
    first = {v: timed(*steps[v]) for v in VARIANTS}  # warm-up: allocations, the engine's scratch buffers
    per_round = sum(first.values()) * (block + 1)
    rounds = len(UNITS) * (2 if budget_s / max(per_round, 1e-9) >= 2 * len(UNITS) else 1)
    samples: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    pair_ratios: list[float] = []
    for i in range(rounds):
        for unit in UNITS[i % len(UNITS) :] + UNITS[: i % len(UNITS)]:
            if unit == "rnnlab":
                timed(*steps["rnnlab+rec"])  # the first steps after a switch pay for the caches
                timed(*steps["rnnlab"])
                recorded, plain = [], []
                for k in range(block):
                    if k % 2 == 0:
                        recorded.append(timed(*steps["rnnlab+rec"]))
                        plain.append(timed(*steps["rnnlab"]))
                    else:
                        plain.append(timed(*steps["rnnlab"]))
                        recorded.append(timed(*steps["rnnlab+rec"]))
                    pair_ratios.append(recorded[-1] / plain[-1])
                samples["rnnlab+rec"].append(recorded)
                samples["rnnlab"].append(plain)
                continue
            timed(*steps[unit])
            samples[unit].append([timed(*steps[unit]) for _ in range(block)])
    medians = {v: statistics.median(t for r in samples[v] for t in r) for v in VARIANTS}
    # The noise: the ratio of each round's medians, whose spread says how far one number can be trusted.
    round_ratio = [
        statistics.median(ours) / statistics.median(base)
        for ours, base in zip(samples["rnnlab"], samples[BASELINE], strict=True)
    ]
    return {
        "medians_ms": {v: m * 1e3 for v, m in medians.items()},
        "ratio": medians["rnnlab"] / medians[BASELINE],
        "ratio_rec": medians["rnnlab+rec"] / medians[BASELINE],
        "ratio_rounds": round_ratio,
        "recording_overhead": statistics.median(pair_ratios) - 1,
        "rounds": rounds,
        "samples_ms": {v: [[t * 1e3 for t in r] for r in rs] for v, rs in samples.items()},
    }


def write_table(results: list[dict], path: Path) -> None:
    lines = [
        "| shape | cell | rnnlab ms | torch+ftz-all ms | ratio (rounds min–max) | with recording | torch+ftz (caller only) | torch (no ftz) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        m = r["medians_ms"]
        lo, hi = min(r["ratio_rounds"]), max(r["ratio_rounds"])
        lines.append(
            f"| {r['label']} | {r['cell']} | {m['rnnlab']:.2f} | {m[BASELINE]:.2f} | "
            f"**{r['ratio']:.2f}×** ({lo:.2f}–{hi:.2f}) | {r['ratio_rec']:.2f}× | {m['torch+ftz'] / m[BASELINE]:.2f}× | "
            f"{m['torch'] / m[BASELINE]:.2f}× |"
        )
    path.write_text("\n".join(lines) + "\n")


def draw_heatmap(results: list[dict], path: Path, cells: list[str]) -> None:
    """Ratio rnnlab / torch+ftz-all over H × B, one panel per grid section and cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    panels = [s for s in ("small-input", "input=hidden") if any(r["section"] == s for r in results)]
    if not panels:
        return
    fig, axes = plt.subplots(
        len(panels), len(cells), figsize=(3.6 * len(cells), 3.2 * len(panels)), squeeze=False, layout="constrained"
    )
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=2.0)
    image = None
    for row, section in enumerate(panels):
        for col, cell in enumerate(cells):
            ax = axes[row][col]
            grid = [[float("nan")] * len(HIDDEN) for _ in BATCH]
            for r in results:
                if r["section"] == section and r["cell"] == cell:
                    grid[BATCH.index(r["shape"]["batch"])][HIDDEN.index(r["shape"]["hidden"])] = r["ratio"]
            image = ax.imshow(grid, cmap="RdYlGn_r", norm=norm, origin="lower", aspect="auto")
            for i, line in enumerate(grid):
                for j, value in enumerate(line):
                    text = "–" if value != value else f"{value:.2f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(HIDDEN)), [str(h) for h in HIDDEN])
            ax.set_yticks(range(len(BATCH)), [str(b) for b in BATCH])
            ax.set_xlabel("hidden size H")
            ax.set_ylabel("batch B")
            steps = "T=200, I=8" if section == "small-input" else "T=35, I=H"
            ax.set_title(f"{cell}, {steps}", fontsize=9)
    fig.colorbar(
        image, ax=axes, label="time rnnlab / torch.nn (denormals flushed in every thread); < 1 is faster", shrink=0.8
    )
    fig.suptitle("Training step, rnnlab vs torch.nn on CPU (– : not run, over the size cap)")
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose the grid's configurations (this script's and gpu_check.py's)."""
    parser.add_argument("--cells", default="rnn_tanh,lstm,gru")
    parser.add_argument("--sections", default="small-input,input=hidden,long,two-layer,issue-15")
    parser.add_argument("--max-gflop", type=float, default=40.0, help="leave out shapes whose LSTM step exceeds it")


def grid_plan(parser: argparse.ArgumentParser, args) -> tuple[list[str], list, list]:
    """(cells, plan, skipped) from the options of `add_grid_arguments`: plan and skipped are (section, Shape)
    pairs; an unknown section or cell is the parser's error."""
    cells = args.cells.split(",")
    known = sections()
    unknown = [s for s in args.sections.split(",") if s not in known]
    if unknown or any(c not in CELLS for c in cells):
        parser.error(f"unknown section or cell; sections: {', '.join(known)}; cells: {', '.join(CELLS)}")
    plan, skipped = [], []
    for section in args.sections.split(","):
        for shape in known[section]:
            named = section == "issue-15"  # the shapes an issue names are run whatever their size
            fits = named or step_flops("lstm", shape) / 1e9 <= args.max_gflop
            (plan if fits else skipped).append((section, shape))
    return cells, plan, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_grid_arguments(parser)
    parser.add_argument("--budget", type=float, default=1.5, help="seconds of timing per configuration (4 or 8 rounds)")
    parser.add_argument("--block", type=int, default=2, help="timed steps per variant and round")
    parser.add_argument("--plan", action="store_true", help="list the configurations and exit")
    parser.add_argument("--out", default="benchmarks/results", help="folder for grid.json and grid.md")
    parser.add_argument("--heatmap", default="docs/bench-grid.png")
    args = parser.parse_args(argv)
    cells, plan, skipped = grid_plan(parser, args)
    print(f"{len(plan)} shapes × {len(cells)} cells; left out over {args.max_gflop:g} GFLOP: {len(skipped)}")
    if args.plan:
        for section, shape in plan:
            print(f"  {section:13} {shape.label()}  {step_flops('lstm', shape) / 1e9:.2f} GFLOP (lstm)")
        return 0
    ext = native.extension()
    rate = gemm_rate()
    meta = {
        "rnnlab": rnnlab.__version__,
        "torch": torch.__version__,
        "engine": native.backend(),
        "gemm": ext.gemm_backend() if ext is not None else "torch",
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_vendor": ext.cpu_vendor() if ext is not None else "",
        "capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.platform(),
        "gemm_gflops_1024": rate,
        "max_gflop": args.max_gflop,
        "skipped": [(s, asdict(shape)) for s, shape in skipped],
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    print(f"rnnlab {rnnlab.__version__}, torch {torch.__version__}, {meta['threads']} threads, {meta['cpu']}; "
          f"GEMM 1024³: {rate:.0f} GFLOP/s")  # fmt: skip
    started, results = time.perf_counter(), []
    for section, shape in plan:
        for cell in cells:
            r = measure(cell, shape, args.budget, args.block)
            flops = step_flops(cell, shape)
            r.update(
                section=section,
                cell=cell,
                shape=asdict(shape),
                label=shape.label(),
                gflops=flops / r["medians_ms"]["rnnlab"] / 1e6,
                fraction_of_gemm=flops / r["medians_ms"]["rnnlab"] / 1e6 / rate,
            )
            results.append(r)
            lo, hi = min(r["ratio_rounds"]), max(r["ratio_rounds"])
            print(
                f"{section:13} {shape.label():38} {cell:8} rnnlab {r['medians_ms']['rnnlab']:9.2f} ms  "
                f"torch+ftz-all {r['medians_ms'][BASELINE]:9.2f} ms  ratio {r['ratio']:.2f} ({lo:.2f}–{hi:.2f})  "
                f"rec +{r['recording_overhead']:.0%}  {r['fraction_of_gemm']:.0%} of GEMM",
                flush=True,
            )
    meta["seconds"] = time.perf_counter() - started
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    write_table(results, out / "grid.md")
    draw_heatmap(results, Path(args.heatmap), cells)
    worst = max(results, key=lambda r: r["ratio"])
    print(f"\n{len(results)} configurations in {meta['seconds']:.0f} s; worst ratio {worst['ratio']:.2f} at "
          f"{worst['label']} {worst['cell']}; wrote {out / 'grid.json'}, {out / 'grid.md'}, {args.heatmap}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
