"""rnnlab studies: the bundled studies and the claims they test; with --findings, the README's table of
reproduced findings generated from the study files and their committed runs.csv; with --ladder, the remedy
ladder's table and picture from the `ladder` study's runs.csv."""

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
        "--ladder",
        action="store_true",
        help="print the remedy ladder's table (markdown) and draw <root>/ladder/ladder.png from its runs.csv",
    )
    parser.add_argument(
        "--root",
        default="docs/studies",
        help="with --findings or --ladder: the folder of <study>/runs.csv (default docs/studies)",
    )
    parser.add_argument(
        "--readme",
        metavar="PATH",
        help="with --findings or --ladder: write the table between that table's markers in PATH",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.findings and args.ladder:
        raise UsageError("give --findings or --ladder, not both")
    if args.findings or args.ladder:
        return _generated_table(args)
    if args.readme:
        raise UsageError("--readme goes with --findings or --ladder (rnnlab studies --findings --readme README.md)")
    from rnnlab.lab.study import bundled_studies, load_study

    table = Table(title="Bundled studies (rnnlab sweep NAME; rnnlab report NAME)")
    for column in ("name", "runs", "claim", "source"):
        table.add_column(column, overflow="fold")
    for name in sorted(bundled_studies()):
        study = load_study(name)
        table.add_row(name, str(len(study.runs)), study.claim, study.source)
    console().print(table)
    return 0


def _generated_table(args: argparse.Namespace) -> int:
    from rnnlab.report import findings, ladder

    if args.ladder:
        table, markers, what = ladder.ladder(args.root), (ladder.START, ladder.END), "ladder table"
    else:
        table, markers, what = findings.findings_table(args.root), (findings.START, findings.END), "findings table"
    if args.readme is None:
        print(table)  # plain print: rich would wrap and style the markdown
        return 0
    try:
        changed = findings.update_readme(args.readme, table, *markers)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot update {args.readme!r}: {error}") from None
    console().print(f"{args.readme}: {what} {'updated' if changed else 'already up to date'}")
    return 0
