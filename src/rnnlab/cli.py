"""The command line: parses, calls the library, and turns user mistakes into one-line errors (exit 2).

Every subcommand is a function `_cmd_NAME(args) -> int` registered in `_build_parser`. User mistakes —
argparse errors and the ValueError / TypeError the library raises for bad values — print
``rnnlab: error: <what was wrong and what was expected>`` and exit 2, without a traceback
(set RNNLAB_TRACEBACK=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

import rnnlab


class UsageError(Exception):
    """A mistake in how rnnlab was called: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage block first
        command = self.prog.removeprefix("rnnlab").strip()
        raise UsageError(f"{command}: {message}" if command else message)


def _console() -> Console:
    # Tables stay readable when the output is a file or a pipe (rich would assume 80 columns).
    width = None if sys.stdout.isatty() else 120
    return Console(highlight=False, width=width)


# ------------------------------------------------------------------------------------------------ commands


def _cmd_inits(args: argparse.Namespace) -> int:
    from rnnlab.init import SCHEMES

    table = Table(title="Initialisation schemes (combine with '+', e.g. orthogonal+chrono)")
    table.add_column("name")
    table.add_column("cells")
    table.add_column("options")
    table.add_column("what it does")
    for scheme in SCHEMES.values():
        cells = "all" if len(scheme.cells) == 5 else ", ".join(sorted(scheme.cells))
        table.add_row(scheme.name, cells, ", ".join(scheme.options) or "-", scheme.summary)
    _console().print(table)
    return 0


DEFAULT_MODELS = "rnn_tanh,rnn_tanh:orthogonal,rnn_relu:identity,lstm,lstm:forget_bias,lstm:chrono,gru"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _cmd_diagnose(args: argparse.Namespace) -> int:
    import torch

    from rnnlab import diagnostics
    from rnnlab.report.plots import gradient_profiles

    if args.models is not None and (args.cells is not None or args.init is not None):
        raise UsageError("diagnose: give either --models or --cells/--init, not both")
    if args.models is not None:
        specs = [diagnostics.ModelSpec.parse(m) for m in args.models.split(",") if m.strip()]
    elif args.cells is not None:
        init_spec = args.init or "torch_default"
        specs = [diagnostics.ModelSpec(cell.strip(), init_spec) for cell in args.cells.split(",") if cell.strip()]
    else:
        init_spec = args.init
        specs = [diagnostics.ModelSpec.parse(m) for m in DEFAULT_MODELS.split(",")]
        if init_spec is not None:
            specs = [diagnostics.ModelSpec(s.cell, init_spec) for s in specs]
    if not specs:
        raise UsageError("diagnose: no models given")
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    results = diagnostics.compare(
        specs,
        seq_len=args.seq_len,
        hidden_size=args.hidden,
        input_size=args.input_size,
        batch_size=args.batch,
        num_layers=args.layers,
        seed=args.seed,
        dtype=dtype,
    )
    lag = args.seq_len // 2
    table = Table(
        title=f"Gradient flow of untrained models (T={args.seq_len}, H={args.hidden}, I={args.input_size}, "
        f"batch {args.batch}, {args.layers} layer(s), seed {args.seed})"
    )
    for column in (
        "model",
        "decay / step",
        "fit r²",
        "half-life",
        f"horizon @ {args.threshold:g}",
        f"‖∂L/∂h‖ @ lag {lag}",
        "ρ(W_hh)",
    ):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        fit = r.flow.decay_rate()
        grad_at_lag = r.flow.profile()[lag].item()
        table.add_row(
            r.spec.label,
            f"{fit.rate:.3f}",
            f"{fit.r2:.2f}",
            f"{fit.half_life:.1f}",
            str(r.flow.horizon(args.threshold)),
            f"{grad_at_lag:.1e}",
            f"{r.radius[-1].max().item():.2f}",
        )
    console = _console()
    console.print(table)
    path = gradient_profiles(
        {r.spec.label: r.flow.profile() for r in results},
        args.out,
        title=f"The vanishing gradient: ‖∂L/∂h_t‖ against lag (T={args.seq_len}, H={args.hidden}, untrained)",
        threshold=args.threshold,
    )
    console.print(
        f"Horizon: the largest lag at which ‖∂L/∂h_t‖ is still ≥ {args.threshold:g} × its value at lag 0 "
        f"({args.seq_len - 1} means at least the whole sequence)."
    )
    console.print(f"Plot written to {path}")
    return 0


# ------------------------------------------------------------------------------------------------ parser


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnlab",
        description="See, measure and fix the vanishing (and exploding) gradient in recurrent networks.",
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {rnnlab.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    inits = sub.add_parser("inits", help="list the initialisation schemes")
    inits.set_defaults(func=_cmd_inits)

    diagnose = sub.add_parser(
        "diagnose",
        help="compare how far back the gradient reaches in untrained models",
        description="Measure ‖∂L/∂h_t‖ for every step of untrained models, print the decay rate and horizon "
        "of each, and plot log‖∂L/∂h_t‖ against lag.",
    )
    diagnose.add_argument(
        "--models",
        help=f"comma-separated CELL[:INIT[+INIT]] (default: {DEFAULT_MODELS})",
    )
    diagnose.add_argument("--cells", help="comma-separated cells, all with --init (instead of --models)")
    diagnose.add_argument("--init", help="init spec for --cells, e.g. orthogonal or orthogonal+chrono")
    diagnose.add_argument("--seq-len", type=_positive_int, default=200, help="sequence length T (default 200)")
    diagnose.add_argument("--hidden", type=_positive_int, default=128, help="hidden size H (default 128)")
    diagnose.add_argument("--input-size", type=_positive_int, default=2, help="input features I (default 2)")
    diagnose.add_argument("--batch", type=_positive_int, default=32, help="batch size (default 32)")
    diagnose.add_argument("--layers", type=_positive_int, default=1, help="stacked layers (default 1)")
    diagnose.add_argument("--seed", type=int, default=0, help="seed for weights and inputs (default 0)")
    diagnose.add_argument("--threshold", type=_fraction, default=1e-3, help="horizon threshold (default 1e-3)")
    diagnose.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    diagnose.add_argument("--out", default="out/diagnose.png", help="PNG path (default out/diagnose.png)")
    diagnose.set_defaults(func=_cmd_diagnose)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnnlab` command. Returns the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return args.func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, NotImplementedError) as err:
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"rnnlab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
