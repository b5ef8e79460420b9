"""What a report needs to know about a run's task, stored with the run so that reports read the store only.

The facts: the metric's direction, its success threshold, whether the task is a stream (truncated BPTT over
one long text), and the memoryless predictor's metric and loss. The trainer puts them in each `TrainResult`;
the store's migration computes them once for runs stored before rnnlab kept them, from their configs.
"""

from __future__ import annotations

from typing import Any

from rnnlab.lab.tasks import TASKS, StreamTask, Task, make_task

FACTS = ("higher_is_better", "solved_threshold", "stream_task", "chance", "baseline_loss")


def task_facts(task: Task) -> dict[str, Any]:
    """The facts of one built task, keyed as `TrainResult`'s fields (see FACTS)."""
    return {
        "higher_is_better": task.metric.higher_is_better,
        "solved_threshold": task.metric.solved_at,  # None: the task has no success criterion (text)
        "stream_task": isinstance(task, StreamTask),
        "chance": task.chance,
        "baseline_loss": task.baseline_loss,
    }


def facts_from_config(config: dict[str, Any]) -> dict[str, Any] | None:
    """The facts of the task a stored run config describes, building the task as the trainer does (some
    levels, such as the text task's unigram entropy, depend on the generated data). None for a run without a
    task (a monitor's history from the user's own training) or of a task this rnnlab no longer knows."""
    name = config.get("task")
    if name not in TASKS:
        return None
    try:
        task = make_task(
            name, seq_len=config.get("seq_len"), seed=config.get("seed", 0), **(config.get("task_options") or {})
        )
    except (TypeError, ValueError):  # options that this version's task refuses: the facts stay unknown
        return None
    return task_facts(task)
