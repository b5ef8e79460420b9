"""rnnlab inside `lightning.Trainer`: the gradient monitor as a callback, and truncated BPTT as a module mixin.

    trainer = lightning.Trainer(callbacks=[GradientMonitor(every=50)], logger=TensorBoardLogger("runs"))

`GradientMonitor` runs `rnnlab.monitor` on the LightningModule during `fit`: every `every`-th training batch
records ‖∂L/∂h_t‖ of the real loss in every recurrent layer and logs each layer's gradient horizon and decay
rate to the trainer's loggers (TensorBoard also gets the profile over training as an image).

`TruncatedBPTT` brings back what Lightning 2.0 removed (`truncated_bptt_steps`): each batch is cut along time
into chunks of k steps, one optimizer update per chunk, the hidden state carried from chunk to chunk but
detached, so that memory holds one chunk's graph and the gradient reaches at most k steps back.
Needs `pip install 'rnnlab[lightning]'`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from rnnlab.integrations import require, scalar_tags

require("lightning", "lightning", "rnnlab.integrations.lightning")  # one line instead of a traceback
import lightning.pytorch as pl  # noqa: E402
from lightning.pytorch.loggers import TensorBoardLogger  # noqa: E402

from rnnlab.recurrent.monitor import Monitor  # noqa: E402
from rnnlab.recurrent.validation import positive_int  # noqa: E402


class GradientMonitor(pl.Callback):
    """Records the gradient's reach of the module being fit, every `every` training batches.

    **Arguments**: `every`, `threshold`, `warn` as `rnnlab.monitor`; `image_every` how many recorded steps
    between two profile images on a TensorBoard logger (None: no images). The module's torch.nn recurrent
    layers are converted in place when `fit` starts (before `configure_optimizers`, so the optimizer gets the
    converted parameters); they must exist by then (built in `__init__`). Rows are labelled with the trainer's
    `global_step` at the start of their batch, the step the loggers use. `monitor` holds the latest fit's history.
    """

    def __init__(self, every: int = 50, threshold: float = 1e-3, warn: bool = True, image_every: int | None = 1):
        self.every, self.threshold, self.warn, self.image_every = every, threshold, warn, image_every
        self.monitor: Monitor | None = None
        self._logged = 0  # rows of the history already sent to the loggers
        self._boards: list[Any] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        # hooks=False: a training_step may call any submodule, several times (truncated BPTT); one batch is one
        # step, marked by the batch hooks below.
        self.monitor = Monitor(pl_module, self.every, self.threshold, self.warn, hooks=False)
        self._logged = 0
        from rnnlab.integrations.tensorboard import TensorBoardWriter

        self._boards = [
            TensorBoardWriter(self.monitor, writer=logger.experiment, image_every=self.image_every)
            for logger in trainer.loggers
            if isinstance(logger, TensorBoardLogger)
        ]

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module, batch, batch_idx: int) -> None:
        self.monitor.begin_step(step=trainer.global_step)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self.monitor.end_step()  # the batch's backward has run: its rows are ready
        self._send(trainer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.monitor is None:
            return
        self.monitor.end_step()
        self._send(trainer)
        for board in self._boards:
            board.close()  # the last pictures; the logger's own writer stays open (Lightning closes it)
        self._boards = []

    def _send(self, trainer: pl.Trainer) -> None:
        for board in self._boards:
            board.write()
        rows = self.monitor.history[self._logged :]
        self._logged += len(rows)
        others = [logger for logger in trainer.loggers if not isinstance(logger, TensorBoardLogger)]
        by_step: dict[int, dict[str, float]] = {}
        for row in rows:
            tags = scalar_tags(*row.key)
            by_step.setdefault(row.step, {}).update({tags["horizon"]: row.horizon, tags["decay_rate"]: row.decay_rate})
        for step, metrics in by_step.items():
            for logger in others:
                logger.log_metrics(metrics, step=step)


# ------------------------------------------------------------------------------------------------ truncated BPTT


def detach_state(state: Any) -> Any:
    """The hidden state (a tensor, or a tuple/list of them such as an LSTM's (h, c)) cut from its graph."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple | list):
        return type(state)(detach_state(s) for s in state)
    return state


def split_along_time(batch: Any, steps: int) -> Iterator[Any]:
    """Chunks of `batch` of at most `steps` time steps: every tensor with ≥ 2 dimensions is cut along dim 1
    (batch-first (B, T, …)); other tensors and values go whole into every chunk. Tuples, lists and dicts are
    kept as they are. Every cut tensor must have the same length T."""
    lengths = {t.shape[1] for t in _tensors(batch) if t.dim() >= 2}
    if len(lengths) != 1:
        shapes = [tuple(t.shape) for t in _tensors(batch)]
        raise ValueError(
            f"truncated BPTT cuts every tensor of ≥ 2 dimensions along dim 1 (time, batch-first), but this batch "
            f"has shapes {shapes}; override tbptt_split_batch for another layout"
        )
    (length,) = lengths
    for start in range(0, length, steps):
        yield _cut(batch, start, start + steps)


def _tensors(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        return [batch]
    if isinstance(batch, dict):
        return [t for v in batch.values() for t in _tensors(v)]
    if isinstance(batch, tuple | list):
        return [t for v in batch for t in _tensors(v)]
    return []


def _cut(batch: Any, start: int, stop: int) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch[:, start:stop] if batch.dim() >= 2 else batch
    if isinstance(batch, dict):
        return {k: _cut(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(_cut(v, start, stop) for v in batch)
    return batch


class TruncatedBPTT:
    """LightningModule mixin: truncated BPTT(k1, k2) over each batch — Lightning 1.x's `truncated_bptt_steps`
    (k1 = k2 = k) and, with `tbptt_backprop_steps`, gradients that reach further back than one chunk.

        class CharModel(TruncatedBPTT, lightning.LightningModule):
            truncated_bptt_steps = 50                      # k1: steps per chunk, one update per chunk
            tbptt_backprop_steps = 150                     # k2 (optional, a multiple of k1; default k1)
            def tbptt_step(self, chunk, hiddens):          # chunk: the batch cut to ≤ 50 steps
                x, y = chunk                               # x (B, ≤50, I), y (B, ≤50)
                out, hiddens = self.lstm(x, hiddens)       # hiddens: None for a batch's first chunk
                return self.loss(self.head(out), y), hiddens

    Per chunk: forward from the state the previous chunk ended in, backward, clip (`tbptt_clip_norm`, the
    global gradient norm; Lightning's `gradient_clip_val` is refused under manual optimisation), one step of
    the single optimizer from `configure_optimizers`. With k2 = m·k1 the update for chunk i re-runs chunks
    i−m+1 … i with the current weights from the (detached) state chunk i−m+1 started in, and backpropagates
    the loss of chunk i alone through all m of them: the loss at a step reaches k2 − k1 … k2 − 1 steps back
    (Williams & Peng's BPTT(h, h′)); each update costs m chunk forwards. The state starts as None for every
    batch. The mixin uses manual optimisation; step a learning-rate scheduler yourself (e.g. in
    `on_train_batch_end`). `training_step` returns the mean loss over the chunks; log what you need in
    `tbptt_step`.
    """

    truncated_bptt_steps: int = 0  # k1: time steps per chunk; set it in the class or in __init__
    tbptt_backprop_steps: int | None = None  # k2: steps the gradient may travel back, a multiple of k1 (None: k1)
    tbptt_clip_norm: float | None = None  # clip the global gradient norm to this before each step

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.automatic_optimization = False  # one update per chunk, not one per batch

    def tbptt_step(self, chunk: Any, hiddens: Any) -> tuple[torch.Tensor, Any]:
        """Forward one chunk from `hiddens`; return (loss, the new hidden state)."""
        raise NotImplementedError(f"{type(self).__name__} must implement tbptt_step(chunk, hiddens)")

    def tbptt_split_batch(self, batch: Any, steps: int) -> Iterator[Any]:
        """Cut a batch into chunks of ≤ `steps` time steps (default: `split_along_time`)."""
        return split_along_time(batch, steps)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        k1, k2 = self.truncated_bptt_steps, self.tbptt_backprop_steps
        name = type(self).__name__
        positive_int(k1, f"{name}.truncated_bptt_steps")
        k2 = k1 if k2 is None else k2
        if isinstance(k2, bool) or not isinstance(k2, int) or k2 < k1 or k2 % k1:
            raise ValueError(
                f"{name}.tbptt_backprop_steps must be a multiple of truncated_bptt_steps={k1} (or None), got {k2!r}"
            )
        optimizer = self.optimizers()
        if isinstance(optimizer, list):
            raise ValueError(f"TruncatedBPTT steps one optimizer; configure_optimizers returned {len(optimizer)}")
        window = k2 // k1  # chunks each backward runs through
        chunks = list(self.tbptt_split_batch(batch, k1)) if window > 1 else self.tbptt_split_batch(batch, k1)
        starts: list[Any] = [None]  # the detached state each chunk started in
        losses = []
        for i, chunk in enumerate(chunks):
            first = max(0, i - window + 1)
            hiddens = starts[first]
            for earlier in range(first, i):  # re-run with today's weights: the gradient flows back through them
                _, hiddens = self.tbptt_step(chunks[earlier], hiddens)
            loss, hiddens = self.tbptt_step(chunk, hiddens)
            optimizer.zero_grad()
            self.manual_backward(loss)
            if self.tbptt_clip_norm is not None:
                self.clip_gradients(optimizer, gradient_clip_val=self.tbptt_clip_norm, gradient_clip_algorithm="norm")
            optimizer.step()
            # The next chunk starts from this state's value, but its gradient must stop here: otherwise its
            # backward would run on into this chunk's graph, already freed, and memory would grow with T.
            starts.append(detach_state(hiddens))
            losses.append(loss.detach())
        return torch.stack(losses).mean()
