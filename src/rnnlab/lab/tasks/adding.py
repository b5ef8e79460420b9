"""The adding problem (Hochreiter & Schmidhuber 1997; the form of Le et al. 2015 and Arjovsky et al. 2016)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rnnlab.lab.tasks.base import Metric, SequenceTask, check_length


class Adding(SequenceTask):
    """Add the two marked numbers of a long sequence.

    Each step has two channels: a value drawn from U[0, 1] and a marker. Exactly one marker is 1 in the first
    half of the sequence and one in the second half; the target is the sum of the two marked values, read
    after the last step. Loss and metric: mean squared error. Predicting 1 (the mean of the sum) gives
    MSE = Var(U₁ + U₂) = 2/12 ≈ 0.167: that is the baseline (`chance` and `baseline_loss`). Solved at test MSE < 0.01.

    Worked example (T = 6)::

        values   0.31  0.84  0.12  0.55  0.97  0.20
        markers  0     1     0     0     0     1        → target 0.84 + 0.20 = 1.04

    The marked values can be up to T − 1 steps before the answer, so the gradient that teaches the model to
    keep the first one must survive up to T − 1 steps.
    """

    name = "adding"
    symbols = False
    readout = "last"
    input_size = 2
    output_size = 1
    metric = Metric("mse", higher_is_better=False, solved_at=0.01)
    chance = baseline_loss = 1 / 6

    @classmethod
    def check(cls, seq_len: int = 100) -> None:
        check_length(cls.name, seq_len, 2)

    def __init__(self, seq_len: int = 100, seed: int = 0):
        super().__init__(seed)
        self.check(seq_len)
        self.length = seq_len

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        steps, half = self.length, self.length // 2
        values = torch.rand(batch_size, steps, generator=generator)  # (B, T)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, steps, (batch_size,), generator=generator)
        markers = torch.zeros(batch_size, steps)
        rows = torch.arange(batch_size)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        target = (values[rows, first] + values[rows, second]).unsqueeze(1)  # (B, 1)
        return torch.stack([values, markers], dim=2), target  # (B, T, 2), (B, 1)

    def loss(self, prediction: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(prediction, target)

    def score(self, prediction: Tensor, target: Tensor) -> float:
        return F.mse_loss(prediction, target).item()
