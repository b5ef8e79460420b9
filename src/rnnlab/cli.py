"""The command line: parses, calls the library, and turns user mistakes into one-line errors (exit 2).

Every subcommand is a function `_cmd_NAME(args) -> int` registered in `_build_parser`. User mistakes —
argparse errors and the ValueError / TypeError the library raises for bad values — print
``rnnlab: error: <what was wrong and what was expected>`` and exit 2, without a traceback
(set RNNLAB_TRACEBACK=1 to see one).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

import rnnlab


class UsageError(Exception):
    """A mistake in how rnnlab was called: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage block first
        raise UsageError(f"{self.prog}: {message}")


def _console() -> Console:
    return Console(highlight=False)


# ------------------------------------------------------------------------------------------------ commands


def _cmd_inits(args: argparse.Namespace) -> int:
    from rnnlab.init import SCHEMES

    table = Table(title="Initialisation schemes (combine with '+', e.g. orthogonal+chrono)")
    table.add_column("name")
    table.add_column("cells")
    table.add_column("options")
    table.add_column("what it does")
    for scheme in SCHEMES.values():
        cells = "all" if len(scheme.cells) == 5 else ", ".join(sorted(scheme.cells))
        table.add_row(scheme.name, cells, ", ".join(scheme.options) or "-", scheme.summary)
    _console().print(table)
    return 0


# ------------------------------------------------------------------------------------------------ parser


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rnnlab",
        description="See, measure and fix the vanishing (and exploding) gradient in recurrent networks.",
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {rnnlab.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    inits = sub.add_parser("inits", help="list the initialisation schemes")
    inits.set_defaults(func=_cmd_inits)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnnlab` command. Returns the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        return args.func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, NotImplementedError) as err:
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        if not message.startswith("rnnlab"):
            message = f"rnnlab: {message}"
        print(message.replace("rnnlab: ", "rnnlab: error: ", 1), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
