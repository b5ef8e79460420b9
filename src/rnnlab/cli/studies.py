"""rnnlab studies: the bundled studies and the claims they test; with --findings, the README's table of
reproduced findings generated from the study files and their committed runs.csv."""

from __future__ import annotations

import argparse

from rich.table import Table

from rnnlab.cli.common import UsageError, console


def register(sub) -> None:
    parser = sub.add_parser("studies", help="list the bundled studies and the claims they test")
    parser.add_argument(
        "--findings",
        action="store_true",
        help="print the findings table (markdown) from each study's runs.csv instead",
    )
    parser.add_argument(
        "--root", default="docs/studies", help="with --findings: the folder of <study>/runs.csv (default docs/studies)"
    )
    parser.add_argument(
        "--readme", metavar="PATH", help="with --findings: write the table between the findings markers of PATH"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.findings:
        return _findings(args)
    if args.readme:
        raise UsageError("--readme goes with --findings (rnnlab studies --findings --readme README.md)")
    from rnnlab.lab.study import bundled_studies, load_study

    table = Table(title="Bundled studies (rnnlab sweep NAME; rnnlab report NAME)")
    for column in ("name", "runs", "claim", "source"):
        table.add_column(column, overflow="fold")
    for name in sorted(bundled_studies()):
        study = load_study(name)
        table.add_row(name, str(len(study.runs)), study.claim, study.source)
    console().print(table)
    return 0


def _findings(args: argparse.Namespace) -> int:
    from rnnlab.report.findings import findings_table, update_readme

    table = findings_table(args.root)
    if args.readme is None:
        print(table)  # plain print: rich would wrap and style the markdown
        return 0
    try:
        changed = update_readme(args.readme, table)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot update {args.readme!r}: {error}") from None
    console().print(f"{args.readme}: findings table {'updated' if changed else 'already up to date'}")
    return 0
