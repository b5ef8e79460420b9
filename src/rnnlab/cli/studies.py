"""rnnlab studies: the bundled studies and the claims they test."""

from __future__ import annotations

import argparse

from rich.table import Table

from rnnlab.cli.common import console


def register(sub) -> None:
    parser = sub.add_parser("studies", help="list the bundled studies and the claims they test")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnlab.lab.study import bundled_studies, load_study

    table = Table(title="Bundled studies (rnnlab sweep NAME; rnnlab report NAME)")
    for column in ("name", "runs", "claim", "source"):
        table.add_column(column, overflow="fold")
    for name in sorted(bundled_studies()):
        study = load_study(name)
        table.add_row(name, str(len(study.runs)), study.claim, study.source)
    console().print(table)
    return 0
