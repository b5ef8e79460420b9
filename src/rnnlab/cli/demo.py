"""rnnlab demo: the whole story in a few minutes — the vanishing profile, remedies, verdict, report."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from rnnlab.cli.common import console, fmt, open_store, positive_int, store_option
from rnnlab.cli.diagnose import DEFAULT_MODELS


def register(sub) -> None:
    parser = sub.add_parser(
        "demo",
        parents=[store_option()],
        help="the whole story in a few minutes: vanishing profile, remedies, verdict, report",
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="parallel workers (default 2)")
    parser.add_argument("--out", default="out/demo", help="report folder (default out/demo)")
    parser.add_argument("--quick", action="store_true", help="a reduced size that runs in seconds (CI)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from rnnlab.lab.config import load_yaml
    from rnnlab.lab.study import bundled_studies, make_study
    from rnnlab.lab.sweep import run_study
    from rnnlab.recurrent import diagnostics
    from rnnlab.report.html import build_report
    from rnnlab.report.plots import gradient_profiles

    out = console()
    folder = args.out
    data = load_yaml(bundled_studies()["demo"])
    seq_len, hidden = 200, 64
    if args.quick:  # a reduced size for CI: same code path, seconds instead of minutes
        data["name"] = "demo-quick"
        data["defaults"] = {**data["defaults"], "steps": 40, "eval_every": 20, "hidden_size": 16}
        data["grid"] = {"seq_len": [20, 30]}
        data["description"] = "Quick mode (CI): the adding task at T = 20 and 30, H = 16, 40 updates per run."
        seq_len, hidden = 60, 16
    study = make_study(data)
    out.rule("[bold]1. The vanishing gradient, untrained")
    specs = [diagnostics.ModelSpec.parse(m) for m in DEFAULT_MODELS.split(",")]
    results = diagnostics.compare(specs, seq_len=seq_len, hidden_size=hidden, dtype=torch.float32)
    profile_png = gradient_profiles(
        {r.spec.label: r.flow.profile() for r in results},
        f"{folder}/vanishing-gradient.png",
        title=f"The vanishing gradient: ‖∂L/∂h_t‖ against lag (T={seq_len}, H={hidden}, untrained)",
        threshold=1e-3,
    )
    table = Table(title=f"How far back does the gradient reach? (untrained, T={seq_len}, H={hidden})")
    for column in ("model", "decay / step", "horizon (steps)"):
        table.add_column(column)
    for r in results:
        table.add_row(r.spec.label, f"{r.flow.decay_rate().rate:.3f}", str(r.flow.horizon))
    out.print(table)
    out.rule(f"[bold]2. Remedies on the adding task ({len(study.runs)} runs, {args.workers} workers)")
    with open_store(args) as store:
        summary = run_study(study, store, workers=args.workers, progress=not args.no_progress)
        report = build_report(
            store,
            study.name,
            folder,
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
        print_verdict(out, store, study)
    out.print(
        f"{summary.ran} run(s) trained, {summary.skipped} reused from {args.store}, {summary.failed} failed, "
        f"in {summary.wall_time:.0f} s."
    )
    out.print(f"[bold]Report:[/bold] {report.html}")
    return 1 if summary.failed else 0


def print_verdict(out: Console, store, study) -> None:
    from rnnlab.lab.store import MetricName
    from rnnlab.lab.study import variant_name
    from rnnlab.report.success import criterion_text, task_level

    runs = store.runs(study=study.name)
    lengths = sorted({r.config["seq_len"] for r in runs})
    first = runs[0]
    chance = task_level(store, first, MetricName.CHANCE)
    table = Table(
        title=f"Verdict: who learns the {first.config['task']} task? (solved = {criterion_text(first)}; "
        f"chance {fmt(chance, 3)})"
    )
    table.add_column("model")
    for t in lengths:
        table.add_column(f"T = {t}")
    by_variant: dict[str, dict[int, object]] = {}
    for r in runs:
        by_variant.setdefault(variant_name(r.name), {})[r.config["seq_len"]] = r
    for variant, cells in by_variant.items():
        row = [variant]
        for t in lengths:
            r = cells.get(t)
            if r is None:
                row.append("-")
            elif r.status == "solved":
                row.append(f"[green]✓ solved at step {r.solved_at}[/green]")
            else:
                row.append(f"[red]✗ {r.status}, {r.metric_name} {fmt(r.final_metric, 3)}[/red]")
        table.add_row(*row)
    out.print(table)
