"""What every task provides: data from a seed, a fixed test set, a loss, a metric, a baseline, a criterion.

Two shapes of task:

- `SequenceTask`: independent sequences (adding, copy, temporal order, digits). `sample(batch, generator)`
  draws a fresh training batch; `test_set()` is fixed by the task's seed.
- `StreamTask`: one long stream of symbols (text) for truncated BPTT over a carried state; the trainer cuts
  it into batch-many parallel streams and windows.

Inputs are batch-first: real-valued (B, T, I) float32, or symbols (B, T) int64 that the model embeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.nn import functional as F


@dataclass(frozen=True)
class Metric:
    """How a task is scored: `name`, whether higher is better, and the value that counts as solved."""

    name: str
    higher_is_better: bool
    solved_at: float | None  # None: no success criterion (language modelling)

    def is_solved(self, value: float) -> bool:
        if self.solved_at is None or not math.isfinite(value):
            return False
        return value >= self.solved_at if self.higher_is_better else value < self.solved_at


class Task:
    """Common interface. Subclasses set the class attributes and implement the data and scoring methods."""

    name: ClassVar[str]
    symbols: ClassVar[bool]  # inputs are int64 symbols (embedded by the model) rather than real features
    readout: ClassVar[str]  # "last": one prediction per sequence; "every": one per step
    input_size: int  # features per step, or vocabulary size for symbol inputs
    output_size: int  # regression outputs or number of classes
    metric: Metric
    chance: float  # the metric of a memoryless predictor, stated in each docstring
    baseline_loss: float  # the loss of that predictor

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def score(self, prediction: Tensor, target: Tensor) -> float:
        """The task metric on a batch (the test set)."""
        raise NotImplementedError

    def extra_scores(self, prediction: Tensor, target: Tensor) -> dict[str, float]:
        """Scores besides the metric, stored with each evaluation under their names (none by default)."""
        return {}


class SequenceTask(Task):
    """Independent sequences of length `length` (which may exceed the `seq_len` parameter, e.g. copy)."""

    test_size: int = 1000
    length: int

    def __init__(self, seed: int = 0):
        self.seed = seed
        self._test: tuple[Tensor, Tensor] | None = None

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """A fresh training batch (inputs, targets) drawn from `generator`."""
        raise NotImplementedError

    def test_set(self) -> tuple[Tensor, Tensor]:
        """The held-out test set: fixed by the task's seed, drawn from a generator of its own, so it never
        overlaps the training stream's random state."""
        if self._test is None:
            generator = torch.Generator().manual_seed(10_000_019 + self.seed)
            self._test = self.sample(self.test_size, generator)
        return self._test


class StreamTask(Task):
    """A long stream of symbol ids; next-symbol prediction, scored in bits per symbol."""

    symbols = True
    readout = "every"
    metric = Metric("bpc", higher_is_better=False, solved_at=None)
    # Extra scores named `bpc_<band>` are bits per symbol on one band of the held-out stream (the symbols whose
    # prediction needs one kind of dependency); the report draws every metric so named against characters seen
    # (report/budgets.py), reading the bands from the stored names alone.
    band_metric_prefix: ClassVar[str] = "bpc_"

    def train_stream(self) -> Tensor:
        """(N,) int64: the training stream."""
        raise NotImplementedError

    def test_stream(self) -> Tensor:
        """(M,) int64: the held-out stream."""
        raise NotImplementedError

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        # prediction (B, T, V) logits, target (B, T) next symbols
        return F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), target.reshape(-1))

    def score(self, prediction: Tensor, target: Tensor) -> float:
        return self.loss(prediction, target).item() / math.log(2)  # nats → bits per symbol

    def symbol_losses(self, prediction: Tensor, target: Tensor) -> Tensor:
        """(B, T) the loss of each prediction, in nats; `loss` is their mean."""
        return F.cross_entropy(prediction.transpose(1, 2), target, reduction="none")

    def extra_stream_scores(self, losses: Tensor, context: Tensor) -> dict[str, float]:
        """Scores besides the metric, from each held-out symbol's loss; stored with each evaluation under their
        names (none by default). `losses`: (M,) float64 nats for each symbol of `test_stream()`, NaN where the
        evaluation made no prediction; `context`: (M,) int64, how many symbols before each one the model had
        read when it predicted it (its carried state starts at zero)."""
        return {}


def check_length(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"task {name!r}: seq_len must be an integer ≥ {minimum}, got {value!r}")
    return value
