"""rnnlab.CoRNN against the obvious PyTorch coRNN: forward + backward, side by side in one run.

One measured call = forward over T steps, a loss on the last y (the adding task's readout reads y_T), backward
(gradients of every weight), for one layer of

  paper loop   coRNN as the authors' code computes it: a Python loop over steps, one ``nn.Linear(I + 2H, H)`` on
               cat(x, z, y) per step, autograd's backward (written here from their equations)
  rnnlab       `rnnlab.CoRNN`: the engine's Python loop over `CoRNNCell.step`, its hand-written backward
  recorded     the same inside `rnnlab.record_gradients` (‖∂L/∂y_t‖ and ‖∂L/∂z_t‖ of every step kept)

at each sequence length T (batch 50, input 2, hidden 128 by default: the authors' adding script; Δt, γ, ε theirs
too). Both models hold the same weights, and their outputs and gradients are checked equal (float32, 1e-4)
before anything is timed. The variants are interleaved in rounds (each round's first call untimed); the median
per call and the ratios paper loop / rnnlab and recorded / rnnlab are printed and written to
benchmarks/results/cornn.txt.

    .venv/bin/python benchmarks/bench_cornn.py [--lengths 100,500,1000] [--rounds 3]
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


class PaperCoRNN(nn.Module):
    """coRNN the way its paper's code runs it: x (T, B, I) → y_T (B, H), one Linear on cat(x, z, y) per step."""

    def __init__(self, input_size: int, hidden: int, dt: float, gamma: float, epsilon: float):
        super().__init__()
        self.hidden, self.dt, self.gamma, self.epsilon = hidden, dt, gamma, epsilon
        self.i2h = nn.Linear(input_size + 2 * hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = z = x.new_zeros((x.shape[1], self.hidden))  # (B, H)
        for t in range(x.shape[0]):
            z = z + self.dt * (torch.tanh(self.i2h(torch.cat([x[t], z, y], dim=1))) - self.gamma * y - self.epsilon * z)
            y = y + self.dt * z
        return y


def _twins(args) -> tuple[rnnlab.CoRNN, PaperCoRNN]:
    """rnnlab.CoRNN and the paper's loop with the same weights (their i2h weight = [weight_ih | weight_hh])."""
    torch.manual_seed(0)
    ours = rnnlab.CoRNN(args.input_size, args.hidden)
    paper = PaperCoRNN(args.input_size, args.hidden, ours.dt, ours.gamma, ours.epsilon)
    with torch.no_grad():
        paper.i2h.weight.copy_(torch.cat([ours.weight_ih_l0, ours.weight_hh_l0], dim=1))
        paper.i2h.bias.copy_(ours.bias_ih_l0)
    return ours, paper


def _call(module: nn.Module, x: torch.Tensor, target: torch.Tensor, record: bool = False):
    """One forward + backward; returns the call (a closure) that the rounds time."""
    paper = isinstance(module, PaperCoRNN)

    def call() -> None:
        module.zero_grad(set_to_none=True)
        if record:
            with rnnlab.record_gradients(module):
                last = module(x)[0][-1]
                nn.functional.mse_loss(last, target).backward()
            return
        last = module(x) if paper else module(x)[0][-1]
        nn.functional.mse_loss(last, target).backward()

    return call


def _check_equal(ours: rnnlab.CoRNN, paper: PaperCoRNN, x: torch.Tensor, target: torch.Tensor) -> None:
    """The two compute the same numbers: outputs and every weight gradient, float32 to 1e-4."""
    _call(ours, x, target)()
    _call(paper, x, target)()
    torch.testing.assert_close(ours(x)[0][-1], paper(x), rtol=1e-4, atol=1e-5)
    grad = torch.cat([ours.weight_ih_l0.grad, ours.weight_hh_l0.grad], dim=1)
    torch.testing.assert_close(grad, paper.i2h.weight.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.bias_ih_l0.grad, paper.i2h.bias.grad, rtol=1e-4, atol=1e-6)


def measure(length: int, args) -> dict[str, float]:
    """Median seconds per forward + backward of each variant at sequence length `length`."""
    gen = torch.Generator().manual_seed(length)
    x = torch.rand(length, args.batch, args.input_size, generator=gen)  # (T, B, I)
    target = torch.rand(args.batch, args.hidden, generator=gen)
    ours, paper = _twins(args)
    _check_equal(ours, paper, x, target)
    calls = {"paper loop": _call(paper, x, target), "rnnlab": _call(ours, x, target), "recorded": _call(ours, x, target, record=True)}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            call()  # untimed: warms the caches and the allocator for this variant
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,500,1000", help="comma-separated T")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--input-size", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/cornn.txt")
    args = parser.parse_args(argv)
    lengths = [int(t) for t in args.lengths.split(",")]
    lines = [
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads; batch {args.batch}, input {args.input_size}, hidden {args.hidden}, one layer, float32; "
        f"median ms per forward + backward over {args.rounds} rounds (outputs and gradients checked equal first)",
        f"{'T':>6} {'paper loop':>11} {'rnnlab':>9} {'recorded':>9} {'paper/rnnlab':>13} {'recorded/rnnlab':>16}",
    ]
    print("\n".join(lines), flush=True)
    for length in lengths:
        ms = {name: s * 1e3 for name, s in measure(length, args).items()}
        paper, ours, recorded = ms["paper loop"], ms["rnnlab"], ms["recorded"]
        line = (
            f"{length:>6} {paper:>11.2f} {ours:>9.2f} {recorded:>9.2f} {paper / ours:>12.2f}× {recorded / ours:>15.2f}×"
        )
        emit(lines, line)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
