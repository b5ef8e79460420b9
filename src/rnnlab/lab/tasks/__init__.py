"""The long-range benchmark tasks, each deterministic from a seed, and their registry.

    task = make_task("adding", seq_len=100, seed=0)
    x, y = task.sample(64, torch.Generator().manual_seed(1))

`TASKS` maps names to classes; `make_task` validates the options and names the valid choices.
"""

from __future__ import annotations

import inspect

from rnnlab.lab.tasks.adding import Adding
from rnnlab.lab.tasks.arithmetic import Arithmetic
from rnnlab.lab.tasks.base import IGNORED, Metric, NextSymbolTask, SequenceTask, StreamTask, Task
from rnnlab.lab.tasks.copy import Copy
from rnnlab.lab.tasks.digits import Digits
from rnnlab.lab.tasks.mnist import MNIST
from rnnlab.lab.tasks.temporal_order import TemporalOrder
from rnnlab.lab.tasks.text import Text
from rnnlab.lab.tasks.xml import XML

TASKS: dict[str, type[Task]] = {
    cls.name: cls for cls in (Adding, Copy, TemporalOrder, Digits, MNIST, Text, Arithmetic, XML)
}


def task_options(name: str) -> tuple[str, ...]:
    """The options a task takes besides seq_len and seed."""
    params = inspect.signature(get_task_class(name).__init__).parameters
    return tuple(p for p in params if p not in ("self", "seq_len", "seed"))


def get_task_class(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose from: {', '.join(TASKS)}") from None


def make_task(name: str, seq_len: int | None = None, seed: int = 0, **options) -> Task:
    """Build a task by name; unknown options are an error that lists the valid ones."""
    cls = get_task_class(name)
    valid = task_options(name)
    for option in options:
        if option not in valid:
            raise ValueError(f"task {name!r} has no option {option!r}; its options: {', '.join(valid) or 'none'}")
    kwargs = dict(options)
    if seq_len is not None:
        kwargs["seq_len"] = seq_len
    return cls(seed=seed, **kwargs)


__all__ = [
    "IGNORED",
    "TASKS",
    "Metric",
    "NextSymbolTask",
    "SequenceTask",
    "StreamTask",
    "Task",
    "make_task",
    "task_options",
]
