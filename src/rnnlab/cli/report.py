"""rnnlab report: the self-contained HTML report and its PNGs, of a study or of a single run."""

from __future__ import annotations

import argparse

from rnnlab.cli.common import UsageError, console, open_store, store_option


def register(sub) -> None:
    parser = sub.add_parser(
        "report", parents=[store_option()], help="write the HTML report and plots of a study or of one run"
    )
    parser.add_argument("study", nargs="?", help="study name in the store")
    parser.add_argument("--run", type=int, metavar="ID", help="report one run instead (see: rnnlab runs list)")
    parser.add_argument("--out", help="output folder (default out/report-STUDY or out/report-run-ID)")
    parser.add_argument(
        "--study-file",
        metavar="PATH",
        help="the study file the runs came from, so the report lists its runs the store lacks "
        "(default: the bundled study of that name, if there is one)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnlab.lab.study import bundled_studies, load_study
    from rnnlab.report.html import build_report, build_run_report

    if (args.study is None) == (args.run is None):
        raise UsageError("rnnlab report needs a study name or --run ID (one of the two)")
    if args.study_file is not None and args.study is None:
        raise UsageError("--study-file goes with a study name, not with --run")
    plan = None
    if args.study_file is not None or args.study in bundled_studies():
        plan = load_study(args.study_file or args.study)
        if plan.name != args.study:
            raise UsageError(f"study file {args.study_file!r} is study {plan.name!r}, not {args.study!r}")
    with open_store(args) as store:
        if args.run is not None:
            report = build_run_report(store, args.run, args.out)
            what = f"run {args.run}"
        else:
            report = build_report(store, args.study, args.out, plan=plan)
            what = f"study {args.study} ({report.runs} runs)"
    console().print(f"Report of {what} written to {report.html}")
    return 0
