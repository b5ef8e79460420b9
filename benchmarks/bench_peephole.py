"""The uRNN paper's LSTM (`lstm_peephole_out`: an output-gate peephole from c_t through a full V_o) by its
compiled kernel, by rnnlab's Python loop and as a plain autograd loop, beside rnnlab's compiled LSTM.

One training step = zero_grad, forward, a loss on every step's output, backward, Adam step, for one layer of

  compiled   `make_recurrent("lstm_peephole_out", …)`: the compiled time loop with `_ext/kernels/lstm_peephole.cpp`
  loop       the same module under RNNLAB_ENGINE=python: rnnlab's Python loop over `OutputPeepholeLSTMCell.step`
  autograd   the paper's equations (amarshah/complex_RNN models.py `LSTM`) as a Python loop that autograd
             differentiates, one product per step with the four gates' W_hh and one with V_o
  lstm       `rnnlab.LSTM` (compiled): the same LSTM without the peephole — what the peephole costs

at each sequence length T (batch 20, input 2, hidden 128 by default: the adding study F3's shape). The variants
are interleaved in rounds (bench_scan's `median_step_times`); the median per step and the ratios to the compiled
peephole kernel are printed and written to benchmarks/results/peephole.txt. The autograd loop is checked against
the module first.

    .venv/bin/python benchmarks/bench_peephole.py [--lengths 200,400,750] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import sys

import torch
from torch import nn

import rnnlab
from bench_indrnn import OnEngine
from bench_scan import median_step_times
from results_file import emit, write_lines

NAME = "lstm_peephole_out"


class PaperLoop(nn.Module):
    """One layer of the paper's LSTM as a plain Python loop differentiated by autograd, `source`'s parameters
    copied (weight_hh's first four blocks as one matrix, V_o as another)."""

    def __init__(self, source: nn.Module):
        super().__init__()
        hidden = source.hidden_size
        self.weight_ih = nn.Parameter(source.weight_ih_l0.detach().clone())
        self.weight_hh = nn.Parameter(source.weight_hh_l0.detach()[: 4 * hidden].clone())
        self.peephole = nn.Parameter(source.weight_hh_l0.detach()[4 * hidden :].clone())
        self.bias = nn.Parameter((source.bias_ih_l0 + source.bias_hh_l0).detach().clone())

    def forward(self, x):  # x (B, T, I), batch first
        pre = x @ self.weight_ih.t() + self.bias  # (B, T, 4H)
        hidden = self.peephole.shape[0]
        h = c = pre.new_zeros(pre.shape[0], hidden)
        states = []
        for pre_t in pre.unbind(1):
            gates = pre_t + h @ self.weight_hh.t()
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o + c @ self.peephole.t()) * torch.tanh(c)
            states.append(h)
        return torch.stack(states, dim=1), h


def measure(length: int, args) -> dict[str, float]:
    """Median seconds per training step of each variant at sequence length `length`."""
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(args.batch, length, args.input_size, generator=gen)
    target = torch.randn(args.batch, length, args.hidden, generator=gen)
    torch.manual_seed(0)
    compiled = rnnlab.make_recurrent(NAME, args.input_size, args.hidden, batch_first=True)
    loop = rnnlab.make_recurrent(NAME, args.input_size, args.hidden, batch_first=True)
    loop.load_state_dict(compiled.state_dict())
    plain = PaperLoop(compiled)
    with torch.no_grad():  # the comparison is of equal computations
        torch.testing.assert_close(plain(x)[0], compiled(x)[0], rtol=1e-4, atol=1e-5)
    lstm = rnnlab.LSTM(args.input_size, args.hidden, batch_first=True)
    variants = {"compiled": OnEngine(compiled, "auto"), "loop": OnEngine(loop, "python"), "autograd": plain}
    return median_step_times({**variants, "lstm": OnEngine(lstm, "auto")}, x, target, args.rounds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="200,400,750", help="comma-separated T")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--input-size", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/peephole.txt")
    args = parser.parse_args(argv)
    lines = [
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
        f"threads, engine {rnnlab.engine.backend()}; batch {args.batch}, input {args.input_size}, hidden "
        f"{args.hidden}, one layer, float32; median ms per training step (Adam) over {args.rounds} rounds",
        f"{'T':>6} {'compiled':>10} {'loop':>10} {'autograd':>10} {'lstm':>10} {'loop/compiled':>14} "
        f"{'autograd/compiled':>18} {'compiled/lstm':>14}",
    ]
    print("\n".join(lines), flush=True)
    for length in (int(t) for t in args.lengths.split(",")):
        ms = {name: s * 1e3 for name, s in measure(length, args).items()}
        fast, loop, plain, lstm = ms["compiled"], ms["loop"], ms["autograd"], ms["lstm"]
        line = (
            f"{length:>6} {fast:>10.2f} {loop:>10.2f} {plain:>10.2f} {lstm:>10.2f} {loop / fast:>13.1f}× "
            f"{plain / fast:>17.1f}× {fast / lstm:>13.2f}×"
        )
        emit(lines, line)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
