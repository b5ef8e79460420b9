"""What a sweep's runs will cost, for `rnnlab sweep --dry-run`: `estimate` bounds it from the finished runs in the
store; `time_updates` measures a variant that has none by training it for a few updates here, storing nothing."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from typing import Any

from rnnlab.lab.checkpoints import checkpoint_step
from rnnlab.lab.config import RunConfig
from rnnlab.lab.store import FINISHED, Store
from rnnlab.lab.study import Study
from rnnlab.lab.sweep import shorter_run


@dataclass
class Estimate:
    """An upper bound on the compute a sweep's runs need (see `estimate`)."""

    seconds: float = 0.0
    runs: int = 0  # runs estimated
    unknown: int = 0  # runs to start or resume with no finished run of their variant and length to go by
    timed: int = 0  # of `runs`, those estimated from updates timed here (`time_updates`)


def estimate(
    study: Study, store: Store | None, actions: list[tuple[str, str]], timed: dict[str, float] | None = None
) -> Estimate:
    """The compute the runs that `preview`'s `actions` start or resume would take at most: each run's budget of
    updates (less those of the shorter run it continues) times the median seconds per update of the finished
    runs in `store` whose config is the same but for the seed and the budget, less the updates a resumed run's
    checkpoint has done (a run that solves its task stops early, hence "at most"). `timed`: seconds per update
    measured here (`untimed`, `time_updates`) for the variants with no finished run, by `variant_key`."""
    rates = _stored_rates(study, store)
    result = Estimate()
    for config, (_, action) in zip(study.runs, actions, strict=True):
        if not _needs_compute(action):
            continue
        key = variant_key(config.canonical())
        rate = statistics.median(rates[key]) if key in rates else (timed or {}).get(key)
        if rate is None:
            result.unknown += 1
            continue
        result.seconds += rate * (config.steps - _updates_done(store, study, config, action))
        result.runs += 1
        result.timed += key not in rates
    return result


def untimed(study: Study, store: Store | None, actions: list[tuple[str, str]]) -> dict[str, RunConfig]:
    """The variants (`variant_key` → the first of its runs) that runs to start or resume belong to and that
    have no finished run in `store` to estimate from."""
    known = _stored_rates(study, store)
    left: dict[str, RunConfig] = {}
    for config, (_, action) in zip(study.runs, actions, strict=True):
        if _needs_compute(action) and (key := variant_key(config.canonical())) not in known:
            left.setdefault(key, config)
    return left


def time_updates(config: RunConfig, updates: int, threads: int = 1) -> float:
    """Seconds per update of `config` on this machine now, with `threads` PyTorch threads (as one sweep worker
    has): `updates` updates timed after as many to warm up, on the trainer's own clock of updates (evaluations
    excluded). Nothing is stored; the run's budget and evaluations are replaced, nothing else."""
    import torch

    from rnnlab.lab.trainer import Trainer

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        result = Trainer(config.model_copy(update={"steps": 2 * updates, "eval_every": updates})).run()
    finally:
        torch.set_num_threads(before)
    clock = [(e.step, e.train_time) for e in result.evaluations]
    if len(clock) >= 2 and clock[-1][0] > clock[-2][0]:  # after the warm-up
        (s0, t0), (s1, t1) = clock[-2:]
        return (t1 - t0) / (s1 - s0)
    return clock[-1][1] / max(clock[-1][0], 1)  # it ended (solved, diverged) within the first `updates`


def variant_key(config: dict[str, Any]) -> str:
    """A canonical config without its seed and budget: runs with equal keys cost the same per update."""
    return json.dumps({k: v for k, v in config.items() if k not in ("seed", "steps")}, sort_keys=True)


def _stored_rates(study: Study, store: Store | None) -> dict[str, list[float]]:
    """Seconds per update of the study's finished runs in `store`, by `variant_key`."""
    rates: dict[str, list[float]] = {}
    for run in store.runs(study=study.name) if store is not None else []:
        if run.status in FINISHED and run.wall_time and run.steps:
            rates.setdefault(variant_key(run.config), []).append(run.wall_time / run.steps)
    return rates


def _needs_compute(action: str) -> bool:
    return not action.startswith(("skip", "not needed", "same as", "fail"))


def _updates_done(store: Store, study: Study, config: RunConfig, action: str) -> int:
    """What a run to start or resume has done already: its own checkpoint's updates, or its shorter run's."""
    if action.startswith("resume from its checkpoint"):
        left = store.find(config.hash(), study.name, ("running",))
        return checkpoint_step(store.checkpoint_path(left.id)) or 0
    if action.startswith("new: continues"):
        return shorter_run(store, study.name, config).config["steps"]
    return 0
