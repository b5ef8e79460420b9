"""The copy-memory problem (Hochreiter & Schmidhuber 1997; the form of Arjovsky et al. 2016)."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnlab.lab.tasks.base import Metric, SequenceTask, check_length

BLANK, DELIMITER = 0, 9
CATEGORIES = 8  # symbols 1 … 8
COPIED = 10  # how many symbols to remember


class Copy(SequenceTask):
    """Remember 10 symbols over a long gap, then reproduce them.

    Input (length T + 20): 10 symbols drawn from 8 categories (ids 1–8), T − 1 blanks (id 0), the delimiter
    (id 9), then 10 blanks. Target: T + 10 blanks, then the 10 symbols. Loss: cross-entropy per step, averaged
    over all T + 20 steps. A memoryless model that predicts blanks where they are certain and a uniform guess
    over the 8 categories for the last 10 steps scores 10·log(8) / (T + 20) nats per step: `baseline_loss`.
    Metric: accuracy on the 10 copied symbols (chance 1/8); solved at ≥ 99 %.

    Worked example (T = 3, and 3 symbols instead of 10 for brevity)::

        input    5 2 7 0 0 9 0 0 0
        target   0 0 0 0 0 0 5 2 7
    """

    name = "copy"
    symbols = True
    readout = "every"
    input_size = 10  # vocabulary: blank, 8 symbols, delimiter
    output_size = 9  # blank and the 8 symbols
    metric = Metric("copy_accuracy", higher_is_better=True, solved_at=0.99)

    @classmethod
    def check(cls, seq_len: int = 100) -> None:
        check_length(cls.name, seq_len, 1)

    def __init__(self, seq_len: int = 100, seed: int = 0):
        super().__init__(seed)
        self.check(seq_len)
        self.gap = seq_len
        self.length = self.gap + 2 * COPIED
        self.baseline_loss = COPIED * math.log(CATEGORIES) / self.length  # cross-entropy (nats per step)
        self.chance = 1 / CATEGORIES  # copy accuracy of a uniform guess

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        symbols = torch.randint(1, CATEGORIES + 1, (batch_size, COPIED), generator=generator)
        inputs = torch.full((batch_size, self.length), BLANK, dtype=torch.int64)
        inputs[:, :COPIED] = symbols
        inputs[:, COPIED + self.gap - 1] = DELIMITER
        targets = torch.full((batch_size, self.length), BLANK, dtype=torch.int64)
        targets[:, -COPIED:] = symbols
        return inputs, targets  # (B, T + 20) each

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(prediction.reshape(-1, self.output_size), target.reshape(-1))

    def score(self, prediction: Tensor, target: Tensor) -> float:
        guessed = prediction[:, -COPIED:].argmax(-1)
        return (guessed == target[:, -COPIED:]).double().mean().item()
