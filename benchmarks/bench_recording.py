"""What per-step gradient recording costs on the smallest training steps, measured precisely.

The grid (`bench_grid.py`) measures recording with a few pairs per configuration, which on a shared 2-core
machine leaves ±10 % of noise on steps of about a millisecond. Here each configuration gets many adjacent
pairs of training steps — one with `rnnlab.record_gradients`, one without, the pair's order alternating —
and reports the median of the pairs' ratios with its interquartile range, and the median extra time.

    .venv/bin/python benchmarks/bench_recording.py [--pairs 400]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

import bench_grid
import rnnlab
from results_file import write_lines

# The grid's steps under ~2 ms, where recording's fixed cost shows most: (cell, T, B, I, H).
SHAPES = [("rnn_tanh", 35, 1, 32, 32), ("lstm", 35, 1, 32, 32), ("gru", 35, 1, 32, 32), ("rnn_tanh", 35, 16, 32, 32),
          ("lstm", 35, 16, 32, 32), ("rnn_tanh", 200, 1, 8, 32), ("lstm", 200, 1, 8, 32), ("gru", 200, 1, 8, 32),
          ("rnn_tanh", 200, 16, 8, 32), ("gru", 200, 16, 8, 64), ("lstm", 300, 1, 8, 64)]  # fmt: skip


def pairs(cell: str, steps: int, batch: int, inputs: int, hidden: int, count: int) -> tuple[list, list]:
    """`count` adjacent (recorded, plain) step times in seconds, of the grid's own training step."""
    variants = bench_grid.make_steps(cell, bench_grid.Shape(steps, batch, inputs, hidden))
    recorded, plain = variants["rnnlab+rec"], variants["rnnlab"]
    for _ in range(20):  # warm-up: allocations, the engine's scratch buffers
        bench_grid.timed(*recorded)
        bench_grid.timed(*plain)
    with_rec, without = [], []
    for k in range(count):
        if k % 2 == 0:
            with_rec.append(bench_grid.timed(*recorded))
            without.append(bench_grid.timed(*plain))
        else:
            without.append(bench_grid.timed(*plain))
            with_rec.append(bench_grid.timed(*recorded))
    return with_rec, without


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--out", default="benchmarks/results/recording.txt")
    args = parser.parse_args(argv)
    lines = [f"rnnlab {rnnlab.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
             f"{args.pairs} adjacent pairs per shape; overhead = median of the pairs' ratios (interquartile range)"]  # fmt: skip
    for cell, steps, batch, inputs, hidden in SHAPES:
        with_rec, without = pairs(cell, steps, batch, inputs, hidden, args.pairs)
        ratios = sorted(a / b - 1 for a, b in zip(with_rec, without, strict=True))
        q1, median, q3 = statistics.quantiles(ratios, n=4)
        extra_us = statistics.median(a - b for a, b in zip(with_rec, without, strict=True)) * 1e6
        line = (f"{cell:8} T={steps} B={batch} I={inputs} H={hidden}: step {statistics.median(without) * 1e3:.3f} ms, "
                f"recording {median:+.1%} ({q1:+.1%} … {q3:+.1%}), {extra_us:+.0f} µs")  # fmt: skip
        print(line, flush=True)
        lines.append(line)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
