"""rnnlab report: a study's self-contained HTML report and its PNGs."""

from __future__ import annotations

import argparse

from rnnlab.cli.common import console, open_store, store_option


def register(sub) -> None:
    parser = sub.add_parser("report", parents=[store_option()], help="write a study's HTML report and plots")
    parser.add_argument("study", help="study name in the store")
    parser.add_argument("--out", help="output folder (default out/report-STUDY)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnlab.report.html import build_report

    with open_store(args) as store:
        report = build_report(store, args.study, args.out)
    console().print(f"Report of study {args.study} ({report.runs} runs) written to {report.html}")
    return 0
