"""The temporal order problem (Hochreiter & Schmidhuber 1997, experiments 6a and 6b)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnlab.lab.tasks.base import Metric, SequenceTask, check_length

# Vocabulary: four noise symbols a–d, start marker E, end marker B, relevant symbols X and Y.
NOISE = (0, 1, 2, 3)
START, END, X, Y = 4, 5, 6, 7
VOCABULARY = ("a", "b", "c", "d", "E", "B", "X", "Y")


class TemporalOrder(SequenceTask):
    """Classify the order of relevant symbols hidden among noise.

    A sequence of length T starts with E and ends with B; every other step is a noise symbol (a–d) except
    two (or, with `symbols=3`, three) positions holding X or Y. Class = which of X/Y appear in which order:
    XX, XY, YX, YY (4 classes), or the 8 orders of three. The relevant positions are drawn from windows
    at fixed fractions of T, as in the paper for T ≈ 100: t₁ ∈ [0.1T, 0.2T], t₂ ∈ [0.5T, 0.6T] (two
    symbols); t₁ ∈ [0.1T, 0.2T], t₂ ∈ [0.33T, 0.43T], t₃ ∈ [0.66T, 0.76T] (three). Loss: cross-entropy of the
    class read after the last step. Metric: accuracy; chance 1/4 (1/8); solved at ≥ 99 % on the test set.

    Worked example (T = 12, two symbols)::

        E c a X b d Y a c b d B   → class XY (index 1)
    """

    name = "temporal_order"
    symbols = True
    readout = "last"
    input_size = len(VOCABULARY)
    metric = Metric("accuracy", higher_is_better=True, solved_at=0.99)

    @classmethod
    def check(cls, seq_len: int = 100, symbols: int = 2) -> None:
        if symbols not in (2, 3):
            raise ValueError(f"task 'temporal_order': symbols must be 2 or 3, got {symbols!r}")
        check_length(cls.name, seq_len, 20)

    def __init__(self, seq_len: int = 100, symbols: int = 2, seed: int = 0):
        super().__init__(seed)
        self.check(seq_len, symbols)
        self.length = seq_len
        self.relevant = symbols
        self.output_size = 2**symbols
        self.chance = 1 / self.output_size
        self.baseline_loss = math.log(self.output_size)
        fractions = ((0.1, 0.2), (0.5, 0.6)) if symbols == 2 else ((0.1, 0.2), (0.33, 0.43), (0.66, 0.76))
        self.windows = [(round(a * self.length), round(b * self.length)) for a, b in fractions]

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        steps = self.length
        inputs = torch.tensor(NOISE)[torch.randint(0, len(NOISE), (batch_size, steps), generator=generator)]
        inputs[:, 0], inputs[:, -1] = START, END
        which = torch.randint(0, 2, (batch_size, self.relevant), generator=generator)  # 0 → X, 1 → Y
        rows = torch.arange(batch_size)
        for k, (low, high) in enumerate(self.windows):
            position = torch.randint(low, high + 1, (batch_size,), generator=generator)
            inputs[rows, position] = X + which[:, k]
        # Class index: the X/Y choices read as a binary number, first symbol most significant.
        weights = 2 ** torch.arange(self.relevant - 1, -1, -1)
        return inputs, (which * weights).sum(1)  # (B, T) int64, (B,) int64

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(prediction, target)

    def score(self, prediction: Tensor, target: Tensor) -> float:
        return (prediction.argmax(-1) == target).double().mean().item()
