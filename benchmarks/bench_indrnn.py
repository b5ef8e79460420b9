"""IndRNN's compiled kernel against rnnlab's Python loop and against a plain autograd loop: one training step each.

One training step = zero_grad, forward, a loss on every step's output, backward, Adam step, for one layer of

  compiled   `rnnlab.IndRNN`: the engine's compiled time loop (`_ext/kernels/rnn.cpp`, the ReLU kernel with u)
  loop       the same module under RNNLAB_ENGINE=python: rnnlab's Python loop over `IndRNNCell.step`
  autograd   h_t = ReLU(x_t W_ihᵀ + b + u ⊙ h_{t−1}) written as a Python loop that autograd differentiates —
             the plain form of the authors' code (IndRNN_pytorch's `IndRNN_onlyrecurrent` without its CUDA kernel)

at each sequence length T (batch 32, input 32, hidden 128 by default). The variants are interleaved in rounds
(bench_scan's `median_step_times`); the median per step and the ratios loop/compiled and autograd/compiled are
printed and written to benchmarks/results/indrnn.txt. The autograd loop is checked against the module first.

    .venv/bin/python benchmarks/bench_indrnn.py [--lengths 100,256,1000,5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

import torch
from torch import nn

import rnnlab
from bench_scan import median_step_times  # the same training step and rounds as the minGRU benchmark's
from results_file import emit, write_lines


class OnEngine(nn.Module):
    """`module` run with RNNLAB_ENGINE set to `engine` for its forward (the backward follows the forward's path)."""

    def __init__(self, module: nn.Module, engine: str):
        super().__init__()
        self.module, self.engine = module, engine

    def forward(self, x):
        before = os.environ.get("RNNLAB_ENGINE")
        os.environ["RNNLAB_ENGINE"] = self.engine
        try:
            return self.module(x)
        finally:
            if before is None:
                del os.environ["RNNLAB_ENGINE"]
            else:
                os.environ["RNNLAB_ENGINE"] = before


class AutogradIndRNN(nn.Module):
    """One IndRNN layer as a plain Python loop differentiated by autograd, with `source`'s parameters copied."""

    def __init__(self, source: rnnlab.IndRNN):
        super().__init__()
        self.weight_ih = nn.Parameter(source.weight_ih_l0.detach().clone())
        self.u = nn.Parameter(source.weight_hh_l0.detach().clone())
        self.bias = nn.Parameter(source.bias_ih_l0.detach().clone())

    def forward(self, x):  # x (B, T, I), batch first
        pre = x @ self.weight_ih.t() + self.bias  # (B, T, H)
        h = pre.new_zeros(pre.shape[0], pre.shape[2])
        states = []
        for pre_t in pre.unbind(1):  # unbind, not pre[:, t]: each slice's backward would fill a (B, T, H) zero tensor
            h = torch.relu(pre_t + self.u * h)
            states.append(h)
        return torch.stack(states, dim=1), h


def measure(length: int, args) -> dict[str, float]:
    """Median seconds per training step of each variant at sequence length `length`."""
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(args.batch, length, args.input_size, generator=gen)
    target = torch.randn(args.batch, length, args.hidden, generator=gen)
    torch.manual_seed(0)
    compiled = rnnlab.IndRNN(args.input_size, args.hidden, batch_first=True)
    loop = rnnlab.IndRNN(args.input_size, args.hidden, batch_first=True)
    loop.load_state_dict(compiled.state_dict())
    plain = AutogradIndRNN(compiled)
    with torch.no_grad():  # the comparison is of equal computations
        torch.testing.assert_close(plain(x)[0], compiled(x)[0], rtol=1e-4, atol=1e-5)
    variants = {"compiled": OnEngine(compiled, "auto"), "loop": OnEngine(loop, "python"), "autograd": plain}
    return median_step_times(variants, x, target, args.rounds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,256,1000,5000", help="comma-separated T")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/indrnn.txt")
    args = parser.parse_args(argv)
    lines = [
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, engine {rnnlab.engine.backend()}; batch {args.batch}, input {args.input_size}, hidden "
        f"{args.hidden}, one layer, float32; median ms per training step (Adam) over {args.rounds} rounds",
        f"{'T':>6} {'compiled':>10} {'loop':>10} {'autograd':>10} {'loop/compiled':>14} {'autograd/compiled':>18}",
    ]
    print("\n".join(lines), flush=True)
    for length in (int(t) for t in args.lengths.split(",")):
        ms = {name: s * 1e3 for name, s in measure(length, args).items()}
        fast, loop, plain = ms["compiled"], ms["loop"], ms["autograd"]
        line = f"{length:>6} {fast:>10.2f} {loop:>10.2f} {plain:>10.2f} {loop / fast:>13.1f}× {plain / fast:>17.1f}×"
        emit(lines, line)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
