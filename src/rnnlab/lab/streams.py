"""Truncated BPTT(k1, k2) over a long stream (the text task), and scoring a model on a held-out stream."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.lab.tasks import StreamTask


class StreamWindows:
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

    def train_window(self, model: nn.Module, task: StreamTask) -> Tensor:
        """Forward and backward over the next window; returns the (detached) loss of its k1 new steps."""
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
def stream_scores(
    model: nn.Module, task: StreamTask, parallel: int = 10, window: int = 200
) -> tuple[float, float, dict[str, float]]:
    """Bits per symbol, loss and the task's extra scores over the whole test stream, read as `parallel`
    streams with carried state; the extra scores come from each symbol's loss (`StreamTask.extra_stream_scores`)."""
    stream = task.test_stream()
    columns = len(stream) // parallel
    data = stream[: columns * parallel].view(parallel, columns)
    losses = torch.full((len(stream),), math.nan, dtype=torch.float64)  # per symbol, NaN where none is predicted
    by_column = losses[: columns * parallel].view(parallel, columns)
    total, count, state = 0.0, 0, None
    for start in range(0, columns - 1, window):
        stop = min(start + window, columns - 1)
        prediction, state = model(data[:, start:stop], state)
        target = data[:, start + 1 : stop + 1]
        total += float(task.loss(prediction, target)) * target.numel()
        count += target.numel()
        by_column[:, start + 1 : stop + 1] = task.symbol_losses(prediction, target)
    # The symbol at column position c was predicted after reading the c symbols before it in its column.
    context = torch.zeros(len(stream), dtype=torch.int64)
    context[: columns * parallel] = torch.arange(columns).repeat(parallel)
    loss = total / count
    return loss / math.log(2), loss, task.extra_stream_scores(losses, context)
