"""What every task provides: data from a seed, a fixed test set, a loss, a metric, a baseline, a criterion.

Two shapes of task:

- `SequenceTask`: independent sequences (adding, copy, temporal order, digits, mnist, arithmetic, xml).
  `sample(batch, generator)` draws a fresh training batch; `test_set()` is fixed by the task's seed. Two kinds
  share their scoring: `SplitDataTask` classifies a fixed data set split once (digits, mnist);
  `NextSymbolTask` predicts a symbol at every step (arithmetic, xml), where a target of `IGNORED` marks a step
  that is neither trained nor scored.
- `StreamTask`: one long stream of symbols (text) for truncated BPTT over a carried state; the trainer cuts
  it into batch-many parallel streams and windows.

Inputs are batch-first: real-valued (B, T, I) float32, or symbols (B, T) int64 that the model embeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from rnnlab.lab.store.records import MetricName

IGNORED = -100  # the target of a step that carries no loss and no score (torch's cross_entropy ignore_index)


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

    @classmethod
    def check(cls, seq_len: int | None = None, **options) -> None:
        """Raise ValueError, in one line, if the task would refuse these arguments — without building it (no
        data is generated or loaded), so that a config is refused when it is written, not when it runs. Each
        task checks here everything its constructor checks; the constructor calls it."""
        raise NotImplementedError

    @classmethod
    def fixed_length(cls, **options) -> int | None:
        """The one sequence length the task has with these options (the digit images: 8 rows or 64 pixels), or
        None where seq_len is free."""
        return None

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


class SplitDataTask(SequenceTask):
    """Classify the sequences of a fixed data set (the digit images), split once into `_train` and `_test`
    (each (features (N, T, I), labels (N,))) by the subclass: training batches are drawn from `_train` with
    replacement; one class is read after the last step, scored by accuracy."""

    symbols = False
    readout = "last"
    metric = Metric("accuracy", higher_is_better=True, solved_at=0.9)
    # Ten classes, as both data sets (the digits) have; a data set with another count overrides these.
    output_size = 10
    chance = 0.1  # accuracy of a uniform guess
    baseline_loss = math.log(10)  # its cross-entropy
    _train: tuple[Tensor, Tensor]

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        images, labels = self._train
        pick = torch.randint(0, len(labels), (batch_size,), generator=generator)
        return images[pick], labels[pick]

    def test_set(self) -> tuple[Tensor, Tensor]:
        return self._test

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(prediction, target)

    def score(self, prediction: Tensor, target: Tensor) -> float:
        return (prediction.argmax(-1) == target).double().mean().item()


class NextSymbolTask(SequenceTask):
    """Symbol sequences with a symbol to predict at every step: inputs (B, T) int64, targets (B, T) int64 class
    ids, or `IGNORED` where nothing is predicted (e.g. the question of an arithmetic problem: only its answer
    is scored). Loss: cross-entropy averaged over the scored steps; metric: accuracy over the same steps."""

    symbols = True
    readout = "every"

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        # prediction (B, T, C) logits, target (B, T)
        return F.cross_entropy(prediction.reshape(-1, prediction.shape[-1]), target.reshape(-1), ignore_index=IGNORED)

    def score(self, prediction: Tensor, target: Tensor) -> float:
        scored = target != IGNORED
        return (prediction.argmax(-1)[scored] == target[scored]).double().mean().item()


def memoryless_levels(
    reference: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], classes: int
) -> tuple[float, float]:
    """(loss in nats, accuracy) on `test` of the best predictor that sees only the current input symbol.

    A network without recurrence can at best learn p(target | input symbol); this counts it on `reference`
    (inputs, targets) drawn apart from the test set, with add-one smoothing so that no scored target gets
    probability 0, and scores it on the scored steps of `test` — the analogue of the text task's unigram.
    """
    x_ref, y_ref = (t.reshape(-1) for t in reference)
    x_test, y_test = (t.reshape(-1) for t in test)
    vocabulary = int(max(x_ref.max(), x_test.max())) + 1
    keep = y_ref != IGNORED
    pairs = x_ref[keep] * classes + y_ref[keep]
    counts = torch.bincount(pairs, minlength=vocabulary * classes).view(vocabulary, classes).double() + 1.0
    log_probs = (counts / counts.sum(1, keepdim=True)).log()  # (V, C)
    scored = y_test != IGNORED
    x, y = x_test[scored], y_test[scored]
    loss = -log_probs[x, y].mean().item()
    accuracy = (log_probs[x].argmax(1) == y).double().mean().item()
    return loss, accuracy


def encode(text: str, codes: dict[str, int]) -> Tensor:
    """(len(text),) int64: the code of each character of an ASCII `text` (one lookup, not a Python loop)."""
    table = np.zeros(128, dtype=np.int64)
    for character, code in codes.items():
        table[ord(character)] = code
    return torch.from_numpy(table[np.frombuffer(text.encode("ascii"), dtype=np.uint8)])


class StreamTask(Task):
    """A long stream of symbol ids; next-symbol prediction, scored in bits per symbol."""

    symbols = True
    readout = "every"
    metric = Metric("bpc", higher_is_better=False, solved_at=None)
    # Extra scores named `bpc_<band>` are bits per symbol on one band of the held-out stream (the symbols whose
    # prediction needs one kind of dependency); the report draws every metric so named against characters seen
    # (report/budgets.py), reading the bands from the stored names alone: the prefix is the store's word.
    band_metric_prefix: ClassVar[str] = MetricName.BAND_PREFIX

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
