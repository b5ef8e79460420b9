"""The command line: parses, calls the library, and turns user mistakes into one-line errors (exit 2).

One module per command, each with `register(subparsers)` (its options, beside the code that uses them) and
the function that runs it. User mistakes — argparse errors and the ValueError the library raises for a bad
value, name or file — print ``rnnlab: error: <what was wrong and what was expected>`` and exit 2 without a
traceback; a bug in rnnlab is reported as an internal error (exit 3) with its traceback written to a file
(set RNNLAB_TRACEBACK=1 to see tracebacks instead). A `kill` (SIGTERM) stops a command as Ctrl-C does: a
sweep or run started in the background (where the shell ignores SIGINT) stops cleanly, resumable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence

import rnnlab
from rnnlab.cli import demo, diagnose, inits, report, runs, studies, sweep, train
from rnnlab.cli.common import Parser, UsageError
from rnnlab.lab.checkpoints import CheckpointError

COMMANDS = (inits, diagnose, train, runs, studies, sweep, report, demo)  # in the order `rnnlab --help` lists them
INTERNAL_ERROR = 3  # exit status of a bug in rnnlab (2: a user mistake, 1: an I/O failure, 130: interrupted)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="rnnlab",
        description="See, measure and fix the vanishing (and exploding) gradient in recurrent networks.",
    )
    parser.add_argument("--version", action="version", version=f"rnnlab {rnnlab.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rnnlab` command. Returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 0
        with terminate_as_interrupt():
            return args.func(args)
    except (UsageError, ValueError, FileNotFoundError, NotImplementedError, CheckpointError) as err:
        # What rnnlab raises for a bad value, name, file or config: the user's to fix, in one line.
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"rnnlab: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"rnnlab: {interrupt}" if str(interrupt) else "rnnlab: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # e.g. a full disk: not a user mistake, but no traceback either; nothing is half-written
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        print(
            f"rnnlab: error: {err.strerror or err} ({err.filename or 'I/O'}); completed work is kept", file=sys.stderr
        )
        return 1
    except Exception as err:  # anything else is a bug in rnnlab, not the user's mistake: say so, keep the traceback
        if os.environ.get("RNNLAB_TRACEBACK"):
            raise
        path = _write_traceback()
        message = str(err).splitlines()[0] if str(err) else ""
        print(
            f"rnnlab: internal error: {type(err).__name__}: {message} — this is a bug in rnnlab, not in how it was "
            f"called; please report it with the traceback written to {path}",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the command runs, SIGTERM raises KeyboardInterrupt: the sweep stops its workers and says how to
    resume, a run keeps its last checkpoint, the store is left consistent. (A background job started by a
    non-interactive shell ignores SIGINT, so `kill` is the only clean way to stop it.)"""
    if threading.current_thread() is not threading.main_thread():  # signal handlers belong to the main thread
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _write_traceback() -> str:
    """Write the current exception's traceback to a new file in the temp folder; returns its path."""
    import tempfile
    import traceback

    fd, path = tempfile.mkstemp(prefix="rnnlab-traceback-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"rnnlab {rnnlab.__version__}, python {sys.version.split()[0]}\n{traceback.format_exc()}")
    return path


if __name__ == "__main__":
    sys.exit(main())
