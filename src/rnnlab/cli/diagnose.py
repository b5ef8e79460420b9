"""rnnlab diagnose: how far back does the gradient reach in untrained models?"""

from __future__ import annotations

import argparse

from rich.table import Table

from rnnlab.cli.common import UsageError, console, fraction, positive_int

DEFAULT_MODELS = "rnn_tanh,rnn_tanh:orthogonal,rnn_relu:identity,lstm,lstm:forget_bias,lstm:chrono,gru"


def register(sub) -> None:
    parser = sub.add_parser(
        "diagnose",
        help="compare how far back the gradient reaches in untrained models",
        description="Measure ‖∂L/∂h_t‖ for every step of untrained models, print the decay rate and horizon "
        "of each, and plot log‖∂L/∂h_t‖ against lag.",
    )
    parser.add_argument("--models", help=f"comma-separated CELL[:INIT[+INIT]] (default: {DEFAULT_MODELS})")
    parser.add_argument("--cells", help="comma-separated cells, all with --init (instead of --models)")
    parser.add_argument("--init", help="init spec for --cells, e.g. orthogonal or orthogonal+chrono")
    parser.add_argument("--seq-len", type=positive_int, default=200, help="sequence length T (default 200)")
    parser.add_argument("--hidden", type=positive_int, default=128, help="hidden size H (default 128)")
    parser.add_argument("--input-size", type=positive_int, default=2, help="input features I (default 2)")
    parser.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=32,
                        help="batch size (default 32)")  # fmt: skip
    parser.add_argument("--layers", type=positive_int, default=1, help="stacked layers (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and inputs (default 0)")
    parser.add_argument("--threshold", type=fraction, default=1e-3, help="horizon threshold (default 1e-3)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--out", default="out/diagnose.png", help="PNG path (default out/diagnose.png)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.recurrent import diagnostics
    from rnnlab.report.plots import gradient_profiles

    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    results = diagnostics.compare(
        _specs(args),
        seq_len=args.seq_len,
        hidden_size=args.hidden,
        input_size=args.input_size,
        batch_size=args.batch_size,
        num_layers=args.layers,
        seed=args.seed,
        dtype=dtype,
    )
    out = console()
    out.print(_table(args, results))
    path = gradient_profiles(
        {r.spec.label: r.flow.profile() for r in results},
        args.out,
        title=f"The vanishing gradient: ‖∂L/∂h_t‖ against lag (T={args.seq_len}, H={args.hidden}, untrained)",
        threshold=args.threshold,
    )
    out.print(
        f"Horizon: the largest lag at which ‖∂L/∂h_t‖ is still ≥ {args.threshold:g} × its value at lag 0 "
        f"({args.seq_len - 1} means at least the whole sequence)."
    )
    out.print(f"Plot written to {path}")
    return 0


def _specs(args: argparse.Namespace) -> list:
    """The models to compare, from --models, or --cells with --init, or the default list (--init applied)."""
    from rnnlab.recurrent.diagnostics import ModelSpec

    if args.models is not None and (args.cells is not None or args.init is not None):
        raise UsageError("diagnose: give either --models or --cells/--init, not both")
    if args.models is not None:
        specs = [ModelSpec.parse(m) for m in args.models.split(",") if m.strip()]
    elif args.cells is not None:
        init_spec = args.init or "torch_default"
        specs = [ModelSpec(cell.strip(), init_spec) for cell in args.cells.split(",") if cell.strip()]
    else:
        specs = [ModelSpec.parse(m) for m in DEFAULT_MODELS.split(",")]
        if args.init is not None:
            specs = [ModelSpec(s.cell, args.init) for s in specs]
    if not specs:
        raise UsageError("diagnose: no models given")
    return specs


def _table(args: argparse.Namespace, results: list) -> Table:
    """One row per model: decay per step, fit, half-life, horizon, the gradient at lag T/2, ρ(W_hh)."""
    lag = args.seq_len // 2
    table = Table(
        title=f"Gradient flow of untrained models (T={args.seq_len}, H={args.hidden}, I={args.input_size}, "
        f"batch {args.batch_size}, {args.layers} layer(s), seed {args.seed})"
    )
    columns = ("model", "decay / step", "fit r²", "half-life", f"horizon @ {args.threshold:g}",
               f"‖∂L/∂h‖ @ lag {lag}", "ρ(W_hh)")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in results:
        fit = r.flow.decay_rate()
        table.add_row(
            r.spec.label,
            f"{fit.rate:.3f}",
            f"{fit.r2:.2f}",
            f"{fit.half_life:.1f}",
            str(r.flow.horizon_at(args.threshold)),
            f"{r.flow.profile()[lag].item():.1e}",
            f"{r.radius[-1].max().item():.2f}" if r.radius.numel() else "—",  # none: no recurrent weight
        )
    return table
