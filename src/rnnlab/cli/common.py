"""What every command shares: the parser class that turns argparse errors into one-line usage errors (with
"did you mean" for a mistyped option), the console, argument types, the --store option, and formatting."""

from __future__ import annotations

import argparse
import difflib
import sys

from rich.console import Console

from rnnlab.report.format import fmt, fmt_rate

__all__ = [
    "Parser",
    "UsageError",
    "console",
    "fmt",
    "fmt_rate",
    "fraction",
    "open_store",
    "positive_int",
    "store_option",
]


class UsageError(Exception):
    """A mistake in how rnnlab was called: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the whole usage block first
        command = self.prog.removeprefix("rnnlab").strip()
        message += _suggestion(self, message)
        raise UsageError(f"{command}: {message}" if command else message)


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """'; did you mean --seq-len?' for an unrecognised option close to a real one (Python 3.11's argparse
    has no suggestions of its own)."""
    if not message.startswith("unrecognized arguments:"):
        return ""
    options = _options(parser)
    for word in message.removeprefix("unrecognized arguments:").split():
        close = difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.6)
        if word.startswith("-") and close:
            return f"; did you mean {close[0]}?"
    return ""


def _options(parser: argparse.ArgumentParser) -> list[str]:
    """Every option string of `parser` and of its subcommands (argparse rejects a subcommand's unknown options
    at the top level, so the top level must know theirs). argparse has no public list of either."""
    found = []
    for action in parser._actions:
        found += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += _options(child)
    return found


def console() -> Console:
    # Tables stay readable when the output is a file or a pipe (rich would assume 80 columns).
    width = None if sys.stdout.isatty() else 120
    return Console(highlight=False, width=width)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def store_option() -> argparse.ArgumentParser:
    """The --store option, as a parent parser for every command that reads or writes the results store."""
    from rnnlab.lab.store import DEFAULT_PATH

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--store", default=str(DEFAULT_PATH), help=f"results store (default {DEFAULT_PATH})")
    return parent


def open_store(args: argparse.Namespace):
    from rnnlab.lab.store import Store

    return Store(args.store)


def run_status(store, run, long: bool = False) -> str:
    """A run's status; for a 'running' run whether a process trains it now (its claim names one alive on this
    machine) or it was interrupted. `long` (`runs show`): a sentence, with how far its last checkpoint got."""
    from rnnlab.lab.checkpoints import checkpoint_step

    if run.status != "running":
        return run.status
    short, who = _claimant(run)
    if not long:
        return short
    path = store.checkpoint_path(run.id)
    step = checkpoint_step(path) if path.exists() else 0
    steps = run.config.get("steps", "?")
    where = {None: "its checkpoint is unreadable", 0: "no checkpoint yet"}.get(step, f"at update {step} of {steps}")
    return f"running — {who} ({where})"


def run_columns(store, run) -> tuple[str, str, str, str]:
    """`runs list`'s status, steps, metric and final columns. The store has a run's results only once it has
    finished, so a 'running' run's come from one read of its checkpoint: who trains it, the checkpoint's update
    of its budget ('16250/30000'), its metric's name and its last test metric ('0.159 so far'; '-' before its
    first evaluation or when the checkpoint cannot be read)."""
    from rnnlab.lab.checkpoints import checkpoint_progress

    if run.status != "running":
        return run.status, fmt(run.steps), run.metric_name or "-", fmt(run.final_metric)
    path = store.checkpoint_path(run.id)
    if not path.exists():
        step, result = 0, {}
    elif (found := checkpoint_progress(path)) is None:
        step, result = None, {}  # unreadable
    else:
        step, result = found
    evaluations = result.get("evaluations") or []
    return (
        _claimant(run)[0],
        f"{'?' if step is None else step}/{run.config.get('steps', '?')}",
        result.get("metric_name") or "-",
        f"{fmt(evaluations[-1]['metric'])} so far" if evaluations else "-",
    )


def _claimant(run) -> tuple[str, str]:
    """Who has a 'running' run, short ('training (pid N)', 'interrupted') and as a phrase for `runs show`."""
    from rnnlab.lab.store.claims import claimed_elsewhere, claimed_on_other_host

    if (owner := claimed_elsewhere(run.environment)) is not None:
        return f"training (pid {owner['pid']})", f"trained now by pid {owner['pid']} on this machine"
    if (host := claimed_on_other_host(run.environment)) is not None:
        pid = run.environment["claimed_by"].get("pid")
        return f"claimed on {host}", f"claimed by pid {pid} on {host}"
    return "interrupted", "interrupted: the same command resumes it"
