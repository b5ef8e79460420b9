"""rnnlab runs: list, show, export, check and delete stored runs, and prune checkpoints."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from rnnlab.cli.common import (
    Parser,
    console,
    fmt,
    fmt_rate,
    open_store,
    positive_int,
    run_columns,
    run_status,
    store_option,
)
from rnnlab.cli.train import print_run
from rnnlab.lab.store import MetricName


def register(sub) -> None:
    runs = sub.add_parser("runs", help="list, show, export, check and delete stored runs; prune checkpoints")
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION", parser_class=Parser, required=True)
    store = store_option()
    parser = actions.add_parser("list", parents=[store], help="a table of runs")
    parser.add_argument("--study", help="only the runs of this study")
    parser.set_defaults(func=list_runs)
    parser = actions.add_parser("show", parents=[store], help="one run: its settings and evaluations")
    parser.add_argument("id", type=positive_int, help="run id (see runs list)")
    parser.set_defaults(func=show)
    parser = actions.add_parser("export", parents=[store], help="write the runs as CSV")
    parser.add_argument("path", help="CSV file to write")
    parser.add_argument("--study", help="only the runs of this study")
    parser.set_defaults(func=export)
    parser = actions.add_parser("check", parents=[store], help="check the store's integrity")
    parser.set_defaults(func=check)
    parser = actions.add_parser("delete", parents=[store], help="delete runs (their metrics, flows and checkpoints)")
    parser.add_argument("ids", type=positive_int, nargs="+", metavar="ID", help="run ids (see runs list)")
    parser.set_defaults(func=delete)
    parser = actions.add_parser(
        "prune",
        parents=[store],
        help="delete the checkpoints of finished runs (a running run keeps its own) and claimed runs that never trained",
    )
    parser.add_argument(
        "--keep-completed",
        action="store_true",
        help="keep those of completed runs too: a sweep with a larger budget continues them instead of starting over",
    )
    parser.set_defaults(func=prune)


def list_runs(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        runs = store.runs(study=args.study)
        columns = {r.id: run_columns(store, r) for r in runs}
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
            fmt(r.config.get("seq_len")),
            *columns[r.id],
            fmt(r.solved_at),
            fmt_rate(r.clip_rate),
            "-" if r.wall_time is None else f"{r.wall_time:.0f} s",
        )
    console().print(table)
    return 0


def show(args: argparse.Namespace) -> int:
    out = console()
    with open_store(args) as store:
        run = store.run(args.id)
        print_run(out, run, run_status(store, run, long=True))
        rows, flow_rows, title = store.metrics(run.id), store.flows(run.id), "Evaluations"
        if run.status == "running" and (progress := store.progress(run.id)) is not None:
            step, rows, flow_rows = progress  # a run in training, or interrupted: what its checkpoint holds
            title = f"Evaluations so far (from its checkpoint at update {step})"
        evaluations = Table(title=title)
        # rnnlab's trainer stores the probe loss's profile as the flow and the task loss's reach as metrics; a
        # monitor's run (a user's own loop, no optimiser recorded) stores the profile of the user's real loss.
        trained = "optimizer" in run.config
        sources = ("probe", "task loss") if trained else ("your loss",)
        omega = run.config.get("regularizer") == "omega"  # Pascanu's Ω, mean over the window
        for column in (
            "step",
            f"test {run.metric_name or 'metric'}",
            "test loss",
            "train loss",
            "grad norm",
            "clip rate",
            *(("Ω",) if omega else ()),
            *(f"{quantity} ({source})" for source in sources for quantity in ("horizon", "decay/step")),
        ):
            evaluations.add_column(column, justify="right")
        metrics: dict[int, dict[str, float | None]] = {}
        for step, name, value in rows:
            metrics.setdefault(step, {})[name] = value
        flows = {f["step"]: f for f in flow_rows}
        for step in sorted(flows):
            m, f = metrics.get(step, {}), flows[step]
            evaluations.add_row(
                str(step),
                fmt(m.get(MetricName.TEST_METRIC)),
                fmt(m.get(MetricName.TEST_LOSS)),
                fmt(m.get(MetricName.WINDOW_TRAIN_LOSS)),
                fmt(m.get(MetricName.WINDOW_GRAD_NORM)),
                fmt_rate(m.get(MetricName.WINDOW_CLIP_RATE)),
                *((fmt(m.get(MetricName.WINDOW_OMEGA)),) if omega else ()),
                str(f["horizon"]),
                f"{f['decay_rate']:.3f}",
                *((fmt(m.get(MetricName.LOSS_HORIZON)), fmt(m.get(MetricName.LOSS_DECAY_RATE), 3)) if trained else ()),
            )
        extras = _task_scores(metrics, flows)
    out.print(evaluations)
    if extras is not None:
        out.print(extras)
    return 0


def _task_scores(metrics: dict[int, dict[str, float | None]], steps) -> Table | None:
    """The scores a task adds at each evaluation (`Task.extra_scores`, e.g. bits/char per dependency band),
    stored under the task's own names: every metric at an evaluation step that rnnlab itself does not name."""
    own = {value for key, value in vars(MetricName).items() if not key.startswith("_")}
    names = sorted({name for step in steps for name in metrics.get(step, {})} - own)
    if not names:
        return None
    table = Table(title="The task's own scores")
    for column in ("step", *names):
        table.add_column(column, justify="right")
    for step in sorted(steps):
        table.add_row(str(step), *(fmt(metrics.get(step, {}).get(name)) for name in names))
    return table


def export(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        count = store.export_csv(args.path, study=args.study)
    console().print(f"Wrote {count} runs to {args.path}")
    return 0


def check(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        problems = store.check()
        count = len(store.runs())
    if problems:
        for p in problems:
            print(f"rnnlab: store problem: {p}", file=sys.stderr)
        return 1
    console().print(f"Store {args.store} is consistent ({count} runs).")
    return 0


def delete(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        removed = store.delete_runs(args.ids)
    console().print(f"Deleted {removed} run(s) from {args.store}")
    return 0


def prune(args: argparse.Namespace) -> int:
    with open_store(args) as store:
        count, size = store.prune_checkpoints(keep_completed=args.keep_completed)
        released = store.release_untrained()
    kept = " (the completed runs keep theirs)" if args.keep_completed else ""
    console().print(f"Deleted {count} checkpoint(s) of finished runs ({size / 1e6:.1f} MB) beside {args.store}{kept}")
    if released:
        console().print(f"Released {released} claimed run(s) that never trained (a later sweep claims them anew)")
    return 0
