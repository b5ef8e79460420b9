"""A/B of the compiled engine's per-step choices at the shapes where they matter, side by side in one run.

For each shape, one training step (zero_grad, forward, loss on the last step, backward) of an rnnlab module
with oneDNN's micro-kernel on reordered weights (`set_brgemm("on")`, the default on AMD CPUs), without it and
the split per-step product allowed (batches ≤ 16) or switched off (`set_step_split(0)`), and of torch.nn with
flushed denormals, interleaved in rounds; medians in ms. This is the measurement behind the micro-kernel's
choice and the split path's threshold (`_ext/bptt.cpp`, `kBrgemm`, `split_max_batch`).

    .venv/bin/python benchmarks/bench_step_paths.py [--cells lstm,gru,rnn_tanh] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

import rnnlab
from rnnlab.recurrent import native

SHAPES = [(200, 1, 8, 128), (200, 1, 8, 256), (200, 1, 8, 512), (200, 16, 8, 128), (200, 16, 8, 256),
          (520, 20, 10, 40), (300, 1, 8, 64), (35, 16, 256, 256), (35, 1, 512, 512)]  # fmt: skip
KINDS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn_tanh": nn.RNN}
DEFAULT_SPLIT = 16


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", default="lstm,gru,rnn_tanh")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/step_paths.txt")
    args = parser.parse_args(argv)
    ext = native.extension()
    if ext is None:
        parser.error("the compiled engine is not in use here (no C++ compiler, or RNNLAB_ENGINE=python)")
    lines = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU vendor {ext.cpu_vendor()}; "
        "training step, median ms"
    ]
    for cell in args.cells.split(","):
        for steps, batch, inputs, hidden in SHAPES:
            torch.manual_seed(0)
            reference = KINDS[cell](inputs, hidden)
            ours = rnnlab.from_torch(reference)
            x = torch.randn(steps, batch, inputs)

            def step(module, x=x):
                module.zero_grad()
                out, _ = module(x)
                out[-1].sum().backward()

            times: dict[str, list[float]] = {"brgemm": [], "split": [], "no split": [], "torch.nn": []}
            for _ in range(args.rounds):
                for variant in times:
                    torch.set_flush_denormal(variant == "torch.nn")
                    ext.set_brgemm("on" if variant == "brgemm" else "off")
                    ext.set_step_split(0 if variant == "no split" else DEFAULT_SPLIT)
                    module = reference if variant == "torch.nn" else ours
                    step(module)  # the first step after a switch pays for the caches
                    block = []
                    for _ in range(3):
                        start = time.perf_counter()
                        step(module)
                        block.append(time.perf_counter() - start)
                    times[variant].append(statistics.median(block))
            torch.set_flush_denormal(False)
            ext.set_step_split(DEFAULT_SPLIT)
            ext.set_brgemm("auto")
            ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
            line = (f"{cell:8} T={steps} B={batch} I={inputs} H={hidden}: "
                    + "  ".join(f"{k} {v:.2f}" for k, v in ms.items())
                    + f"  brgemm/torch {ms['brgemm'] / ms['torch.nn']:.2f}  split/torch {ms['split'] / ms['torch.nn']:.2f}"
                    + f"  no-split/torch {ms['no split'] / ms['torch.nn']:.2f}")  # fmt: skip
            print(line, flush=True)
            lines.append(line)
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
