"""rnnlab inits: list the initialisation schemes."""

from __future__ import annotations

import argparse

from rich.table import Table

from rnnlab.cli.common import console


def register(sub) -> None:
    parser = sub.add_parser("inits", help="list the initialisation schemes")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rnnlab.recurrent.cells import CELLS
    from rnnlab.recurrent.init import SCHEMES

    table = Table(title="Initialisation schemes (combine with '+', e.g. orthogonal+chrono)")
    table.add_column("name")
    table.add_column("cells")
    table.add_column("options")
    table.add_column("what it does")
    for scheme in SCHEMES.values():
        cells = "all" if scheme.cells >= set(CELLS) else ", ".join(sorted(scheme.cells))
        table.add_row(scheme.name, cells, ", ".join(scheme.options) or "-", scheme.summary)
    console().print(table)
    return 0
