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
from rnnlab.lab.checkpoints import CheckpointError
from rnnlab.report.format import fmt as _fmt


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
    from rnnlab.recurrent.init import SCHEMES

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

    from rnnlab.recurrent import diagnostics
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


def _store(args: argparse.Namespace):
    from rnnlab.lab.store import Store

    return Store(args.store)


def _train_overrides(args: argparse.Namespace) -> dict:
    """CLI options → config keys (None means: not given, keep the file's or the default value)."""
    overrides = {
        "name": args.name,
        "task": args.task,
        "seq_len": args.seq_len,
        "cell": args.cell,
        "hidden_size": args.hidden,
        "num_layers": args.layers,
        "init": args.init,
        "optimizer": args.optimizer,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "truncate": args.truncate,
        "eval_every": args.eval_every,
        "seed": args.seed,
    }
    clips = [
        (m, v)
        for m, v in (
            ("global_norm", args.clip_norm),
            ("value", args.clip_value),
            ("per_param_norm", args.clip_param_norm),
        )
        if v is not None
    ]
    if len(clips) > 1:
        raise UsageError("train: give at most one of --clip-norm, --clip-value, --clip-param-norm")
    if clips:
        overrides["clip"], overrides["clip_threshold"] = clips[0]
    if args.bptt is not None:
        overrides["bptt_k1"] = args.bptt[0]
        overrides["bptt_k2"] = args.bptt[1] if len(args.bptt) > 1 else None
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"train: --set expects KEY=VALUE, got {item!r}")
        import yaml

        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from rnnlab.lab.config import load_config
    from rnnlab.lab.environment import environment
    from rnnlab.lab.trainer import Trainer

    if args.bptt is not None and len(args.bptt) > 2:
        raise UsageError("train: --bptt takes K1 or K1 K2")
    config = load_config(args.config, _train_overrides(args))
    console = _console()
    with _store(args) as store:
        run = store.find(config.hash(), study=None, statuses=("running",))
        if run is not None:  # the same experiment was interrupted: continue it instead of starting another
            run_id = run.id
            where = "its checkpoint" if store.checkpoint_path(run_id).exists() else "the start (no checkpoint yet)"
            console.print(f"Resuming run {run_id} ({config.label()}) from {where}")
        else:
            run_id = store.start_run(config.label(), config.canonical(), config.hash(), environment())
            console.print(f"Run {run_id}: {config.label()} on {config.task} (T={config.seq_len}), store {store.path}")
        trainer = Trainer(config, checkpoint_path=store.checkpoint_path(run_id), progress=not args.no_progress)
        try:
            result = trainer.run()
        except KeyboardInterrupt:
            console.print(f"Interrupted: run {run_id} can resume from its last checkpoint (run the same command)")
            return 130
        store.finish_run(run_id, result.to_dict())
        _print_run(console, store.run(run_id))
    return 0


def _print_run(console: Console, run) -> None:
    table = Table(title=f"Run {run.id}: {run.name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    rows = [
        ("status", run.status),
        ("task", f"{run.config['task']} (T={run.config['seq_len']})"),
        (
            "model",
            f"{run.config['cell']} H={run.config['hidden_size']} × {run.config['num_layers']}, init {run.config['init']}",
        ),
        ("steps", _fmt(run.steps)),
        (f"final test {run.metric_name or 'metric'}", _fmt(run.final_metric)),
        ("solved at step", _fmt(run.solved_at)),
        ("diverged at step", _fmt(run.diverged_at)),
        ("clip rate", "-" if run.clip_rate is None else f"{run.clip_rate:.1%}"),
        ("wall time", "-" if run.wall_time is None else f"{run.wall_time:.1f} s"),
        ("config hash", run.config_hash),
    ]
    if run.error:
        rows.append(("error", run.error))
    for row in rows:
        table.add_row(*row)
    console.print(table)


def _cmd_runs_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        runs = store.runs(study=args.study)
    table = Table(title=f"Runs in {args.store}" + (f" (study {args.study})" if args.study else ""))
    for column in (
        "id",
        "name",
        "study",
        "task",
        "T",
        "status",
        "steps",
        "metric",
        "final",
        "solved at",
        "clip",
        "time",
    ):
        table.add_column(column)
    for r in runs:
        table.add_row(
            str(r.id),
            r.name,
            r.study or "-",
            r.config.get("task", "?"),
            _fmt(r.config.get("seq_len")),
            r.status,
            _fmt(r.steps),
            r.metric_name or "-",
            _fmt(r.final_metric),
            _fmt(r.solved_at),
            "-" if r.clip_rate is None else f"{r.clip_rate:.0%}",
            "-" if r.wall_time is None else f"{r.wall_time:.0f} s",
        )
    _console().print(table)
    return 0


def _cmd_runs_show(args: argparse.Namespace) -> int:
    console = _console()
    with _store(args) as store:
        run = store.run(args.id)
        _print_run(console, run)
        evaluations = Table(title="Evaluations")
        for column in (
            "step",
            f"test {run.metric_name or 'metric'}",
            "test loss",
            "train loss",
            "grad norm",
            "clip rate",
            "horizon",
            "decay/step",
        ):
            evaluations.add_column(column, justify="right")
        metrics: dict[int, dict[str, float | None]] = {}
        for step, name, value in store.metrics(run.id):
            metrics.setdefault(step, {})[name] = value
        flows = {f["step"]: f for f in store.flows(run.id)}
        for step in sorted(flows):
            m, f = metrics.get(step, {}), flows[step]
            evaluations.add_row(
                str(step),
                _fmt(m.get("test_metric")),
                _fmt(m.get("test_loss")),
                _fmt(m.get("window_train_loss")),
                _fmt(m.get("window_grad_norm")),
                _fmt(m.get("window_clip_rate"), 2),
                str(f["horizon"]),
                f"{f['decay_rate']:.3f}",
            )
    console.print(evaluations)
    return 0


def _cmd_runs_export(args: argparse.Namespace) -> int:
    with _store(args) as store:
        count = store.export_csv(args.path, study=args.study)
    _console().print(f"Wrote {count} runs to {args.path}")
    return 0


def _cmd_runs_check(args: argparse.Namespace) -> int:
    with _store(args) as store:
        problems = store.check()
        count = len(store.runs())
    if problems:
        for p in problems:
            print(f"rnnlab: store problem: {p}", file=sys.stderr)
        return 1
    _console().print(f"Store {args.store} is consistent ({count} runs).")
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    from rnnlab.lab.study import bundled_studies, load_study

    table = Table(title="Bundled studies (rnnlab sweep NAME; rnnlab report NAME)")
    for column in ("name", "runs", "claim", "source"):
        table.add_column(column, overflow="fold")
    for name in sorted(bundled_studies()):
        study = load_study(name)
        table.add_row(name, str(len(study.runs)), study.claim, study.source)
    _console().print(table)
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from rnnlab.lab.study import load_study
    from rnnlab.lab.sweep import run_study

    study = load_study(args.study)
    console = _console()
    console.print(f"Study {study.name}: {len(study.runs)} runs, {args.workers} worker(s), executor {args.executor}")
    with _store(args) as store:
        summary = run_study(
            study,
            store,
            workers=args.workers,
            executor=args.executor,
            address=args.address,
            threads_per_worker=args.threads,
            progress=not args.no_progress,
        )
        _print_study_table(console, store, study.name)
    console.print(
        f"{summary.ran} run(s) trained, {summary.skipped} already in the store, {summary.failed} failed, "
        f"in {summary.wall_time:.0f} s. Report: rnnlab report {study.name} --store {args.store}"
    )
    return 1 if summary.failed else 0


def _print_study_table(console: Console, store, study: str) -> None:
    runs = store.runs(study=study)
    table = Table(title=f"Study {study}")
    for column in ("run", "status", "solved at", "final metric", "horizon start → end", "clip", "time"):
        table.add_column(column)
    for r in runs:
        flows = store.flows(r.id)
        horizon = f"{flows[0]['horizon']} → {flows[-1]['horizon']}" if flows else "-"
        table.add_row(
            r.name,
            r.status,
            _fmt(r.solved_at),
            f"{r.metric_name or ''} {_fmt(r.final_metric)}",
            horizon,
            "-" if r.clip_rate is None else f"{r.clip_rate:.0%}",
            "-" if r.wall_time is None else f"{r.wall_time:.0f} s",
        )
    console.print(table)


def _cmd_report(args: argparse.Namespace) -> int:
    from rnnlab.report.html import build_report

    with _store(args) as store:
        report = build_report(store, args.study, args.out)
    _console().print(f"Report of study {args.study} ({report.runs} runs) written to {report.html}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.lab.config import load_yaml
    from rnnlab.lab.study import bundled_studies, make_study
    from rnnlab.lab.sweep import run_study
    from rnnlab.recurrent import diagnostics
    from rnnlab.report.html import build_report
    from rnnlab.report.plots import gradient_profiles

    console = _console()
    out = args.out
    data = load_yaml(bundled_studies()["demo"])
    seq_len, hidden = 200, 64
    if args.quick:  # a reduced size for CI: same code path, seconds instead of minutes
        data["name"] = "demo-quick"
        data["defaults"] = {**data["defaults"], "steps": 40, "eval_every": 20, "hidden_size": 16}
        data["grid"] = {"seq_len": [20, 30]}
        data["description"] = "Quick mode (CI): the adding task at T = 20 and 30, H = 16, 40 updates per run."
        seq_len, hidden = 60, 16
    study = make_study(data)
    console.rule("[bold]1. The vanishing gradient, untrained")
    specs = [diagnostics.ModelSpec.parse(m) for m in DEFAULT_MODELS.split(",")]
    results = diagnostics.compare(specs, seq_len=seq_len, hidden_size=hidden, dtype=torch.float32)
    profile_png = gradient_profiles(
        {r.spec.label: r.flow.profile() for r in results},
        f"{out}/vanishing-gradient.png",
        title=f"The vanishing gradient: ‖∂L/∂h_t‖ against lag (T={seq_len}, H={hidden}, untrained)",
        threshold=1e-3,
    )
    table = Table(title=f"How far back does the gradient reach? (untrained, T={seq_len}, H={hidden})")
    for column in ("model", "decay / step", "horizon (steps)"):
        table.add_column(column)
    for r in results:
        table.add_row(r.spec.label, f"{r.flow.decay_rate().rate:.3f}", str(r.flow.horizon()))
    console.print(table)
    console.rule(f"[bold]2. Remedies on the adding task ({len(study.runs)} runs, {args.workers} workers)")
    with _store(args) as store:
        summary = run_study(study, store, workers=args.workers, progress=not args.no_progress)
        report = build_report(
            store,
            study.name,
            out,
            extra=[
                (
                    "The vanishing gradient in untrained networks",
                    profile_png,
                    "‖∂L/∂h_t‖ against lag for untrained models (rnnlab diagnose), each relative to its value at "
                    "lag 0; a curve's horizon is where it crosses the dashed threshold line.",
                )
            ],
            command="rnnlab demo" + (" --quick" if args.quick else ""),
        )
        _print_verdict(console, store, study)
    console.print(
        f"{summary.ran} run(s) trained, {summary.skipped} reused from {args.store}, {summary.failed} failed, "
        f"in {summary.wall_time:.0f} s."
    )
    console.print(f"[bold]Report:[/bold] {report.html}")
    return 1 if summary.failed else 0


def _print_verdict(console: Console, store, study) -> None:
    runs = store.runs(study=study.name)
    lengths = sorted({r.config["seq_len"] for r in runs})
    table = Table(title="Verdict: who learns the adding task? (solved = test MSE < 0.01; chance 0.167)")
    table.add_column("model")
    for t in lengths:
        table.add_column(f"T = {t}")
    by_variant: dict[str, dict[int, object]] = {}
    for r in runs:
        by_variant.setdefault(r.name.split(" · ")[0], {})[r.config["seq_len"]] = r
    for variant, cells in by_variant.items():
        row = [variant]
        for t in lengths:
            r = cells.get(t)
            if r is None:
                row.append("-")
            elif r.status == "solved":
                row.append(f"[green]✓ solved at step {r.solved_at}[/green]")
            else:
                row.append(f"[red]✗ {r.status}, MSE {_fmt(r.final_metric, 3)}[/red]")
        table.add_row(*row)
    console.print(table)


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

    from rnnlab.lab.store import DEFAULT_PATH
    from rnnlab.lab.tasks import TASKS
    from rnnlab.recurrent.cells import CELLS

    store_option = argparse.ArgumentParser(add_help=False)
    store_option.add_argument("--store", default=str(DEFAULT_PATH), help=f"results store (default {DEFAULT_PATH})")

    train = sub.add_parser(
        "train",
        parents=[store_option],
        help="train one model on a task and store the run",
        description="Train one model on a task. Options override the --config file's values. Running the "
        "same command again after an interruption resumes the run from its last checkpoint.",
    )
    train.add_argument("--config", help="YAML file with RunConfig keys (see README)")
    train.add_argument("--name", help="label for tables and reports")
    train.add_argument("--task", choices=list(TASKS))
    train.add_argument("--seq-len", type=_positive_int, help="sequence length T (text: the BPTT window)")
    train.add_argument("--cell", choices=list(CELLS))
    train.add_argument("--hidden", type=_positive_int, help="hidden size H")
    train.add_argument("--layers", type=_positive_int, help="stacked recurrent layers")
    train.add_argument("--init", help="init spec, e.g. orthogonal or orthogonal+chrono (rnnlab inits)")
    train.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"))
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--steps", type=_positive_int, help="optimizer updates")
    train.add_argument("--clip-norm", type=float, help="clip the global gradient norm to this value")
    train.add_argument("--clip-value", type=float, help="clamp every gradient element to ±this value")
    train.add_argument("--clip-param-norm", type=float, help="clip each parameter's gradient norm (Keras clipnorm)")
    train.add_argument("--truncate", type=_positive_int, help="engine-truncated BPTT window (sequence tasks)")
    train.add_argument("--bptt", type=_positive_int, nargs="+", metavar="K", help="K1 [K2]: BPTT(k1, k2) (text)")
    train.add_argument("--eval-every", type=_positive_int, help="updates between evaluations")
    train.add_argument("--seed", type=int)
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="any other config key (repeatable)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=_cmd_train)

    runs = sub.add_parser("runs", help="list, show, export and check stored runs")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", parser_class=_Parser, required=True)
    runs_list = runs_sub.add_parser("list", parents=[store_option], help="a table of runs")
    runs_list.add_argument("--study", help="only the runs of this study")
    runs_list.set_defaults(func=_cmd_runs_list)
    runs_show = runs_sub.add_parser("show", parents=[store_option], help="one run with its evaluations")
    runs_show.add_argument("id", type=_positive_int, help="run id (see runs list)")
    runs_show.set_defaults(func=_cmd_runs_show)
    runs_export = runs_sub.add_parser("export", parents=[store_option], help="write the runs as CSV")
    runs_export.add_argument("path", help="CSV file to write")
    runs_export.add_argument("--study", help="only the runs of this study")
    runs_export.set_defaults(func=_cmd_runs_export)
    runs_check = runs_sub.add_parser("check", parents=[store_option], help="check the store's integrity")
    runs_check.set_defaults(func=_cmd_runs_check)

    from rnnlab.lab.sweep import EXECUTORS

    studies = sub.add_parser("studies", help="list the bundled studies and the claims they reproduce")
    studies.set_defaults(func=_cmd_studies)

    sweep = sub.add_parser(
        "sweep",
        parents=[store_option],
        help="run a study's runs in parallel, skipping those already stored",
        description="Run every run of a study (a bundled name or a YAML file) that the store does not have yet. "
        "A killed sweep resumes where it stopped when run again.",
    )
    sweep.add_argument("study", help="bundled study name (rnnlab studies) or path to a study YAML file")
    sweep.add_argument("--workers", type=_positive_int, default=1, help="parallel worker processes (default 1)")
    sweep.add_argument("--threads", type=_positive_int, default=1, help="PyTorch threads per worker (default 1)")
    sweep.add_argument("--executor", choices=EXECUTORS, default="local", help="local processes or a Ray cluster")
    sweep.add_argument("--address", help="Ray cluster address (default: start a local cluster)")
    sweep.add_argument("--no-progress", action="store_true")
    sweep.set_defaults(func=_cmd_sweep)

    report = sub.add_parser("report", parents=[store_option], help="write a study's HTML report and plots")
    report.add_argument("study", help="study name in the store")
    report.add_argument("--out", help="output folder (default out/report-STUDY)")
    report.set_defaults(func=_cmd_report)

    demo = sub.add_parser(
        "demo",
        parents=[store_option],
        help="the whole story in under 10 minutes: vanishing profile, remedies, verdict, report",
    )
    demo.add_argument("--workers", type=_positive_int, default=2, help="parallel workers (default 2)")
    demo.add_argument("--out", default="out/demo", help="report folder (default out/demo)")
    demo.add_argument("--quick", action="store_true", help="a reduced size that runs in seconds (CI)")
    demo.add_argument("--no-progress", action="store_true")
    demo.set_defaults(func=_cmd_demo)
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
    except (UsageError, ValueError, FileNotFoundError, NotImplementedError, CheckpointError) as err:
        # What rnnlab raises for a bad value, name, file or config: the user's to fix, in one line.
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"rnnlab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"rnnlab: {interrupt}" if str(interrupt) else "rnnlab: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # e.g. a full disk: not a user mistake, but no traceback either; nothing is half-written
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        print(
            f"rnnlab: error: {err.strerror or err} ({err.filename or 'I/O'}); completed work is kept", file=sys.stderr
        )
        return 1
    except Exception as err:  # anything else is a bug in rnnlab, not the user's mistake: say so, keep the traceback
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        path = _write_traceback()
        message = str(err).splitlines()[0] if str(err) else ""
        print(
            f"rnnlab: internal error: {type(err).__name__}: {message} — this is a bug in rnnlab, not in how it was "
            f"called; please report it with the traceback written to {path}",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


INTERNAL_ERROR = 3  # exit status of a bug in rnnlab (2: a user mistake, 1: an I/O failure, 130: interrupted)


def _write_traceback() -> str:
    """Write the current exception's traceback to a new file in the temp folder; returns its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="rnnlab-traceback-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"rnnlab {rnnlab.__version__}, python {sys.version.split()[0]}\n{traceback.format_exc()}")
    return path


if __name__ == "__main__":
    sys.exit(main())
