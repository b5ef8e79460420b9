"""A rich progress bar for one training run, as a trainer callback (shows loss, test metric, clip rate)."""

from __future__ import annotations

from rnnlab.lab.callbacks import Callback
from rnnlab.lab.config import RunConfig
from rnnlab.lab.results import Evaluation


class ProgressBar(Callback):
    """Draws a bar while the trainer runs: `Trainer(config, callbacks=[ProgressBar()])`."""

    def __init__(self):
        self.progress = None
        self.task_id = None
        self.last_eval = ""

    def on_train_begin(self, trainer) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        config: RunConfig = trainer.config
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        )
        self.task_id = self.progress.add_task(config.label(), total=config.steps, completed=trainer.step, info="")
        self.progress.start()

    def on_step(self, trainer, step: int, loss: float, grad_norm: float, clipped: bool) -> None:
        if step % 10 == 0:
            self.progress.update(self.task_id, completed=step, info=f"loss {loss:.4g} · {self.last_eval}")

    def on_evaluation(self, trainer, evaluation: Evaluation) -> None:
        if self.progress is None:  # the evaluation of the untrained network, before the bar starts
            return
        self.last_eval = f"test {trainer.task.metric.name} {evaluation.metric:.4g} · clip {evaluation.clip_rate:.0%}"
        self.progress.update(
            self.task_id, completed=evaluation.step, info=f"loss {evaluation.train_loss:.4g} · {self.last_eval}"
        )

    def on_train_end(self, trainer) -> None:
        if self.progress is not None:
            self.progress.stop()
