"""A real program with rnnlab substituted: pytorch/examples' word language model, unmodified.

Runs `word_language_model/main.py` from a pytorch/examples checkout twice on the same small corpus (consecutive
lines of the WikiText-2 validation file that ships with the example): once as it is (torch.nn), once with
`torch.nn.RNN/LSTM/GRU` replaced by rnnlab's classes before the program starts. The program trains, evaluates,
saves the whole model with `torch.save`, loads it back with `torch.load` (weights_only, the default, under the
program's own safe-globals list), calls `flatten_parameters()` and evaluates on the test set. It compares the
loss the program logs after every batch (`--log-interval 1`) and the final test loss; dropout is 0 so that
both runs draw the same random numbers. A third run, torch.nn with its initial weights changed by 1e-6
relative, shows how far float32 round-off of that size carries at the example's learning rate of 20.

The example is not vendored into rnnlab (it is another project's program), so this is a script, not a test:

    .venv/bin/python benchmarks/word_language_model.py --examples /path/to/pytorch/examples
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUBSTITUTE = """
import runpy, sys, torch, rnnlab
torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU = rnnlab.RNN, rnnlab.LSTM, rnnlab.GRU
sys.argv = ["main.py", *sys.argv[1:]]
runpy.run_path("main.py", run_name="__main__")
"""
# The yardstick for "float round-off": torch.nn itself with every initial weight changed by 1e-6 relative, about
# the size of rnnlab's float32 differences from oneDNN (its own tanh and sigmoid, other summation orders).
NUDGED = """
import runpy, sys, torch
for kind in (torch.nn.RNN, torch.nn.LSTM, torch.nn.GRU):
    def reset(self, original=kind.reset_parameters):
        original(self)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(1 + 1e-6)
    kind.reset_parameters = reset
sys.argv = ["main.py", *sys.argv[1:]]
runpy.run_path("main.py", run_name="__main__")
"""
LOSS = re.compile(r"\| epoch +(\d+) \| +(\d+)/ *\d+ batches .*\| loss +([0-9.]+)")
TEST = re.compile(r"\| End of training \| test loss +([0-9.]+)")


def small_corpus(source: Path, target: Path, lines: int) -> None:
    """train/valid/test from consecutive lines of the example's valid.txt (its train.txt is a large file that
    repository snapshots may leave out): `lines` for training, a quarter as many for each of the others."""
    text = (source / "valid.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    held = max(lines // 4, 20)
    target.mkdir(parents=True)
    parts = {"train.txt": text[:lines], "valid.txt": text[lines : lines + held],
             "test.txt": text[lines + held : lines + 2 * held]}  # fmt: skip
    for name, part in parts.items():
        (target / name).write_text("".join(part), encoding="utf-8")


def run(folder: Path, variant: str, args: list[str]) -> tuple[list[tuple[int, int, float]], float, str]:
    prelude = {"torch.nn": None, "rnnlab": SUBSTITUTE, "nudged": NUDGED}[variant]
    command = [sys.executable, *(["-c", prelude] if prelude else ["main.py"]), *args]
    done = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"main.py failed ({variant}):\n{done.stderr[-3000:]}")
    losses = [(int(e), int(b), float(v)) for e, b, v in LOSS.findall(done.stdout)]
    test = TEST.search(done.stdout)
    if not losses or test is None:
        raise SystemExit(f"no losses found in the program's output:\n{done.stdout[-3000:]}")
    return losses, float(test.group(1)), done.stdout


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", required=True, help="a pytorch/examples checkout")
    parser.add_argument("--model", default="LSTM", choices=["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
    parser.add_argument("--lines", type=int, default=400, help="training lines of WikiText-2 to use")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/word_language_model.txt")
    args = parser.parse_args(argv)
    example = Path(args.examples) / "word_language_model"
    if not (example / "main.py").exists():
        parser.error(f"{example / 'main.py'} does not exist; pass the root of a pytorch/examples checkout")
    program = ["--model", args.model, "--epochs", str(args.epochs), "--emsize", "64", "--nhid", "64",
               "--dropout", "0", "--log-interval", "1", "--data", "corpus", "--save", "model.pt"]  # fmt: skip
    results = {}
    for variant in ("torch.nn", "rnnlab", "nudged"):
        folder = Path(tempfile.mkdtemp(prefix="wlm-"))
        for name in ("main.py", "model.py", "data.py"):
            shutil.copy(example / name, folder / name)
        small_corpus(example / "data" / "wikitext-2", folder / "corpus", args.lines)
        results[variant] = run(folder, variant, program)
        shutil.rmtree(folder)
    torch_losses, torch_test, _ = results["torch.nn"]
    ours_losses, ours_test, ours_log = results["rnnlab"]

    def drift(losses):
        """(the last batch whose logged loss equals torch.nn's to the printed decimals, the largest gap)"""
        assert [(e, b) for e, b, _ in torch_losses] == [(e, b) for e, b, _ in losses]
        gaps = [abs(a[2] - b[2]) for a, b in zip(torch_losses, losses, strict=True)]
        first = next((i for i, gap in enumerate(gaps) if gap > 0.011), len(gaps))
        return first, max(gaps)

    (same, worst), (nudged_same, nudged_worst) = drift(ours_losses), drift(results["nudged"][0])
    first = [(round(a[2], 2), round(b[2], 2)) for a, b in zip(torch_losses[:5], ours_losses[:5], strict=True)]
    report = (
        f"pytorch/examples word_language_model/main.py, unmodified, --model {args.model}, {args.epochs} epochs, "
        f"{args.lines} training lines (of WikiText-2's valid.txt), emsize=nhid=64, dropout 0\n"
        f"logged batch losses compared: {len(torch_losses)}; identical to the 2 printed decimals up to batch "
        f"{same}; largest difference {worst:.2f}\n"
        f"yardstick, torch.nn with its initial weights changed by 1e-6 relative: identical up to batch "
        f"{nudged_same}; largest difference {nudged_worst:.2f}; test loss {results['nudged'][1]:.2f}\nfirst five (torch.nn, rnnlab): {first}\n"
        f"test loss after save, torch.load and flatten_parameters: torch.nn {torch_test:.2f}, rnnlab {ours_test:.2f}\n"
    )
    print(report + "\nrnnlab run, last lines:\n" + "\n".join(ours_log.strip().splitlines()[-4:]))
    Path(args.out).write_text(report)
    return 0 if same >= 10 else 1


if __name__ == "__main__":
    sys.exit(main())
