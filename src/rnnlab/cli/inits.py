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
    from rnnlab.recurrent.init import ALL_CELLS, SCHEMES

    table = Table(title="Initialisation schemes (combine with '+', e.g. orthogonal+chrono)")
    table.add_column("name")
    table.add_column("cells")
    table.add_column("options")
    table.add_column("what it does")
    for scheme in SCHEMES.values():
        left_out = set(CELLS) - scheme.cells
        if not left_out:
            cells = "all"
        elif scheme.cells >= ALL_CELLS:  # every cell with torch.nn's parameters: name the few it skips
            cells = f"all but {', '.join(sorted(left_out))}"
        else:
            cells = ", ".join(sorted(scheme.cells))
        table.add_row(scheme.name, cells, ", ".join(scheme.options) or "-", scheme.summary)
    console().print(table)
    return 0
