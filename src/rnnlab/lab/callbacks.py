"""What a training run tells the code around it: the `Callback` hooks the trainer calls (the progress bar,
a sweep's worker reports, a user's own hooks). Its own module, so that a callback need not import the trainer."""

from __future__ import annotations

from pathlib import Path

from rnnlab.lab.results import Evaluation


class Callback:
    """Hooks into a run; override what you need. Per run: on_train_begin, then per update on_step (and
    on_evaluation, on_checkpoint when they happen), then on_train_end — also when the run stops early.
    `trainer` is the `rnnlab.lab.trainer.Trainer` that runs (not imported here: the trainer imports this)."""

    def on_train_begin(self, trainer) -> None:
        """Before the first update of this call to `run` (after a resume, at the resumed step)."""

    def on_train_end(self, trainer) -> None:
        """After the last update (solved, budget used, diverged, or an exception)."""

    def on_step(self, trainer, step: int, loss: float, grad_norm: float, clipped: bool) -> None:
        """After update `step` (1-based)."""

    def on_evaluation(self, trainer, evaluation: Evaluation) -> None:
        """After each evaluation."""

    def on_checkpoint(self, trainer, path: Path) -> None:
        """After a checkpoint was written (atomically) to `path`."""
