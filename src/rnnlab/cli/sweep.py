"""rnnlab sweep: run a study's runs in parallel, skipping those already stored."""

from __future__ import annotations

import argparse
import contextlib

from rich.console import Console
from rich.table import Table

from rnnlab.cli.common import UsageError, console, fmt, fmt_rate, open_store, positive_int, run_status, store_option


def register(sub) -> None:
    from rnnlab.lab.sweep import EXECUTORS

    parser = sub.add_parser(
        "sweep",
        parents=[store_option()],
        help="run a study's runs in parallel, skipping those already stored",
        description="Run every run of a study (a bundled name or a YAML file) that the store does not have yet. "
        "A killed or interrupted sweep resumes where it stopped when run again.",
    )
    parser.add_argument("study", help="bundled study name (rnnlab studies) or path to a study YAML file")
    parser.add_argument("--workers", type=positive_int, default=1, help="parallel worker processes (default 1)")
    parser.add_argument("--threads", type=positive_int, default=1, help="PyTorch threads per worker (default 1)")
    parser.add_argument("--executor", choices=EXECUTORS, default="local", help="local processes or a Ray cluster")
    parser.add_argument("--address", help="Ray cluster address (default: start a local cluster)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="run only the runs whose config KEY (or 'variant') has one of the comma-separated VALUES, e.g. "
        "--only seq_len=100,200 --only seed=0 (a variant's name with commas of its own is kept whole); the rest can "
        "run later and the results add up",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what the sweep would do with each run, and run nothing"
    )
    parser.add_argument(
        "--measure",
        type=positive_int,
        metavar="N",
        help="with --dry-run: time N updates (after N to warm up, --threads threads) of each variant that has no "
        "finished run in the store to estimate its compute from, here and now; nothing is stored",
    )
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnlab.lab.study import load_study, select_runs
    from rnnlab.lab.sweep import run_study

    study = load_study(args.study)
    out = console()
    only = _parse_only(args.only)
    if only:
        total = len(study.runs)
        study = select_runs(study, only)
        part = " and ".join(f"{key}={','.join(values)}" for key, values in only.items())
        out.print(
            f"Study {study.name}: {len(study.runs)} of its {total} runs ({part}), {args.workers} worker(s), "
            f"executor {args.executor}"
        )
    else:
        out.print(f"Study {study.name}: {len(study.runs)} runs, {args.workers} worker(s), executor {args.executor}")
    if args.measure and not args.dry_run:
        raise UsageError("sweep: --measure times updates for the dry run's estimate; give it with --dry-run")
    if args.dry_run:
        return _dry_run(out, study, args.store, args.measure, args.threads)
    with open_store(args) as store:
        summary = run_study(
            study,
            store,
            workers=args.workers,
            executor=args.executor,
            address=args.address,
            threads_per_worker=args.threads,
            progress=not args.no_progress,
        )
        print_study_table(out, store, study.name)
    not_needed = f"{summary.not_needed} not needed (a shorter version was not solved), " if summary.not_needed else ""
    if summary.repeated:
        not_needed += f"{summary.repeated} recorded as a shorter-budget run that ended early, "
    if summary.elsewhere:
        not_needed += f"{summary.elsewhere} left to another sweep that trains them now, "
    out.print(
        f"{summary.ran} run(s) trained, {summary.skipped} already in the store, {not_needed}{summary.failed} failed, "
        f"in {summary.wall_time:.0f} s. Report: rnnlab report {study.name} --store {args.store}"
    )
    return 1 if summary.failed else 0


def _dry_run(out: Console, study, store_path: str, measure: int | None, threads: int) -> int:
    """The sweep's plan, from the store as it is (a store that does not exist yet is not created), and a bound
    on its compute; with `measure`, variants with nothing to go by are timed here."""
    from pathlib import Path

    from rnnlab.lab.cost import estimate, time_updates, untimed
    from rnnlab.lab.store import Store
    from rnnlab.lab.sweep import preview
    from rnnlab.report.format import hours_minutes

    # Read-only: a dry run writes nothing, not even an empty file's tables or an old store's migration.
    exists = Path(store_path).exists() and Path(store_path).stat().st_size > 0
    with Store(store_path, read_only=True) if exists else contextlib.nullcontext() as store:
        actions = preview(study, store)
        timed = {}
        for key, config in untimed(study, store, actions).items() if measure else ():
            timed[key] = time_updates(config, measure, threads)
            out.print(f"Timed {config.label()}: {timed[key]:.4g} s per update ({measure} updates, {threads} thread(s))")
        cost = estimate(study, store, actions, timed)
    table = Table(title=f"Study {study.name}: what a sweep on {store_path} would do (dry run)")
    table.add_column("run")
    table.add_column("action")
    for name, action in actions:
        table.add_row(name, action)
    out.print(table)
    counts: dict[str, int] = {}
    for _, action in actions:
        kind = action.split(":")[0].split(" from")[0].split(" (if")[0]
        counts[kind] = counts.get(kind, 0) + 1
    out.print("Dry run, nothing ran: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    if cost.runs:
        if cost.timed == cost.runs:
            source = "the seconds per update timed here just now"
        else:
            source = (
                "the seconds per update of the finished runs in this store with the same config but seed and budget"
            )
            source += f" ({cost.timed} of them at the rate timed here just now)" if cost.timed else ""
        out.print(
            f"Compute: at most {hours_minutes(cost.seconds)} (h:mm) for {cost.runs} of the runs to start or resume, at "
            + source
            + (f"; {cost.unknown} more have none to go by (--measure N times them)" if cost.unknown else "")
        )
    return 0


def _parse_only(items: list[str]) -> dict[str, list[str]]:
    """['seq_len=100,200', 'seed=0'] → {'seq_len': ['100,200'], 'seed': ['0']}; a repeated key adds values.
    `select_runs` splits the commas, knowing which values have commas of their own (a variant's name may)."""
    only: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.replace(",", "").strip():
            raise UsageError(f"sweep: --only expects KEY=VALUE[,VALUE…], e.g. --only seq_len=100; got {item!r}")
        only.setdefault(key.strip(), []).append(values)
    return only


def print_study_table(out: Console, store, study: str) -> None:
    """Every run of the study in the store; an unfinished one says whether another sweep trains it now or it
    was interrupted (a run of an earlier sitting), as `runs list` does."""
    runs = store.runs(study=study)
    table = Table(title=f"Study {study}")
    for column in ("run", "status", "solved at", "final metric", "horizon start → end", "clip", "time"):
        table.add_column(column)
    for r in runs:
        flows = store.flows(r.id)
        horizon = f"{flows[0]['horizon']} → {flows[-1]['horizon']}" if flows else "-"
        table.add_row(
            r.name,
            run_status(store, r),
            fmt(r.solved_at),
            f"{r.metric_name or ''} {fmt(r.final_metric)}",
            horizon,
            fmt_rate(r.clip_rate),
            "-" if r.wall_time is None else f"{r.wall_time:.0f} s",
        )
    out.print(table)
