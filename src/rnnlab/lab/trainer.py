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
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.lab.clip import clip_gradients
from rnnlab.lab.config import RunConfig
from rnnlab.lab.model import SequenceModel
from rnnlab.lab.tasks import StreamTask, Task, make_task
from rnnlab.recurrent import diagnostics
from rnnlab.recurrent import init as init_schemes

FLOW_BATCH = 32  # sequences in each gradient-flow snapshot
FLOW_STREAM_LENGTH = 200  # window of the test stream used for a stream task's snapshot
EVAL_CHUNK = 250  # test sequences per forward during evaluation (bounds memory)


# ------------------------------------------------------------------------------------------------ results


@dataclass
class FlowSnapshot:
    """Gradient flow of the recurrent layers at one evaluation (default loss: see diagnostics)."""

    step: int
    horizon: int
    decay_rate: float
    r2: float
    profile: list[float]  # ‖∂L/∂h‖ of the top layer by lag (lag 0 first)


@dataclass
class Evaluation:
    """Test-set scores after `step` updates, with the training statistics since the previous evaluation."""

    step: int
    metric: float  # the task's metric on the test set
    loss: float  # the task's loss on the test set
    train_loss: float  # mean training loss over the window
    grad_norm: float  # mean pre-clip global gradient norm over the window
    clip_rate: float  # fraction of updates in the window where clipping acted
    flow: FlowSnapshot | None = None
    train_time: float = 0.0  # seconds spent in updates so far (evaluations excluded), summed over resumes


@dataclass
class TrainResult:
    """What a run produced. status: 'solved' (criterion met), 'completed' (step budget used), or
    'diverged' (non-finite loss or gradient at `diverged_at`; everything measured before is kept)."""

    status: str
    steps: int  # updates performed
    metric_name: str
    final_metric: float | None
    final_loss: float | None
    solved_at: int | None = None
    diverged_at: int | None = None
    clip_rate: float = 0.0  # over the whole run
    wall_time: float = 0.0  # seconds spent training, summed over resumes
    train_time: float = 0.0  # of which in updates (forward, backward, optimizer step), evaluations excluded
    evaluations: list[Evaluation] = field(default_factory=list)
    train_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) every log interval

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Callback:
    """Hooks into a run; override what you need. The trainer calls them in this order per update."""

    def on_step(self, trainer: Trainer, step: int, loss: float, grad_norm: float, clipped: bool) -> None:
        """After update `step` (1-based)."""

    def on_evaluation(self, trainer: Trainer, evaluation: Evaluation) -> None:
        """After each evaluation."""

    def on_checkpoint(self, trainer: Trainer, path: Path) -> None:
        """After a checkpoint was written (atomically) to `path`."""


# ------------------------------------------------------------------------------------------------ building


def build_task(config: RunConfig) -> Task:
    return make_task(config.task, seq_len=config.seq_len, seed=config.seed, **config.task_options)


def build_model(config: RunConfig, task: Task) -> SequenceModel:
    """The model for a config: seeded construction, then the config's init schemes on the recurrent layers."""
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
    )
    init_schemes.apply(model.rnn, config.init, seed=config.seed, **config.resolved_init_options())
    return model


def _optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.resolved_momentum)
    if config.optimizer == "rmsprop":
        alpha = 0.99 if config.alpha is None else config.alpha  # torch.optim's default
        return torch.optim.RMSprop(params, lr=config.lr, alpha=alpha, momentum=config.resolved_momentum)
    return torch.optim.Adam(params, lr=config.lr)


def _scheduler(config: RunConfig, optimizer: torch.optim.Optimizer):
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.steps)
    if config.lr_schedule == "step":
        milestones = [config.steps // 2, (3 * config.steps) // 4]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return None


# ------------------------------------------------------------------------------------------------ checkpoints


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write atomically: a temporary file in the same folder, fsync, then rename over the old checkpoint.
    A crash (or a full disk) at any moment leaves either the old checkpoint or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used (corrupt, truncated, or from another run)."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with `weights_only=True`: tensors and plain data only, never arbitrary pickled objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated or corrupt files
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable ({type(error).__name__})") from None


# ------------------------------------------------------------------------------------------------ trainer


class Trainer:
    """Train `model` on `task` as `config` says.

    **Arguments**: `checkpoint_path` enables checkpoints every `config.checkpoint_interval` updates and
    resuming from an existing file; `callbacks` see updates and evaluations; `progress` shows a rich bar.
    """

    def __init__(
        self,
        config: RunConfig,
        task: Task | None = None,
        model: nn.Module | None = None,
        checkpoint_path: str | Path | None = None,
        callbacks: list[Callback] | tuple[Callback, ...] = (),
        progress: bool = False,
    ):
        self.config = config
        self.task = task or build_task(config)
        self.model = model or build_model(config, self.task)
        self.optimizer = _optimizer(config, self.model)
        self.scheduler = _scheduler(config, self.optimizer)
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.callbacks = list(callbacks)
        self.progress = progress
        self.generator = torch.Generator().manual_seed(config.seed + 1)  # data order
        self.step = 0
        self.result = TrainResult("running", 0, self.task.metric.name, None, None)
        self._window: dict[str, float] = {"loss": 0.0, "norm": 0.0, "clipped": 0.0, "count": 0.0}
        self._clipped_total = 0
        self._stream: _StreamState | None = None
        if isinstance(self.task, StreamTask):
            self._stream = _StreamState(self.task.train_stream(), config.batch_size, *config.bptt)
        self.log_every = max(1, config.eval_every // 10)

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
        self._window = dict(state["window"])
        self._clipped_total = state["clipped_total"]
        self.result = _result_from_dict(state["result"])
        if self._stream is not None:
            self._stream.load_state_dict(state["stream"])

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
        if self.result.status != "running":
            return self.result  # the checkpoint is of a finished run
        started = time.perf_counter()
        wall_before = self.result.wall_time
        if self.step == 0 and not self.result.evaluations:
            self._evaluate()  # the untrained network: test metric and gradient flow at step 0
        with _progress_bar(self.progress, self.config, self.step) as bar:
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
                    bar.update(self.step, evaluation, self.task.metric.name)
                    if self.config.stop_when_solved and self.is_solved(evaluation):
                        self._finish("solved", solved_at=self.step)
                        done = True
                elif self.step % 10 == 0:
                    bar.update(self.step, None, self.task.metric.name, loss)
                self.result.wall_time = wall_before + time.perf_counter() - started
                if done:
                    break
                if self.step % self.config.checkpoint_interval == 0 and self.step < self.config.steps:
                    self._checkpoint()
            else:
                self._finish("completed")
        self.result.wall_time = wall_before + time.perf_counter() - started
        self._checkpoint()  # the finished state, so that a resume returns the same result
        return self.result

    def _update(self) -> tuple[float, float, bool]:
        """One optimizer update; returns (loss, pre-clip gradient norm, clipped)."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        if self._stream is not None:
            loss = self._stream.backward(self.model, self.task)
        else:
            x, y = self.task.sample(self.config.batch_size, self.generator)
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

    def _track(self, loss: float, grad_norm: float, clipped: bool) -> None:
        w = self._window
        w["loss"] += loss
        w["norm"] += grad_norm
        w["clipped"] += float(clipped)
        w["count"] += 1
        self._clipped_total += int(clipped)
        if self.step % self.log_every == 0:
            self.result.train_losses.append((self.step, loss))

    def is_solved(self, evaluation: Evaluation) -> bool:
        """Whether `evaluation` meets the config's success criterion (see RunConfig.success)."""
        if self.config.success == "baseline":
            return solved_below_baseline(evaluation.loss, self.task.baseline_loss, self.config.baseline_margin)
        return self.task.metric.is_solved(evaluation.metric)

    def _finish(self, status: str, solved_at: int | None = None, diverged_at: int | None = None) -> None:
        self.result.status = status
        self.result.steps = self.step
        self.result.solved_at = solved_at
        self.result.diverged_at = diverged_at
        self.result.clip_rate = self._clipped_total / max(1, self.step - (1 if diverged_at else 0))

    # ------------------------------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def _test_scores(self) -> tuple[float, float]:
        self.model.eval()
        if isinstance(self.task, StreamTask):
            return _stream_scores(self.model, self.task)
        x, y = self.task.test_set()
        predictions = [self.model(x[i : i + EVAL_CHUNK])[0] for i in range(0, len(x), EVAL_CHUNK)]
        prediction = torch.cat(predictions)
        return self.task.score(prediction, y), float(self.task.loss(prediction, y))

    def _flow(self) -> FlowSnapshot:
        model = self.model
        if isinstance(self.task, StreamTask):
            stream = self.task.test_stream()
            length = FLOW_STREAM_LENGTH
            starts = torch.arange(FLOW_BATCH) * (len(stream) - length) // FLOW_BATCH
            x = torch.stack([stream[s : s + length] for s in starts])  # (B, T)
        else:
            x = self.task.test_set()[0][:FLOW_BATCH]
        if getattr(model, "symbols", False):
            x = nn.functional.one_hot(x, model.vocabulary).to(model.readout.weight.dtype)
        flow = diagnostics.gradient_flow(model.rnn, x, seed=self.config.seed)
        fit = flow.decay_rate()
        return FlowSnapshot(
            step=self.step,
            horizon=flow.horizon(),
            decay_rate=fit.rate,
            r2=fit.r2,
            profile=[float(v) for v in flow.profile()],
        )

    def _evaluate(self) -> Evaluation:
        metric, loss = self._test_scores()
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
        )
        self._window = {"loss": 0.0, "norm": 0.0, "clipped": 0.0, "count": 0.0}
        self.result.evaluations.append(evaluation)
        self.result.final_metric, self.result.final_loss = metric, loss
        for cb in self.callbacks:
            cb.on_evaluation(self, evaluation)
        return evaluation


def solved_below_baseline(loss: float, baseline_loss: float, margin: float) -> bool:
    """The "beats the memoryless baseline" criterion: test loss < (1 − margin) · baseline loss."""
    return math.isfinite(loss) and loss < (1.0 - margin) * baseline_loss


def environment() -> dict[str, Any]:
    """Where a run ran, for the store: versions, platform and threads."""
    import platform

    import rnnlab

    return {
        "rnnlab": rnnlab.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def train(config: RunConfig, **kwargs) -> TrainResult:
    """Build the task and model for `config` and train; keyword arguments go to `Trainer`."""
    return Trainer(config, **kwargs).run()


def _result_from_dict(data: dict[str, Any]) -> TrainResult:
    evaluations = []
    for e in data["evaluations"]:
        flow = FlowSnapshot(**e["flow"]) if e.get("flow") else None
        evaluations.append(Evaluation(**{**e, "flow": flow}))
    train_losses = [(int(s), float(v)) for s, v in data["train_losses"]]
    return TrainResult(**{**data, "evaluations": evaluations, "train_losses": train_losses})


# ------------------------------------------------------------------------------------------------ streams


class _StreamState:
    """Truncated BPTT(k1, k2) over `batch` parallel streams (Williams & Peng 1990).

    The stream is cut into `batch` equal columns read in parallel. Every update consumes k1 new steps:
    it re-runs the last k2 steps (k2 ≥ k1) from the state carried at their start, with the current weights,
    and back-propagates the loss of the last k1 of them. The carried state is detached — if it were not, the
    backward would try to reach the start of the stream. BPTT(k, k) is the usual recipe: consecutive
    windows of k steps, each started from the detached final state of the previous one (`repackage_hidden`
    in pytorch/examples).
    """

    def __init__(self, stream: Tensor, batch: int, k1: int, k2: int):
        columns = len(stream) // batch
        if columns < k2 + 1:
            raise ValueError(f"the stream is too short for batch {batch} and bptt_k2 {k2}")
        self.data = stream[: columns * batch].view(batch, columns)  # (B, N)
        self.k1, self.k2 = k1, k2
        self.end = 0  # position up to which the stream has been consumed
        self.states: dict[int, Any] = {0: None}  # carried (detached) states by position; None = zeros

    def state_dict(self) -> dict[str, Any]:
        return {"end": self.end, "states": {str(k): _state_tensors(v) for k, v in self.states.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.end = state["end"]
        self.states = {int(k): _state_from_tensors(v) for k, v in state["states"].items()}

    def backward(self, model: nn.Module, task: StreamTask) -> Tensor:
        columns = self.data.shape[1]
        if self.end + self.k1 >= columns:  # wrap around: a new epoch over the stream from zero state
            self.end, self.states = 0, {0: None}
        end = self.end + self.k1
        start = max(0, end - self.k2)
        next_start = max(0, end + self.k1 - self.k2)
        x = self.data[:, start:end]
        y = self.data[:, start + 1 : end + 1]
        state = self.states[start]
        if start < next_start < end:
            # Two forward calls so the state at the next window's start can be kept; the graph spans both.
            split = next_start - start
            first, mid = model(x[:, :split], state)
            second, final = model(x[:, split:], mid)
            prediction = torch.cat([first, second], dim=1)
            carried = mid
        else:
            prediction, final = model(x, state)
            carried = final if next_start == end else None
        fresh = end - self.end  # predictions made on the k1 new steps
        loss = task.loss(prediction[:, -fresh:], y[:, -fresh:])
        if torch.isfinite(loss):
            loss.backward()
        self.states = {next_start: _detach(carried) if next_start > 0 else None}
        self.end = end
        return loss.detach()


def _detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _state_tensors(state) -> list[Tensor]:
    if state is None:
        return []
    return list(state) if isinstance(state, tuple) else [state]


def _state_from_tensors(tensors: list[Tensor]):
    if not tensors:
        return None
    return tuple(tensors) if len(tensors) == 2 else tensors[0]


@torch.no_grad()
def _stream_scores(model: nn.Module, task: StreamTask, parallel: int = 10, window: int = 200) -> tuple[float, float]:
    """Bits per symbol and loss over the whole test stream, read as `parallel` streams with carried state."""
    stream = task.test_stream()
    columns = len(stream) // parallel
    data = stream[: columns * parallel].view(parallel, columns)
    total, count, state = 0.0, 0, None
    for start in range(0, columns - 1, window):
        stop = min(start + window, columns - 1)
        prediction, state = model(data[:, start:stop], state)
        target = data[:, start + 1 : stop + 1]
        total += float(task.loss(prediction, target)) * target.numel()
        count += target.numel()
    loss = total / count
    return loss / math.log(2), loss


# ------------------------------------------------------------------------------------------------ progress


class _NoBar:
    def update(self, *args, **kwargs) -> None:
        pass


class _RichBar:
    """A rich progress bar showing loss, the test metric and the clip rate."""

    def __init__(self, config: RunConfig, done: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        )
        self.task_id = self.progress.add_task(config.label(), total=config.steps, completed=done, info="")
        self.last_eval = ""

    def update(self, step: int, evaluation: Evaluation | None, metric_name: str, loss: float | None = None):
        if evaluation is not None:
            self.last_eval = f"test {metric_name} {evaluation.metric:.4g} · clip {evaluation.clip_rate:.0%}"
            loss = evaluation.train_loss
        info = f"loss {loss:.4g} · {self.last_eval}" if loss is not None else self.last_eval
        self.progress.update(self.task_id, completed=step, info=info)


class _progress_bar:  # used as a context manager, like contextlib helpers
    def __init__(self, enabled: bool, config: RunConfig, done: int):
        self.bar = _RichBar(config, done) if enabled else _NoBar()

    def __enter__(self):
        if isinstance(self.bar, _RichBar):
            self.bar.progress.start()
        return self.bar

    def __exit__(self, *exc):
        if isinstance(self.bar, _RichBar):
            self.bar.progress.stop()
        return False


__all__ = [
    "Callback",
    "CheckpointError",
    "Evaluation",
    "FlowSnapshot",
    "TrainResult",
    "Trainer",
    "build_model",
    "build_task",
    "environment",
    "load_checkpoint",
    "save_checkpoint",
    "train",
]
