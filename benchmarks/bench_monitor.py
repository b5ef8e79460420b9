"""What `rnnlab.monitor` costs in a user's training loop: a whole update, side by side in one run.

A model holding an `nn.LSTM` between an input and an output layer (batch 32, T steps, hidden 128), trained
with Adam on a last-step regression loss, one update = zero_grad, forward, loss, backward, step:

  torch.nn       the model as written (torch.nn.LSTM, PyTorch's defaults)
  never          converted by `rnnlab.convert`, no monitor
  every 10       `rnnlab.monitor(model, every=10)`: one update in ten is recorded
  every 1        `rnnlab.monitor(model, every=1)`: every update is recorded

The variants are interleaved in rounds of 20 updates (each round's first 10 untimed); medians per update
and the ratio to `never` (the monitor's own overhead) are printed and written to
benchmarks/results/monitor.txt.

    .venv/bin/python benchmarks/bench_monitor.py [--steps 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import rnnlab


class Model(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.embed = nn.Linear(4, 32)
        self.rnn = nn.LSTM(32, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(torch.tanh(self.embed(x)))
        return self.head(out[:, -1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=200, help="sequence length T")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/monitor.txt")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    base = Model(args.hidden)
    x = torch.randn(32, args.steps, 4, generator=torch.Generator().manual_seed(1))
    y = torch.randn(32, 1, generator=torch.Generator().manual_seed(2))
    models = {"torch.nn": copy.deepcopy(base), "never": rnnlab.convert(copy.deepcopy(base))}
    monitors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rnnlab.recurrent.monitor.HorizonWarning)  # the warning is not timed
        for every in (10, 1):
            model = copy.deepcopy(base)
            monitors[every] = rnnlab.monitor(model, every=every, warn=False)
            models[f"every {every}"] = model
    optimizers = {name: torch.optim.Adam(m.parameters(), lr=1e-3) for name, m in models.items()}

    def update(name):
        model, optimizer = models[name], optimizers[name]
        optimizer.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds):
        for name in models:
            for i in range(20):
                start = time.perf_counter()
                update(name)
                if i >= 10:
                    times[name].append(time.perf_counter() - start)
    ms = {name: statistics.median(t) * 1e3 for name, t in times.items()}
    recorded = {every: len(m.history) for every, m in monitors.items()}
    lines = [
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; LSTM hidden {args.hidden}, T={args.steps}, "
        f"batch 32, Adam; median ms per update over {args.rounds} rounds of 10 timed updates",
        *(f"{name:9} {value:8.2f} ms   {value / ms['never']:.2f}× of never" for name, value in ms.items()),
        f"rows recorded: every 10 → {recorded[10]}, every 1 → {recorded[1]}",
    ]
    print("\n".join(lines))
    Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
