"""Process helpers for the fault tests (Linux /proc)."""

import contextlib
import os
import signal
import time


def children(pid: int) -> list[int]:
    """Direct child process ids of `pid`."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            return [int(p) for p in handle.read().split()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Whether `pid` is running (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, …)."""
    found, stack = [], children(pid)
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children(child))
    return found


def processes_where(test) -> list[int]:
    """The ids of the running processes (not this one) whose command line passes `test`."""
    pids = [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]
    return [pid for pid in pids if test(cmdline(pid))]


def kill_trees(pids: list[int], timeout: float = 30.0) -> None:
    """SIGKILL `pids` and everything below them (collected first: an orphan is re-parented and lost to the
    search), then wait until they are gone."""
    everyone = set(pids)
    for pid in pids:
        everyone.update(descendants(pid))
    for pid in everyone:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.time() + timeout
    while time.time() < deadline and any(alive(pid) for pid in everyone):
        time.sleep(0.1)
