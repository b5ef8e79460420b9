"""The trainer: optimiser steps, clipping, truncated BPTT over streams, evaluation, checkpoints.

The trainer knows tasks only through `rnnlab.lab.tasks.Task` and models only as `nn.Module`s with the
`SequenceModel` call signature; everything it measures comes back as a `TrainResult` (with the full history),
and callbacks see each update and each evaluation as it happens. It never touches the results store.

Runs are deterministic on CPU for a given config: weights, data order and dropout all come from the seed,
and a checkpoint holds every piece of state (RNG states included), so a run killed at any moment and resumed
from its last checkpoint ends bit-identical to one that was never interrupted.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnlab.lab.callbacks import Callback
from rnnlab.lab.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from rnnlab.lab.clip import clip_gradients
from rnnlab.lab.config import RunConfig
from rnnlab.lab.environment import machine
from rnnlab.lab.model import SequenceModel
from rnnlab.lab.optimizers import get_optimizer
from rnnlab.lab.progress import ProgressBar
from rnnlab.lab.results import Evaluation, FlowSnapshot, TrainResult, result_from_dict
from rnnlab.lab.streams import StreamWindows, stream_scores
from rnnlab.lab.task_facts import task_facts
from rnnlab.lab.tasks import StreamTask, Task, make_task
from rnnlab.recurrent import diagnostics
from rnnlab.recurrent import init as init_schemes
from rnnlab.recurrent.omega import omega
from rnnlab.recurrent.orthogonal_modules import ExpRNN
from rnnlab.recurrent.recording import record_gradients

FLOW_BATCH = 32  # sequences in each gradient-flow snapshot
FLOW_STREAM_LENGTH = 200  # window of the test stream used for a stream task's snapshot
EVAL_CHUNK = 250  # test sequences per forward during evaluation (bounds memory)


# ------------------------------------------------------------------------------------------------ building


def build_task(config: RunConfig) -> Task:
    return make_task(config.task, seq_len=config.seq_len, seed=config.seed, **config.task_options)


def build_model(config: RunConfig, task: Task) -> SequenceModel:
    """The model for a config: seeded construction (the readout's N(0, σ²) or Glorot-uniform draw included when
    the config sets `readout_std` or `readout_init`), then the config's init schemes on the recurrent layers."""
    torch.manual_seed(config.seed)
    model = SequenceModel(
        cell=config.cell,
        input_size=task.input_size,
        hidden_size=config.hidden_size,
        output_size=task.output_size,
        readout=task.readout,
        symbols=task.symbols,
        num_layers=config.num_layers,
        dropout=config.dropout,
        truncate=config.truncate,
        readout_std=config.readout_std,
        cell_options=config.cell_options,
        learn_initial_state=config.initial_state == "learned",
        readout_init=config.readout_init,
    )
    init_schemes.apply(model.rnn, config.resolved_init, seed=config.seed, **config.resolved_init_options())
    return model


def _optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.orthogonal_lr is not None:  # ExpRNN's A in a group of its own, as the authors train it
        params = ExpRNN.parameter_groups(model, config.lr, config.orthogonal_lr)
    return get_optimizer(config.optimizer).build(params, config.lr, config.momentum, config.alpha)


def _scheduler(config: RunConfig, optimizer: torch.optim.Optimizer):
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    if config.lr_schedule == "step":
        milestones = [config.steps // 2, (3 * config.steps) // 4]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return None


# ------------------------------------------------------------------------------------------------ trainer


def budget_refusal(config: RunConfig, shorter_steps: int) -> str | None:
    """Why a run of `config` cannot continue a run of the same config with `shorter_steps` updates exactly
    (`Trainer.continue_from`), or None if it can: the budget must grow, the learning rate must not follow the
    budget, and the shorter run's last evaluation must be one this run makes too."""
    if not 0 < shorter_steps < config.steps:
        return f"its {shorter_steps} updates are not fewer than this run's {config.steps}"
    if config.lr_schedule != "constant":
        return f"lr_schedule {config.lr_schedule!r} depends on the budget"
    if shorter_steps % config.eval_every:
        return f"its last evaluation (update {shorter_steps}) is not on this run's schedule (every {config.eval_every})"
    return None


class Trainer:
    """Train `model` on `task` as `config` says.

    **Arguments**: `checkpoint_path` enables checkpoints every `config.checkpoint_interval` updates and
    resuming from an existing file; `callbacks` see updates and evaluations; `progress` adds a
    `rnnlab.lab.progress.ProgressBar` to them; `start_from` the final checkpoint of a completed run of this
    config with a smaller budget, to continue from when there is no checkpoint of this run yet (see
    `continue_from`).
    """

    def __init__(
        self,
        config: RunConfig,
        task: Task | None = None,
        model: nn.Module | None = None,
        checkpoint_path: str | Path | None = None,
        callbacks: list[Callback] | tuple[Callback, ...] = (),
        progress: bool = False,
        start_from: str | Path | None = None,
    ):
        self.config = config
        self.start_from = Path(start_from) if start_from is not None else None
        self.task = task or build_task(config)
        self.model = model or build_model(config, self.task)
        if config.regularizer == "omega" and not isinstance(self.model, SequenceModel):
            raise TypeError(
                f"regularizer 'omega' needs a SequenceModel (it reads the recurrent states), got {type(self.model).__name__}"
            )
        self.optimizer = _optimizer(config, self.model)
        self.scheduler = _scheduler(config, self.optimizer)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.callbacks = list(callbacks)
        if progress:
            self.callbacks.append(ProgressBar())
        self.generator = torch.Generator().manual_seed(config.seed + 1)  # data order
        self.step = 0
        self.result = TrainResult("running", 0, self.task.metric.name, None, None, **task_facts(self.task))
        self._window = _empty_window()
        self._clipped_total = 0
        self._omega = 0.0  # Pascanu's Ω of the last update (regularizer omega)
        self._stream: StreamWindows | None = None
        if isinstance(self.task, StreamTask):
            self._stream = StreamWindows(self.task.train_stream(), config.batch_size, *config.bptt)
        self.log_every = max(1, config.eval_every // 10)
        self._part: dict[str, Any] = {}  # this sitting: machine, first step, start time (see _close_part)

    # ------------------------------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically."""
        return {
            "config_hash": self.config.hash(),
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "data_rng": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "window": dict(self._window),
            "clipped_total": self._clipped_total,
            "result": self.result.to_dict(),
            "stream": self._stream.state_dict() if self._stream else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("config_hash") != self.config.hash():
            raise CheckpointError("checkpoint belongs to a different config (its config hash differs)")
        self.step = state["step"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        self._window = {**_empty_window(), **state["window"]}  # checkpoints before 0.3 have no "max_norm"
        self._clipped_total = state["clipped_total"]
        self.result = result_from_dict({**task_facts(self.task), **state["result"]})  # older: without facts
        if self._stream is not None:
            self._stream.load_state_dict(state["stream"])

    def continue_from(self, state: dict[str, Any], where: str = "the checkpoint") -> None:
        """Start from the final state of a completed run of this config with a smaller budget (`state`, its
        checkpoint): this run then goes on exactly as if it had had its own budget from the start — same data,
        same updates, the same evaluations — and its result holds both parts. A budget extended, not a run
        repeated. `CheckpointError` when that would not hold: another config, a run that solved its task or
        diverged (a longer budget changes nothing), a learning-rate schedule that depends on the budget, or a
        last evaluation that this run's schedule would not make."""
        shorter = self.config.model_copy(update={"steps": state.get("step")})
        status = state.get("result", {}).get("status")
        if state.get("config_hash") != shorter.hash():
            why = "it is of a different config (more than the budget differs)"
        elif status != "completed":
            why = f"that run {'ended ' + status if status else 'has no result'}, and only a completed run can go on"
        else:
            why = budget_refusal(self.config, shorter.steps)
        if why is not None:
            raise CheckpointError(f"cannot continue from {where}: {why}")
        self.load_state_dict({**state, "config_hash": self.config.hash()})
        self.result.status = "running"

    def _checkpoint(self) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint(self.state_dict(), self.checkpoint_path)
        for cb in self.callbacks:
            cb.on_checkpoint(self, self.checkpoint_path)

    # ------------------------------------------------------------------------------------------ loop

    def run(self) -> TrainResult:
        """Train until the step budget is used, the task is solved, or the run diverges."""
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_state_dict(load_checkpoint(self.checkpoint_path))
        elif self.start_from is not None:
            self.continue_from(load_checkpoint(self.start_from), str(self.start_from))
        if self.result.status != "running":
            return self.result  # the checkpoint is of a finished run
        started = time.perf_counter()
        wall_before = self.result.wall_time
        if self.step > 0 and not self.result.parts:  # a checkpoint from before parts were recorded
            self.result.parts.append(
                {"machine": "not recorded", "from_step": 0, "to_step": self.step, "seconds": wall_before}
                | {"started_at": None}
            )
        self._part = {"machine": machine(), "from_step": self.step, "started_at": time.time()}
        if self.step == 0 and not self.result.evaluations:
            self._evaluate()  # the untrained network: test metric and gradient flow at step 0
        for cb in self.callbacks:
            cb.on_train_begin(self)
        try:
            self._loop(started, wall_before)
        finally:
            for cb in self.callbacks:
                cb.on_train_end(self)
        self.result.wall_time = wall_before + time.perf_counter() - started
        self._close_part(time.perf_counter() - started)
        self._checkpoint()  # the finished state, so that a resume returns the same result
        return self.result

    def _loop(self, started: float, wall_before: float) -> None:
        """Updates until the budget is used, the run is solved, or it diverges."""
        while self.step < self.config.steps:
            update_started = time.perf_counter()
            loss, grad_norm, clipped = self._update()
            self.result.train_time += time.perf_counter() - update_started
            self.step += 1
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):
                self._finish("diverged", diverged_at=self.step)
                break
            self._track(loss, grad_norm, clipped)
            for cb in self.callbacks:
                cb.on_step(self, self.step, loss, grad_norm, clipped)
            done = False
            if self.step % self.config.eval_every == 0 or self.step == self.config.steps:
                evaluation = self._evaluate()
                if self.result.solved_at is None and self.is_solved(evaluation):
                    self.result.solved_at = self.step  # the first time; a run told to go on keeps it
                    if self.config.stop_when_solved:
                        self._finish("solved")
                        done = True
            self.result.wall_time = wall_before + time.perf_counter() - started
            if done:
                break
            if self.step % self.config.checkpoint_interval == 0 and self.step < self.config.steps:
                self._close_part(time.perf_counter() - started)
                self._checkpoint()
        else:
            self._finish("completed")

    def _update(self) -> tuple[float, float, bool]:
        """One optimizer update; returns (loss, pre-clip gradient norm, clipped)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self._stream is not None:
            loss = self._stream.train_window(self.model, self.task)
        else:
            x, y = self.task.sample(self.config.batch_size, self.generator)
            if self.config.regularizer == "omega":
                loss = self._backward_with_omega(x, y)
            else:
                prediction, _ = self.model(x)
                loss = self.task.loss(prediction, y)
                if torch.isfinite(loss):
                    loss.backward()
        value = float(loss.detach())
        if not math.isfinite(value):
            return value, math.nan, False
        stats = clip_gradients(self.model.parameters(), self.config.clip, self.config.clip_threshold)
        if not math.isfinite(stats.pre_norm):
            return value, stats.pre_norm, stats.clipped
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return value, stats.pre_norm, stats.clipped

    def _backward_with_omega(self, x, y):
        """The loss's backward, recorded, then Ω's (weighted) backward into the same .grad: RNN.py's SGD-CR adds
        α·∂Ω/∂W_hh to the loss gradient before the clipping, which then sees (and bounds) the sum."""
        model: SequenceModel = self.model
        with record_gradients(model.rnn, keep_vectors=True) as recorder:
            output, _ = model.rnn(model.encode(x), model.initial_state(x.shape[0]))  # (B, T, H)
            loss = self.task.loss(model.read(output), y)
            if not torch.isfinite(loss):
                return loss
            loss.backward()  # records ∂L/∂h_t and h_t of every layer: what Ω's Jacobians need
        regularizer = omega(model.rnn, recorder.last, squared=self.config.omega_form == "squared")
        if self.config.omega_weight > 0:  # weight 0 only measures Ω: its backward would add zeros, or NaN
            (self.config.omega_weight * regularizer).backward()
        self._omega = float(regularizer.detach())
        return loss

    def _track(self, loss: float, grad_norm: float, clipped: bool) -> None:
        w = self._window
        w["omega"] += self._omega
        w["loss"] += loss
        w["norm"] += grad_norm
        w["max_norm"] = max(w["max_norm"], grad_norm)
        w["clipped"] += float(clipped)
        w["count"] += 1
        self._clipped_total += int(clipped)
        if self.step % self.log_every == 0:
            self.result.train_losses.append((self.step, loss))

    def _close_part(self, seconds: float) -> None:
        """Record this sitting's updates so far in `result.parts` (replacing its own earlier entry), so that a
        checkpoint — and the finished run — says which machine ran which updates."""
        entry = {**self._part, "to_step": self.step, "seconds": round(seconds, 3)}
        parts = self.result.parts
        if parts and parts[-1]["started_at"] == entry["started_at"]:
            parts[-1] = entry
        else:
            parts.append(entry)

    def is_solved(self, evaluation: Evaluation) -> bool:
        """Whether `evaluation` meets the config's success criterion (see RunConfig.success)."""
        if self.config.success == "baseline":
            return solved_below_baseline(evaluation.loss, self.task.baseline_loss, self.config.baseline_margin)
        return self.task.metric.is_solved(evaluation.metric)

    def _finish(self, status: str, diverged_at: int | None = None) -> None:
        self.result.status = status
        self.result.steps = self.step
        self.result.diverged_at = diverged_at
        self.result.clip_rate = self._clipped_total / max(1, self.step - (1 if diverged_at else 0))

    # ------------------------------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def _test_scores(self) -> tuple[float, float, dict[str, float]]:
        """(metric, loss, the task's extra scores) on the test set."""
        self.model.eval()
        if isinstance(self.task, StreamTask):
            return stream_scores(self.model, self.task)
        x, y = self.task.test_set()
        predictions = [self.model(x[i : i + EVAL_CHUNK])[0] for i in range(0, len(x), EVAL_CHUNK)]
        prediction = torch.cat(predictions)
        score, loss = self.task.score(prediction, y), float(self.task.loss(prediction, y))
        return score, loss, self.task.extra_scores(prediction, y)

    def _flow(self) -> FlowSnapshot:
        """The gradient flow on FLOW_BATCH test sequences, from the probe loss and from the task's loss."""
        model = self.model
        if isinstance(self.task, StreamTask):
            stream = self.task.test_stream()
            length = FLOW_STREAM_LENGTH
            starts = torch.arange(FLOW_BATCH) * (len(stream) - length) // FLOW_BATCH  # s + length < len(stream)
            x = torch.stack([stream[s : s + length] for s in starts])  # (B, T)
            y = torch.stack([stream[s + 1 : s + length + 1] for s in starts])  # (B, T): the next symbols
        else:
            x, y = (part[:FLOW_BATCH] for part in self.task.test_set())
        inputs = model.encode(x)
        start = model.initial_state(x.shape[0])  # None: zeros
        probe = diagnostics.gradient_flow(model.rnn, inputs, seed=self.config.seed, hx=start)
        # The readout is the live model's, but gradient_flow differentiates with respect to the initial state
        # only, so no .grad is written and training is unaffected.
        real = diagnostics.gradient_flow(
            model.rnn, inputs, loss_fn=lambda out: self.task.loss(model.read(out), y), hx=start
        )
        fit, real_fit = probe.decay_rate(), real.decay_rate()
        return FlowSnapshot(
            step=self.step,
            horizon=probe.horizon,
            decay_rate=fit.rate,
            r2=fit.r2,
            profile=[float(v) for v in probe.profile()],
            loss_horizon=real.horizon,
            loss_decay_rate=real_fit.rate,
            loss_r2=real_fit.r2,
            loss_profile=[float(v) for v in real.profile()],
        )

    def _evaluate(self) -> Evaluation:
        metric, loss, extras = self._test_scores()
        w = self._window
        count = w["count"] or math.nan  # no updates yet (step 0): the window statistics are undefined
        evaluation = Evaluation(
            step=self.step,
            metric=metric,
            loss=loss,
            train_loss=w["loss"] / count,
            grad_norm=w["norm"] / count,
            clip_rate=w["clipped"] / count,
            flow=self._flow(),
            train_time=self.result.train_time,
            grad_norm_max=w["max_norm"] if w["count"] else math.nan,
            extras=extras,
            omega=w["omega"] / count if self.config.regularizer == "omega" else None,
        )
        self._window = _empty_window()
        self.result.evaluations.append(evaluation)
        self.result.final_metric, self.result.final_loss = metric, loss
        for cb in self.callbacks:
            cb.on_evaluation(self, evaluation)
        return evaluation


def _empty_window() -> dict[str, float]:
    """Training statistics accumulated between two evaluations."""
    return {"loss": 0.0, "norm": 0.0, "max_norm": 0.0, "clipped": 0.0, "count": 0.0, "omega": 0.0}


def solved_below_baseline(loss: float, baseline_loss: float, margin: float) -> bool:
    """The "beats the memoryless baseline" criterion: test loss < (1 − margin) · baseline loss."""
    return math.isfinite(loss) and loss < (1.0 - margin) * baseline_loss


def train(config: RunConfig, **kwargs) -> TrainResult:
    """Build the task and model for `config` and train; keyword arguments go to `Trainer`."""
    return Trainer(config, **kwargs).run()


__all__ = [
    "Callback",
    "CheckpointError",
    "Evaluation",
    "FlowSnapshot",
    "TrainResult",
    "Trainer",
    "build_model",
    "build_task",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
