"""rnnlab.ExpRNN against the obvious PyTorch implementation: forward + backward, side by side in one run.

One measured step = forward over the whole sequence, a loss on every step's output, backward (no optimiser), for

  rnnlab        `rnnlab.ExpRNN`: exp(A) once per forward, the engine's loop over `Cell.step` and its
                hand-written backward
  rnnlab+rec    the same inside `rnnlab.record_gradients` (‖∂L/∂h_t‖ of every step recorded)
  paper loop    what the authors' code does (github Lezcano/expRNN, `orthogonal.py`): B = exp(A) once per
                forward, then a Python loop over steps of input_kernel(x_t) + h B and modReLU, autograd's backward

at each sequence length T. Defaults are the authors' copy task (batch 128, input 10 = 9 symbols + marker,
hidden 190; T = L + 2K = 1020 at L = 1000). The variants are interleaved in rounds (each round's first step
untimed); the median per step and the ratio paper loop / rnnlab are printed and written to
benchmarks/results/exprnn.txt.

    .venv/bin/python benchmarks/bench_exprnn.py [--lengths 100,1020] [--rounds 3] [--device cpu]
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


class PaperLoop(nn.Module):
    """The authors' OrthogonalRNN in their copy script's loop, written from their code's description (not copied):
    an input Linear without bias, B = exp(A − Aᵀ) from A's upper triangle, h_t = modReLU(W x_t + h_{t−1} B)."""

    def __init__(self, expnn: rnnlab.ExpRNN):
        super().__init__()
        self.input_kernel = nn.Linear(expnn.input_size, expnn.hidden_size, bias=False)
        self.A = nn.Parameter(expnn.skew_weight_hh_l0.detach().clone())
        self.b = nn.Parameter(expnn.bias_hh_l0.detach().clone())
        with torch.no_grad():
            self.input_kernel.weight.copy_(expnn.weight_ih_l0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (B, T, I) → (B, T, H)
        upper = self.A.triu(diagonal=1)
        recurrent = torch.linalg.matrix_exp(upper - upper.t()).t()  # row layout: h B with B = W_hhᵀ
        h = x.new_zeros(x.shape[0], self.A.shape[0])
        outputs = []
        for x_t in torch.unbind(x, dim=1):
            z = self.input_kernel(x_t) + h @ recurrent
            h = torch.sign(z) * torch.relu(z.abs() + self.b)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


def _step_fns(args, length: int) -> dict:
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(args.batch, length, args.input_size, generator=gen).to(args.device)
    weights = torch.randn(args.batch, length, args.hidden, generator=gen).to(args.device)
    torch.manual_seed(0)
    ours = rnnlab.ExpRNN(args.input_size, args.hidden, batch_first=True).to(args.device)
    theirs = PaperLoop(ours).to(args.device)

    def rnnlab_step() -> None:
        ours.zero_grad()
        out, _ = ours(x)
        (out * weights).sum().backward()

    def recorded_step() -> None:
        with rnnlab.record_gradients(ours):
            rnnlab_step()

    def paper_step() -> None:
        theirs.zero_grad()
        (theirs(x) * weights).sum().backward()

    return {"rnnlab": rnnlab_step, "rnnlab+rec": recorded_step, "paper loop": paper_step}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(length: int, args) -> dict[str, float]:
    """Median seconds per forward + backward of each variant at sequence length `length`."""
    steps = _step_fns(args, length)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for round_ in range(args.rounds):
        order = list(steps) if round_ % 2 == 0 else list(reversed(steps))  # no variant always runs after another
        for name in order:
            steps[name]()  # untimed: warms the caches and the allocator for this variant
            _sync(args.device)
            start = time.perf_counter()
            steps[name]()
            _sync(args.device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", default="100,1020", help="comma-separated T (1020: the copy task at L = 1000)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--input-size", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=190)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/exprnn.txt")
    args = parser.parse_args(argv)
    lengths = [int(t) for t in args.lengths.split(",")]
    where = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else platform.processor()
    lines = [
        f"{where or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads; batch "
        f"{args.batch}, input {args.input_size}, hidden {args.hidden}, one layer, float32; median ms per forward + "
        f"backward over {args.rounds} rounds",
        f"{'T':>6} {'rnnlab':>10} {'rnnlab+rec':>11} {'paper loop':>11} {'paper/rnnlab':>13}",
    ]
    print("\n".join(lines), flush=True)
    for length in lengths:
        ms = {name: s * 1e3 for name, s in measure(length, args).items()}
        ours, recorded, paper = ms["rnnlab"], ms["rnnlab+rec"], ms["paper loop"]
        line = f"{length:>6} {ours:>10.2f} {recorded:>11.2f} {paper:>11.2f} {paper / ours:>12.2f}×"
        emit(lines, line)
    write_lines(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
