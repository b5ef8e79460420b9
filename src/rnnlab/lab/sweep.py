"""Run a study's runs in parallel: local worker processes, or a Ray cluster. The driver alone writes the store.

Before any work starts the driver plans the study against the store: a run whose config hash already has a
finished run in this study is skipped; one left 'running' by a killed sweep is resumed (same run id, from
its checkpoint); the rest are recorded as 'running' and submitted. Each finished run is written in one
transaction as its result arrives, so a sweep killed at any moment resumes where it stopped, with no
duplicated and no half-written runs. In a study with `skip_after_failure` (rnnlab.lab.study.SKIPPED) a run
starts only once its next shorter version has finished, and not at all if that one was not solved.

Executors (`EXECUTORS`): ``local`` — a pool of `workers` processes (spawned, each with
`threads_per_worker` PyTorch threads, 1 by default so N workers use N cores well); ``ray`` — the same
work as Ray tasks, on a local Ray cluster started for the sweep or on an existing one (`address`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import queue as queue_module
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rnnlab.lab.checkpoints import resume_point
from rnnlab.lab.config import RunConfig, make_config
from rnnlab.lab.store import FINISHED, Run, Store, outcome
from rnnlab.lab.store.claims import claimant, claimed_elsewhere
from rnnlab.lab.study import Study, predecessors, unsolved_predecessor
from rnnlab.recurrent.validation import positive_int

EXECUTORS = ("local", "ray")
LOG_EVERY_SECONDS = 300.0  # how often a sweep whose output is not a terminal says how each worker's run is doing


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep: finished runs are recorded, the others stay 'running' and resume next time."""


class ExecutorUnavailable(ValueError):
    """The requested executor cannot run here (e.g. Ray is not installed); one-line message."""


@dataclass
class SweepSummary:
    """What a sweep did: runs skipped (already in the store), not run because a shorter version of them was not
    solved (`skip_after_failure`), recorded as the outcome of a shorter-budget run that ended early, run now,
    failed, and all run ids by name."""

    study: str
    skipped: int = 0
    not_needed: int = 0
    elsewhere: int = 0  # running in another live sweep on this machine (`claimed_elsewhere`): left to it
    repeated: int = 0  # recorded without training: a shorter run that ended early is their outcome (`ended_early`)
    ran: int = 0
    failed: int = 0
    run_ids: dict[str, int] = field(default_factory=dict)
    wall_time: float = 0.0


@dataclass
class _Job:
    run_id: int
    name: str
    config: dict[str, Any]
    checkpoint: str
    steps: int
    run: RunConfig
    key: str  # run.hash(), computed once
    claim: str = "new"  # how plan() claimed it (Store.claim_run), so a failed executor start can undo it
    start_from: str | None = None  # the final checkpoint of a completed shorter run it continues (see `shorter_run`),
    #                                set when it starts


def status_in(store: Store, study: str) -> Callable[[RunConfig], str | None]:
    """A run's status in `store`: a finished run's if there is one, else 'running' or 'failed', else None."""

    def status_of(config: RunConfig) -> str | None:
        found = store.find(config.hash(), study) or store.find(config.hash(), study, ("running", "failed"))
        return None if found is None else outcome(found)

    return status_of


def plan(study: Study, store: Store) -> tuple[SweepSummary, list[_Job]]:
    """Skip finished runs and those a shorter run's failure makes unneeded, resume interrupted ones, record the
    rest as 'running'. Whether a run continues or repeats a run of a smaller budget is decided when it starts
    (`_Schedule.take`), since that run may be one of this sweep's."""
    summary = SweepSummary(study=study.name)
    store.save_study(study.name, study.claim, study.source, study.description)
    before, status_of = predecessors(study), status_in(store, study.name)
    jobs = []
    environment = None
    for config in study.runs:
        if store.find(config.hash(), study.name) is None and unsolved_predecessor(config, before, status_of):
            summary.not_needed += 1
            continue
        if environment is None:
            from rnnlab.lab.environment import environment as describe  # torch is imported only when planning starts

            environment = {**describe(), "claimed_by": claimant()}
        run_id, state = store.claim_run(config.label(), config.canonical(), config.hash(), environment, study.name)
        summary.run_ids[config.label()] = run_id
        if state == "finished":
            summary.skipped += 1
            continue
        if state == "busy":  # another sweep trains it now: training it here too would do the work twice
            summary.elsewhere += 1
            continue
        checkpoint = str(store.checkpoint_path(run_id))
        data = config.model_dump(mode="json")
        jobs.append(_Job(run_id, config.label(), data, checkpoint, config.steps, config, config.hash(), state))
    return summary, jobs


def shorter_run(store: Store, study: str | None, config: RunConfig) -> Run | None:
    """The completed run of `study` (None: the single runs of `rnnlab train`) that `config` can continue
    (`Trainer.continue_from`): the same config with a smaller budget, whose final checkpoint is kept
    (`rnnlab runs prune --keep-completed`), the longest such. So a study whose budget grew trains only the new
    updates of each run that ran before; None if there is none, or the budget cannot be extended exactly (a
    schedule over the budget, an evaluation off schedule)."""
    from rnnlab.lab.trainer import budget_refusal  # the trainer (and torch) only when a sweep plans

    family = _but_budget(config.canonical())
    best = None
    for run in store.runs(study=study, status="completed"):
        steps = run.config.get("steps")
        if (
            run.study == study
            and isinstance(steps, int)
            and budget_refusal(config, steps) is None
            and _but_budget(run.config) == family
            and store.checkpoint_path(run.id).exists()
            and (best is None or steps > best.config["steps"])
        ):
            best = run
    return best


def ended_early(store: Store, study: str | None, config: RunConfig) -> Run | None:
    """The run whose outcome a new run of `config` would repeat update for update, so it need not train: in
    `study`, the same config with a smaller budget that solved (at a scheduled evaluation) or diverged before
    its budget ran out, when the budget changes nothing before that point (a constant learning rate). Runs are
    deterministic on the CPU (a run continued to a larger budget equals one trained there from scratch, bit for
    bit), so the longer run would stop at the same update with the same numbers. None if there is none."""
    if config.lr_schedule != "constant":
        return None
    family = _but_budget(config.canonical())
    for status in ("solved", "diverged"):
        for run in store.runs(study=study, status=status):
            steps = run.config.get("steps")
            if (
                run.study == study
                and isinstance(steps, int)
                and steps < config.steps
                and _but_budget(run.config) == family
                and (status == "diverged" or (run.solved_at or 0) % config.eval_every == 0)
            ):
                return run
    return None


def _at(study: Study, shorter: RunConfig) -> str:
    """A shorter version of a run, named by the value that differs: 'seq_len=100'."""
    return f"{study.skip_after_failure}={getattr(shorter, study.skip_after_failure or '')}"


class _Schedule:
    """The order jobs start in: the study's, except that with `skip_after_failure` a job waits until its next
    shorter version (if this sweep runs it) has finished, and is dropped, its claim released, when that one (or
    a shorter one before it) was not solved."""

    def __init__(self, study: Study, store: Store, summary: SweepSummary, jobs: list[_Job], display):
        self.study, self.store, self.summary, self.display = study, store, summary, display
        self.before, self.status_of = predecessors(study), status_in(store, study.name)
        self.waiting = list(jobs)
        self.position = {id(job): i for i, job in enumerate(jobs)}
        self.unfinished = {job.key for job in jobs}
        # Each job's shorter version, by hash, computed once: take() looks at every waiting job on each call.
        self.waits_on = {job.key: self.before[job.key].hash() for job in jobs if job.key in self.before}
        # … and the jobs of the same config with a smaller budget, whose outcome it continues or repeats.
        self.smaller_budgets = _smaller_budgets(jobs)
        self.dropped = 0  # jobs not run because a shorter run was not solved

    def take(self, limit: int | None) -> list[_Job]:
        """Up to `limit` jobs (None: all) that may start now, in order; drops the jobs not needed on the way."""
        taken: list[_Job] = []
        for job in list(self.waiting):
            if limit is not None and len(taken) >= limit:
                break
            if self.waits_on.get(job.key) in self.unfinished:
                continue  # its shorter version runs in this sweep and has not finished: wait for it
            if any(key in self.unfinished for key in self.smaller_budgets.get(job.key, ())):
                continue  # a smaller budget of it runs in this sweep: wait, then continue or repeat it
            self.waiting.remove(job)
            if (failed := unsolved_predecessor(job.run, self.before, self.status_of)) is not None:
                self._drop(job, failed)
            elif self._needs_training(job):
                taken.append(job)
        return taken

    def _needs_training(self, job: _Job) -> bool:
        """Decide, as the job starts, what a run that has not trained yet builds on: the outcome of a smaller
        budget that ended early, recorded as its own without training (False); or the final checkpoint of a
        completed smaller budget, which it continues (True, `start_from`); or nothing (True)."""
        if Path(job.checkpoint).exists():
            return True  # it has trained: it resumes from its own checkpoint
        if (same := ended_early(self.store, self.study.name, job.run)) is not None:
            self.store.give_outcome(job.run_id, same.id)
            self.summary.repeated += 1
            self.done(job)
            if self.display is not None:
                self.display.finished(job, same.status, f"same as run {same.id}: {same.ended}")
            return False
        shorter = shorter_run(self.store, self.study.name, job.run)
        job.start_from = None if shorter is None else str(self.store.checkpoint_path(shorter.id))
        return True

    def _drop(self, job: _Job, failed: RunConfig) -> None:
        self._unclaim(job)
        self.summary.not_needed += 1
        self.dropped += 1
        self.done(job)
        if self.display is not None:
            self.display.finished(job, "skipped", f"not run: {_at(self.study, failed)} was not solved")

    def _unclaim(self, job: _Job) -> None:
        """Hand back a run that this sweep claimed and did not start: a new claim is removed, a failed run is
        failed again, and a run an earlier sweep claimed and never started (no checkpoint) is removed."""
        if job.claim == "resumed" and not Path(job.checkpoint).exists():
            self.store.delete_runs([job.run_id])
        else:
            self.store.release_claims([(job.run_id, job.claim)])

    def release_waiting(self) -> int:
        """A stopped sweep hands back the runs it never started, so that the store shows 'running' only for runs
        that trained (a killed driver cannot, and the next sweep takes those over). Returns how many."""
        waiting, self.waiting = self.waiting, []
        for job in waiting:
            self._unclaim(job)
        return len(waiting)

    def done(self, job: _Job) -> None:
        self.unfinished.discard(job.key)

    def retry(self, job: _Job) -> None:
        """Put a job whose worker died back in its place, to start again in a fresh pool."""
        self.waiting.append(job)
        self.waiting.sort(key=lambda j: self.position[id(j)])


def _smaller_budget_to_come(study: Study, config: RunConfig, status_of) -> RunConfig | None:
    """The largest smaller budget of `config` among the study's runs that has not finished yet, or None."""
    family = _but_budget(config.canonical())
    smaller = [
        other
        for other in study.runs
        if other.steps < config.steps and _but_budget(other.canonical()) == family and status_of(other) not in FINISHED
    ]
    return max(smaller, key=lambda other: other.steps, default=None)


def _smaller_budgets(jobs: list[_Job]) -> dict[str, list[str]]:
    """For each job, the keys of the jobs whose config is the same but for a smaller `steps`."""
    families: dict[str, list[_Job]] = {}
    for job in jobs:
        families.setdefault(_but_budget(job.run.canonical()), []).append(job)
    return {
        job.key: [other.key for other in family if other.steps < job.steps]
        for family in families.values()
        for job in family
        if any(other.steps < job.steps for other in family)
    }


def preview(study: Study, store: Store | None) -> list[tuple[str, str]]:
    """What `plan` would do with each run, in the order it would claim them, writing nothing (store None: a
    store that does not exist yet): (run name, 'skip: <status>' | 'not needed: <shorter run> was not solved' |
    'resume from its checkpoint' | 'resume from the start' | 'retry: it failed' | 'same as run <id>: …' (a
    shorter-budget run that ended early is its outcome) | 'new: continues run <id> …' | 'new'), plus ' (if
    <shorter run> is solved)' for a run that waits on its shorter version."""
    before = predecessors(study)
    status_of = status_in(store, study.name) if store is not None else lambda config: None
    find = store.find if store is not None else lambda *args: None
    actions = []
    for config in study.runs:
        config_hash = config.hash()
        if (done := find(config_hash, study.name)) is not None:
            actions.append((config.label(), f"skip: {done.status}"))
            continue
        if (failed := unsolved_predecessor(config, before, status_of)) is not None:
            actions.append((config.label(), f"not needed: {_at(study, failed)} was not solved"))
            continue
        if (left := find(config_hash, study.name, ("running",))) is not None:
            owner = claimed_elsewhere(left.environment)
            action = (
                _resume_action(store.checkpoint_path(left.id), config.steps)
                if owner is None
                else f"skip: another sweep trains it now (pid {owner['pid']})"
            )
        elif find(config_hash, study.name, ("failed",)) is not None:
            action = "retry: it failed"
        elif store is not None and (same := ended_early(store, study.name, config)) is not None:
            action = f"same as run {same.id}: {same.ended}, within its {same.config['steps']} updates"
        elif (smaller := _smaller_budget_to_come(study, config, status_of)) is not None and (
            store is None or (done := shorter_run(store, study.name, config)) is None or done.steps < smaller.steps
        ):
            action = f"new (after its {smaller.steps}-update version, which it continues or repeats)"
        elif store is not None and (shorter_budget := shorter_run(store, study.name, config)) is not None:
            action = f"new: continues run {shorter_budget.id} from its {shorter_budget.config['steps']} updates"
        else:
            action = "new"
        shorter = before.get(config_hash)
        if shorter is not None and status_of(shorter) not in FINISHED:
            action += f" (if {_at(study, shorter)} is solved)"
        actions.append((config.label(), action))
    return actions


def _resume_action(checkpoint: Path, steps: int) -> str:
    where = resume_point(checkpoint, steps)
    return "fail: its checkpoint is unreadable" if where is None else f"resume {where}"


def _but_budget(config: dict[str, Any]) -> str:
    """A canonical config without its budget: runs with equal keys differ only in `steps`."""
    return json.dumps({k: v for k, v in config.items() if k != "steps"}, sort_keys=True)


# ------------------------------------------------------------------------------------------------ worker side


def train_job(
    config_data: dict[str, Any], checkpoint: str, threads: int, updates=None, start_from: str | None = None
) -> dict[str, Any]:
    """Train one run in this process and return `TrainResult.to_dict()`. Runs in a worker (or Ray task)."""
    import torch

    from rnnlab.lab.trainer import Callback, Trainer

    torch.set_num_threads(threads)
    config = make_config(config_data)

    class Report(Callback):
        def on_step(self, trainer, step, loss, grad_norm, clipped):
            if updates is not None and (step % 25 == 0 or step == config.steps):
                metric = trainer.result.final_metric
                _put(updates, (os.getpid(), config.label(), step, config.steps, metric))

    result = Trainer(config, checkpoint_path=checkpoint, callbacks=[Report()], start_from=start_from).run()
    if updates is not None:
        _put(updates, (os.getpid(), config.label(), result.steps, config.steps, result.final_metric))
    return result.to_dict()


_UPDATES = None  # in a local worker: the queue for progress messages to the driver (or None)


def _init_worker(driver: int, updates) -> None:
    """Worker initializer: keep the progress queue, and exit as soon as the driver process is gone (e.g.
    killed with SIGKILL) instead of idling forever on the task queue; its unfinished runs resume from their
    checkpoints in the next sweep."""
    import threading

    global _UPDATES
    _UPDATES = updates

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="rnnlab-watch-driver").start()


def _put(updates, message) -> None:
    with contextlib.suppress(Exception):  # a full or closed queue must never stop training
        updates.put_nowait(message)


# ------------------------------------------------------------------------------------------------ driver side


def run_study(
    study: Study,
    store: Store,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    threads_per_worker: int = 1,
    progress: bool = True,
) -> SweepSummary:
    """Run every run of `study` that the store does not have yet; see the module docstring."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from: {', '.join(EXECUTORS)}")
    positive_int(workers, "workers")
    if executor == "ray":
        _require_ray()
    started = time.perf_counter()
    summary, jobs = plan(study, store)
    display = _Display(study, summary, jobs, workers) if progress else None
    schedule = _Schedule(study, store, summary, jobs, display)
    try:
        if jobs:
            run = _run_local if executor == "local" else _run_ray
            run(schedule, store, summary, workers, threads_per_worker, address, display)
    except ExecutorUnavailable:
        store.release_claims([(job.run_id, job.claim) for job in jobs])  # nothing ran: leave the store as it was
        raise
    except KeyboardInterrupt:
        not_started = schedule.release_waiting()
        left = len(jobs) - summary.ran - summary.failed - schedule.dropped - not_started
        raise SweepInterrupted(
            f"interrupted: {summary.ran} run(s) of this sweep finished and are recorded, {left} left unfinished in "
            f"{str(store.path)!r} and {not_started} not started; run the same command again to resume and start them"
        ) from None
    finally:
        if display is not None:
            display.stop()
    summary.wall_time = time.perf_counter() - started
    return summary


def _record(store: Store, summary: SweepSummary, job: _Job, outcome: Callable[[], dict[str, Any]], display) -> None:
    try:
        result = outcome()
    except Exception as error:  # a crash in one run is recorded; the sweep goes on
        store.fail_run(job.run_id, f"{type(error).__name__}: {error}")
        summary.failed += 1
        status = detail = "failed"
    else:
        store.finish_run(job.run_id, result)
        summary.ran += 1
        status, detail = result["status"], _outcome(result)
    if display is not None:
        display.finished(job, status, detail)


def _outcome(result: dict[str, Any]) -> str:
    """One line on a finished run, e.g. 'solved at step 1250 · mse 0.0081 · 41 s'."""
    if result["status"] == "solved":
        head = f"solved at step {result['solved_at']}"
    elif result["status"] == "diverged":
        head = f"diverged at step {result['diverged_at']}"
    else:
        head = f"{result['status']} after {result['steps']} steps"
    metric = "-" if result["final_metric"] is None else f"{result['final_metric']:.4g}"  # lab does not import report
    return f"{head} · {result['metric_name']} {metric} · {result['wall_time']:.0f} s"


def _run_local(schedule, store, summary, workers, threads, address, display, restarts: int = 3) -> None:
    """Run jobs on a pool of spawned processes, at most `workers` at a time in the schedule's order. If a worker
    dies (killed, out of memory), the pool breaks and every running future fails with BrokenProcessPool: the
    driver then starts a fresh pool and starts those jobs again, from their checkpoints (at most `restarts`
    times)."""
    context = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    updates = context.Queue() if display is not None else None
    for attempt in range(restarts + 1):
        broken = False
        with ProcessPoolExecutor(
            max_workers=min(workers, max(1, len(schedule.waiting))),
            mp_context=context,
            initializer=_init_worker,
            initargs=(os.getpid(), updates),
        ) as pool:
            running: dict = {}
            try:
                while True:
                    for job in [] if broken else schedule.take(workers - len(running)):
                        running[_submit(pool, job, threads)] = job
                    if not running:
                        break
                    done, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                    _drain(updates, display)
                    for future in done:
                        job = running.pop(future)
                        if isinstance(future.exception(), BrokenProcessPool) and attempt < restarts:
                            broken = True  # not this run's fault: started again in a fresh pool
                            schedule.retry(job)
                            continue
                        _record(store, summary, job, future.result, display)
                        schedule.done(job)
            except KeyboardInterrupt:
                # Stop now: leaving the `with` block would wait for every running job to finish. The workers
                # are stopped; their runs stay 'running' in the store, with checkpoints to resume from.
                _stop_workers(pool)
                raise
        if not broken or not schedule.waiting:
            break
    if updates is not None:
        updates.close()


def _submit(pool: ProcessPoolExecutor, job: _Job, threads: int) -> Future:
    """Start a job on the pool. A worker that died since the driver last looked breaks the pool, and then
    `submit` itself raises: the job gets a future failed as the running ones fail, so that it is started again
    in a fresh pool as they are (found by the kill test on a loaded machine: the sweep crashed instead)."""
    try:
        return pool.submit(_train_in_worker, job.config, job.checkpoint, threads, job.start_from)
    except BrokenProcessPool as error:
        failed: Future = Future()
        failed.set_exception(error)
        return failed


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes and drop its queued jobs, without waiting for them."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # no public API lists them
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(timeout=5)


def _train_in_worker(config_data: dict[str, Any], checkpoint: str, threads: int, start_from) -> dict[str, Any]:
    return train_job(config_data, checkpoint, threads, _UPDATES, start_from)


def _require_ray():
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable(
            "the ray executor needs Ray, which is not installed: pip install 'rnnlab[ray]' (or pip install ray)"
        ) from None
    return ray


def _auth_hint(address: str | None) -> str:
    """Ray ≥ 2.59 starts clusters with token authentication on, but its client sends the token only when
    RAY_AUTH_MODE=token is set where it runs; without it a ray:// connection just times out (measured with
    Ray 2.60: "ray client connection timeout" after 30 s)."""
    if not (address or "").startswith("ray://") or os.environ.get("RAY_AUTH_MODE") == "token":
        return ""
    return (
        " (if the cluster uses token authentication, on by default since Ray 2.59, set RAY_AUTH_MODE=token and "
        "the cluster's token in RAY_AUTH_TOKEN or ~/.ray/auth_token where rnnlab runs)"
    )


def _one_line(error: BaseException) -> str:
    """Ray's errors are often a heading and a server-side traceback ("Initialization failure from server:\n
    Traceback … RuntimeError: Proxy failed to connect …"): the heading and the traceback's last line say what
    went wrong, the lines between do not."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return lines[0] if len(lines) == 1 else f"{lines[0]} {lines[-1]}"


# Ray Client starts a server of its own for each connection, and with Ray 2.60 that server sometimes dies as it
# starts, with nothing in its log: the connection then fails after Ray's 30 s wait with "Starting Ray client
# server failed". Measured here: the first connection to a fresh cluster failed in 1 of 4 trials (and on CI), and
# the next attempt on the same cluster connected in 2 s every time.
CLIENT_SERVER_FAILED = "Starting Ray client server failed"
CLIENT_ATTEMPTS = 3


def _init_ray(ray, kwargs: dict, address: str | None, attempts: int = CLIENT_ATTEMPTS) -> None:
    """ray.init, tried again (up to `attempts` in all) when a ray:// connection fails because its own client
    server did not start; any other error is raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(log_to_driver=False, configure_logging=False, **kwargs)
            return
        except Exception as error:
            retry = (address or "").startswith("ray://") and CLIENT_SERVER_FAILED in str(error) and attempt < attempts
            if not retry:
                raise
            with contextlib.suppress(Exception):
                ray.shutdown()  # whatever the failed connection left behind
            print(f"rnnlab: Ray Client's server for this connection did not start; trying again ({attempt + 1}/"
                  f"{attempts})", file=sys.stderr, flush=True)  # fmt: skip


def _run_ray(schedule, store, summary, workers, threads, address, display) -> None:
    ray = _require_ray()
    started_here = not ray.is_initialized()
    if started_here:
        kwargs = {"address": address} if address else {"num_cpus": workers, "include_dashboard": False}
        try:
            _init_ray(ray, kwargs, address)
        except Exception as error:  # Ray raises many types (ConnectionError, RuntimeError, grpc errors, …)
            where = address or "a local Ray cluster"
            message = _one_line(error)
            raise ExecutorUnavailable(
                f"the ray executor could not start on {where}: {message}{_auth_hint(address)}"
            ) from None
    try:
        task = ray.remote(num_cpus=threads)(train_job)
        refs: dict = {}
        while True:
            for job in schedule.take(None):  # the cluster queues what it cannot run yet
                refs[task.remote(job.config, job.checkpoint, threads, None, job.start_from)] = job
                if display is not None:
                    display.started(job)
            if not refs:
                break
            done, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
            for ref in done:
                job = refs.pop(ref)
                _record(store, summary, job, lambda ref=ref: ray.get(ref), display)
                schedule.done(job)
    finally:
        if started_here:
            ray.shutdown()


def _drain(updates, display) -> None:
    if updates is None or display is None:
        return
    while True:
        try:
            display.update(*updates.get_nowait())
        except queue_module.Empty:
            return
        except (EOFError, OSError):
            return


class _Display:
    """One progress bar for the study and one line per worker (rich)."""

    def __init__(self, study: Study, summary: SweepSummary, jobs: list[_Job], workers: int):
        import sys

        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class RunTimeLeft(TimeRemainingColumn):
            """A worker's run's time left at its speed; none for the study's row, whose runs differ in cost."""

            def render(self, task):
                return Text("") if task.fields.get("study") else super().render(task)

        # In a log file rich would wrap every line at 80 columns; a line per run should stay one line.
        console = Console(width=None if sys.stdout.isatty() else 200)
        # Nor does it draw the live bars there: a study left running with its output in a log (nohup … > log &)
        # says how each worker's run is doing every few minutes instead, so the log shows it is alive.
        self.log_every = None if console.is_terminal else LOG_EVERY_SECONDS
        self.logged: dict[int, float] = {}  # worker row → when its last line was written
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            RunTimeLeft(),
            console=console,
        )
        total = self.total = len(study.runs)
        info = [f"{summary.skipped} already in the store"] if summary.skipped else []
        if summary.not_needed:
            info.append(f"{summary.not_needed} not needed (a shorter version was not solved)")
        if summary.elsewhere:
            info.append(f"{summary.elsewhere} trained by another sweep")
        self.study_task = self.progress.add_task(
            f"[bold]study {study.name}",
            total=total,
            completed=summary.skipped + summary.not_needed + summary.elsewhere,
            info=", ".join(info),
            study=True,
        )
        self.workers: dict[Any, int] = {}
        self.training: dict[int, str] = {}  # worker row → the run it trains
        self.by_name: dict[str, int] = {}
        self.progress.start()

    def _row(self, key, name: str, total: int) -> int:
        if key not in self.workers:
            self.workers[key] = self.progress.add_task(f"  worker {len(self.workers) + 1}", total=total, info="")
        task = self.workers[key]
        self.by_name[name] = task
        return task

    def started(self, job: _Job) -> None:
        self._row(job.name, job.name, job.steps)
        self.progress.update(self.by_name[job.name], info=f"{job.name}: queued")

    def update(self, pid, name: str, step: int, total: int, metric) -> None:
        task = self._row(pid, name, total)
        if self.training.get(task) != name:  # a new run on this row: its speed is measured from here
            self.progress.reset(task, total=total, completed=step)  # (a resumed run starts at its checkpoint)
            self.training[task] = name
            self.logged[task] = time.monotonic()
        shown = "" if metric is None else f" · test metric {metric:.4g}"
        self.progress.update(task, completed=step, total=total, info=f"{name}{shown}")
        if self.log_every is not None and time.monotonic() - self.logged[task] >= self.log_every:
            self.logged[task] = time.monotonic()
            left = self.progress.tasks[task].time_remaining
            at_speed = "" if left is None else f", {timedelta(seconds=round(left))} left at its speed"  # as the bars
            self.progress.console.print(f"  {name}: update {step}/{total}{shown}{at_speed}", highlight=False)

    def finished(self, job: _Job, status: str, detail: str = "") -> None:
        self.progress.advance(self.study_task)
        task = self.by_name.get(job.name)
        if task is not None:
            self.progress.update(task, info=f"{job.name}: {status}")
        # A line per finished run, also when the output is a log file (where the live bars are not drawn).
        done = int(self.progress.tasks[self.study_task].completed)
        self.progress.console.print(f"[{done}/{self.total}] {job.name}: {detail or status}", highlight=False)

    def stop(self) -> None:
        self.progress.stop()
