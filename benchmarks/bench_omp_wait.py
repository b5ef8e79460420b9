"""What a second multi-threaded PyTorch job does to a training step, and what OMP_WAIT_POLICY=PASSIVE changes.

One training step of `torch.nn.GRU` (T = 100, batch 32, input 32, hidden 128 by default; Adam) is timed in a fresh process
for each setting — PyTorch's default OpenMP waiting (threads spin), `OMP_WAIT_POLICY=PASSIVE` (threads sleep),
and one thread — first on the machine as it is, then beside a competing process that runs 2-thread matrix
products without pause (`--competitor-threads`). Median of 7 steps per setting; written to
benchmarks/results/omp-wait.txt. A fresh process per setting, because OpenMP reads its environment once.

    .venv/bin/python benchmarks/bench_omp_wait.py [--competitor-threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

from results_file import write_lines

STEP = """
import statistics, time, torch
from torch import nn
x, target = torch.randn(32, {seq_len}, 32), torch.randn(32, {seq_len}, {hidden})
model = nn.GRU(32, {hidden}, batch_first=True)
optimizer = torch.optim.Adam(model.parameters())
def step():
    optimizer.zero_grad()
    nn.functional.mse_loss(model(x)[0], target).backward()
    optimizer.step()
step()
times = []
for _ in range(7):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
print(statistics.median(times) * 1e3)
"""

COMPETITOR = """
import torch
torch.set_num_threads({threads})
a = torch.randn(256, 256)
while True:
    a = torch.tanh(a @ a)
"""

SETTINGS = {
    "2 threads, spinning (default)": {},
    "2 threads, OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
}


def median_step_ms(extra_env: dict[str, str], args) -> float:
    env = {**os.environ, **extra_env}
    if "OMP_NUM_THREADS" not in extra_env:
        env["OMP_NUM_THREADS"] = "2"
    code = STEP.format(seq_len=args.seq_len, hidden=args.hidden)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--competitor-threads", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=100)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--out", default="benchmarks/results/omp-wait.txt")
    args = parser.parse_args(argv)
    lines = [
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the "
        f"start; torch.nn.GRU training step T {args.seq_len}, B 32, I 32, H {args.hidden} (Adam); median ms of 7 steps, a fresh "
        f"process per setting",
        f"{'setting':<36} {'as it is':>10} {f'beside a {args.competitor_threads}-thread job':>24}",
    ]
    alone = {name: median_step_ms(env, args) for name, env in SETTINGS.items()}
    competitor = subprocess.Popen(
        [sys.executable, "-c", COMPETITOR.format(threads=args.competitor_threads)],
        env={**os.environ, "OMP_NUM_THREADS": str(args.competitor_threads)},
    )
    try:
        time.sleep(2)  # let it start spinning
        beside = {name: median_step_ms(env, args) for name, env in SETTINGS.items()}
    finally:
        competitor.kill()
        competitor.wait()
    for name in SETTINGS:
        lines.append(f"{name:<36} {alone[name]:>10.1f} {beside[name]:>24.1f}")
    print("\n".join(lines), flush=True)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
