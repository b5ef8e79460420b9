"""The parallel scan against the step-by-step loop against torch.nn.GRU: one training step, side by side in one run.

One training step = zero_grad, forward, a loss on every step's output, backward, Adam step, for one layer of

  scan       `rnnlab.MinGRU` (and `MinLSTM`), each layer one chunked scan (`recurrent/scan.py`)
  loop       the same module with `scan=False`: rnnlab's Python loop over `Cell.step` / `step_backward`
  nn.GRU     `torch.nn.GRU` (PyTorch's fused kernel), the reference a practitioner would otherwise use

at each sequence length T (batch 32, input 32, hidden 128 by default). The variants are interleaved in rounds
(each round's first step untimed); the median per step and the ratios loop/scan and scan/nn.GRU are printed
and written to benchmarks/results/scan.txt. The loop is skipped above `--loop-max` steps (it grows linearly
in Python steps; its ratio there is left blank rather than extrapolated).

    .venv/bin/python benchmarks/bench_scan.py [--lengths 100,256,512,1024,2048,4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch
from torch import nn

import rnnlab
from results_file import emit, write_lines


def _step_fn(module: nn.Module, x: torch.Tensor, target: torch.Tensor):
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)

    def step() -> None:
        optimizer.zero_grad()
        out, _ = module(x)
        nn.functional.mse_loss(out, target).backward()
        optimizer.step()

    return step


def measure(length: int, args) -> dict[str, float | None]:
    """Median seconds per training step of each variant at sequence length `length`."""
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(args.batch, length, args.input_size, generator=gen)
    target = torch.randn(args.batch, length, args.hidden, generator=gen)
    sizes = (args.input_size, args.hidden)
    torch.manual_seed(0)
    variants = {
        "minGRU scan": rnnlab.MinGRU(*sizes, batch_first=True),
        "minGRU loop": rnnlab.MinGRU(*sizes, batch_first=True, scan=False),
        "minLSTM scan": rnnlab.MinLSTM(*sizes, batch_first=True),
        "nn.GRU": nn.GRU(*sizes, batch_first=True),
    }
    if length > args.loop_max:
        del variants["minGRU loop"]
    result: dict[str, float | None] = median_step_times(variants, x, target, args.rounds)
    result.setdefault("minGRU loop", None)
    return result


def median_step_times(variants: dict[str, nn.Module], x, target, rounds: int) -> dict[str, float]:
    """Median seconds per training step of each module, the variants interleaved in `rounds` rounds."""
    steps = {name: _step_fn(module, x, target) for name, module in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            step()  # untimed: warms the caches and the allocator for this variant
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,256,512,1024,2048,4096", help="comma-separated T")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop-max", type=int, default=4096, help="longest T at which the loop is timed")
    parser.add_argument("--out", default="benchmarks/results/scan.txt")
    args = parser.parse_args(argv)
    lengths = [int(t) for t in args.lengths.split(",")]
    lines = [
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; batch {args.batch}, input {args.input_size}, hidden {args.hidden}, one layer, float32; "
        f"median ms per training step (Adam) over {args.rounds} rounds",
        f"{'T':>6} {'minGRU scan':>12} {'minGRU loop':>12} {'minLSTM scan':>13} {'nn.GRU':>9} "
        f"{'loop/scan':>10} {'scan/nn.GRU':>12}",
    ]
    print("\n".join(lines), flush=True)
    for length in lengths:
        ms = {name: None if s is None else s * 1e3 for name, s in measure(length, args).items()}
        scan, loop, lstm, gru = ms["minGRU scan"], ms["minGRU loop"], ms["minLSTM scan"], ms["nn.GRU"]
        loop_text = "—" if loop is None else f"{loop:.2f}"
        ratio = "—" if loop is None else f"{loop / scan:.1f}×"
        line = f"{length:>6} {scan:>12.2f} {loop_text:>12} {lstm:>13.2f} {gru:>9.2f} {ratio:>10} {scan / gru:>11.2f}×"
        emit(lines, line)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
