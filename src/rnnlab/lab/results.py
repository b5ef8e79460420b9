"""What a training run produces: evaluations with their gradient-flow snapshots, and the run's result.

Plain dataclasses, so a result can go into a checkpoint (as a dict), into the store, or into a user's table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class FlowSnapshot:
    """Gradient flow of the top recurrent layer at one evaluation, on the same test sequences, twice.

    `horizon`, `decay_rate`, `r2`, `profile`: from a probe loss, a fixed random unit projection of the last
    output (see `diagnostics.gradient_flow`): ‖∂L/∂h‖ is 1 at lag 0, so the profile describes the network
    alone and compares across tasks and runs. `loss_*`: the same four from the task's own loss, the gradient
    that actually trains the model (its reach also depends on where the task puts its loss); None in results
    from before rnnlab recorded it.
    """

    step: int
    horizon: int
    decay_rate: float
    r2: float
    profile: list[float]  # ‖∂L/∂h‖ of the top layer by lag (lag 0 first), probe loss
    loss_horizon: int | None = None
    loss_decay_rate: float | None = None
    loss_r2: float | None = None
    loss_profile: list[float] | None = None  # the same from the task's loss


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
    # The largest pre-clip norm in the window: a mean hides the single exploding update that clipping exists
    # for (Pascanu et al. 2013), so exploding and vanishing gradients are told apart by this. None before 0.3.
    grad_norm_max: float | None = None
    extras: dict[str, float] = field(default_factory=dict)  # task-specific scores, e.g. bpc per distance band
    omega: float | None = None  # mean Pascanu Ω over the window (regularizer omega), else None


@dataclass
class TrainResult:
    """What a run produced. status: 'solved' (criterion met, and the run stopped there), 'completed' (step
    budget used), or 'diverged' (non-finite loss or gradient at `diverged_at`; everything measured before is
    kept). `solved_at`: the first evaluation that met the criterion, also in a run told to go on past it
    (`stop_when_solved: false`), which then ends 'completed' (see `store.met_criterion`)."""

    status: str
    steps: int  # updates performed
    metric_name: str
    final_metric: float | None
    final_loss: float | None
    solved_at: int | None = None  # the first evaluation that met the criterion
    diverged_at: int | None = None
    clip_rate: float = 0.0  # over the whole run
    wall_time: float = 0.0  # seconds spent training, summed over resumes
    train_time: float = 0.0  # of which in updates (forward, backward, optimizer step), evaluations excluded
    evaluations: list[Evaluation] = field(default_factory=list)
    train_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) every log interval
    # The task's facts, stored with the run so that reports never rebuild a task (see lab/task_facts.py):
    chance: float | None = None  # the task's metric for a memoryless predictor
    baseline_loss: float | None = None  # the task's loss for that predictor
    higher_is_better: bool | None = None  # the metric's direction
    solved_threshold: float | None = None  # the metric's success threshold (None: no criterion)
    stream_task: bool | None = None  # truncated BPTT over a stream (reports compare equal budgets)
    # One entry per sitting that trained this run (a run resumed from its checkpoint, perhaps days later on
    # another machine, has several): {"machine", "from_step", "to_step", "seconds", "started_at"}.
    parts: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def result_from_dict(data: dict[str, Any]) -> TrainResult:
    evaluations = []
    for e in data["evaluations"]:
        flow = FlowSnapshot(**e["flow"]) if e.get("flow") else None
        evaluations.append(Evaluation(**{**e, "flow": flow}))
    train_losses = [(int(s), float(v)) for s, v in data["train_losses"]]
    return TrainResult(**{**data, "evaluations": evaluations, "train_losses": train_losses})
