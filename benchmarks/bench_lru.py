"""The LRU's parallel scan against its step-by-step loop (and torch.nn.GRU): one training step, side by side.

One training step = zero_grad, forward, a loss on every step's output, backward, Adam step, for one layer of

  scan       `rnnlab.LRU`, its recurrence one doubling scan forward and one backward (`recurrent/lru_scan.py`)
  loop       the same module with `scan=False`: the Python loop over `LRUCell.step` and its backward
  nn.GRU     `torch.nn.GRU` (PyTorch's fused kernel), the reference a practitioner would otherwise use

at each sequence length T (batch 32, input 32, hidden H = N = 128 by default; the LRU's step includes its
encoder and GLU block). The variants are interleaved in rounds (each round's first step untimed); the median
per step and the ratios loop/scan and scan/nn.GRU are printed and written to benchmarks/results/lru.txt. The
loop is skipped above `--loop-max` steps (its ratio there is left blank rather than extrapolated).

    .venv/bin/python benchmarks/bench_lru.py [--lengths 100,256,512,1024,2048,4096] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch
from torch import nn

import rnnlab
from bench_scan import median_step_times  # the same training step and rounds as the minGRU benchmark's
from results_file import emit, write_lines


def measure(length: int, args) -> dict[str, float | None]:
    """Median seconds per training step of each variant at sequence length `length`."""
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(args.batch, length, args.input_size, generator=gen)
    target = torch.randn(args.batch, length, args.hidden, generator=gen)
    sizes = (args.input_size, args.hidden)
    torch.manual_seed(0)
    variants = {
        "LRU scan": rnnlab.LRU(*sizes, batch_first=True, scan=True),
        "LRU loop": rnnlab.LRU(*sizes, batch_first=True, scan=False),
        "nn.GRU": nn.GRU(*sizes, batch_first=True),
    }
    if length > args.loop_max:
        del variants["LRU loop"]
    result: dict[str, float | None] = median_step_times(variants, x, target, args.rounds)
    result.setdefault("LRU loop", None)
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,256,512,1024,2048,4096", help="comma-separated T")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop-max", type=int, default=4096, help="longest T at which the loop is timed")
    parser.add_argument("--out", default="benchmarks/results/lru.txt")
    args = parser.parse_args(argv)
    lengths = [int(t) for t in args.lengths.split(",")]
    lines = [
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; batch {args.batch}, input {args.input_size}, hidden H = N = {args.hidden}, one layer, "
        f"float32; median ms per training step (Adam) over {args.rounds} rounds",
        f"{'T':>6} {'LRU scan':>10} {'LRU loop':>10} {'nn.GRU':>9} {'loop/scan':>10} {'scan/nn.GRU':>12}",
    ]
    print("\n".join(lines), flush=True)
    for length in lengths:
        ms = {name: None if s is None else s * 1e3 for name, s in measure(length, args).items()}
        scan, loop, gru = ms["LRU scan"], ms["LRU loop"], ms["nn.GRU"]
        loop_text = "—" if loop is None else f"{loop:.2f}"
        ratio = "—" if loop is None else f"{loop / scan:.1f}×"
        line = f"{length:>6} {scan:>10.2f} {loop_text:>10} {gru:>9.2f} {ratio:>10} {scan / gru:>11.2f}×"
        emit(lines, line)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
