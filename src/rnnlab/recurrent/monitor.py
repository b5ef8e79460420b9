"""Watch the gradient's reach in your own training loop: `rnnlab.monitor(model, every=N)`.

    monitor = rnnlab.monitor(model, every=50)      # converts model's nn.RNN/LSTM/GRU in place
    for x, y in data:                               # your loop, your loss: nothing else changes
        loss = loss_fn(model(x), y)
        loss.backward(); optimizer.step(); optimizer.zero_grad()
    monitor.table()                                 # one row per recorded step, layer: horizon, decay, …
    monitor.plot()                                  # a matplotlib Figure (shows inline in Jupyter)

Every `every`-th training forward of the model is recorded: its backward hands ‖∂L/∂h_t‖ of every step and
layer to the monitor, computed by the BPTT engine from the user's real loss (no probe loss, no extra pass).
The other forwards run with recording off, exactly as without a monitor. From each recorded profile the
monitor derives the gradient horizon (the largest lag at which ‖∂L/∂h_t‖ is still ≥ `threshold` × its value
at the last step) and the per-step decay rate, and warns once per layer, in words, when the horizon is far
shorter than the sequences the layer sees.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from rnnlab.recurrent.convert import convert, recurrent_modules
from rnnlab.recurrent.diagnostics import fit_decay, horizon
from rnnlab.recurrent.figures import (
    colour_scale,
    draw_heatmap,
    draw_profile,
    heatmap_colourbar,
    heatmap_rows,
    label_profile_axes,
    new_figure,
)
from rnnlab.recurrent.recorder import GradientRecorder
from rnnlab.recurrent.validation import positive_int

FAR_SHORTER = 0.25  # warn when a layer's horizon is below this fraction of its sequence length


class HorizonWarning(UserWarning):
    """A recurrent layer learns from much less of the past than its sequences hold."""


@dataclass
class MonitorRow:
    """One recorded backward of one layer."""

    step: int  # the training step it belongs to: the count of training forwards (0-based), or begin_step's label
    module: str  # the recurrent module's name inside the model
    layer: int
    seq_len: int
    horizon: int  # steps back the gradient still reaches (≥ threshold × its value at the last step)
    decay_rate: float  # per-step factor of the fitted geometric decay
    profile: list[float] = field(repr=False)  # ‖∂L/∂h‖ (batch mean) by lag, lag 0 = this direction's last step
    direction: str = "forward"  # or "reverse": the reverse direction of a bidirectional layer (its last step is t=0)

    @property
    def key(self) -> tuple[str, int, str]:
        """Which layer (and direction) the row belongs to."""
        return self.module, self.layer, self.direction

    def as_dict(self) -> dict[str, Any]:
        keys = ("step", "module", "layer", "direction", "seq_len", "horizon", "decay_rate")
        return {k: getattr(self, k) for k in keys}


_GATES_FROM_INPUT = (
    "an IndRNN with the authors' initialisation or an LSTM with chrono initialisation (a {}'s gates start half "
    "open, so its gradient about halves each step until training closes them)"
)
_ADVICE = {
    "LSTM": "chrono initialisation (rnnlab.init.apply(lstm, 'chrono', t_max=T)) or a forget-gate bias of 1 "
    "(rnnlab.init.apply(lstm, 'forget_bias'))",
    "GRU": "orthogonal recurrent weights (rnnlab.init.apply(gru, 'orthogonal')) or an LSTM with chrono initialisation",
    "RNN": "a gated cell (LSTM with chrono initialisation, or GRU), identity initialisation with ReLU (IRNN: "
    "rnnlab.init.apply(rnn, 'identity')) or orthogonal recurrent weights",
    None: "an LSTM with chrono initialisation (rnnlab.init.apply(lstm, 'chrono', t_max=T)) or orthogonal recurrent "
    "weights",
    # The element-wise cells, by cell name (no torch.nn class): orthogonal weights do not apply to them.
    "indrnn": "the authors' initialisation u ~ U(0, 1) (rnnlab.init.apply(indrnn, 'indrnn_uniform'))",
    "mingru": _GATES_FROM_INPUT.format("minGRU"),
    "minlstm": _GATES_FROM_INPUT.format("minLSTM"),
    "minlstm_unnormalized": _GATES_FROM_INPUT.format("minLSTM"),
    # W_hh = exp(A) is orthogonal: the gradient shrinks only where modReLU switches units off (|z| + b ≤ 0).
    "exprnn": "the authors' initialisation (rnnlab.init.apply(exprnn, 'exprnn_henaff')), whose modReLU biases "
    "start near 0 so few units are switched off, or an LSTM with chrono initialisation",
    # coRNN's reach is set by its step size and damping, which the paper tunes per task.
    "cornn": "coRNN's dt, gamma and epsilon tuned to the task (a smaller damping epsilon or a larger step dt "
    "carries the gradient further: rnnlab.CoRNN(…, dt=…, gamma=…, epsilon=…))",
    "lru": "eigenvalues nearer the unit circle: the paper's long-range ring r_min = 0.9, r_max = 0.999 "
    "(rnnlab.LRU(..., r_min=0.9, r_max=0.999, max_phase=math.pi / 10))",
}
_ADVICE["lstm_peephole_out"] = _ADVICE["LSTM"] + ", as for any LSTM"  # the uRNN paper's LSTM: an LSTM's gates


class Monitor:
    """Records the gradient's reach every `every` training forwards of `model`; see the module docstring.

    **Arguments**: `model` any nn.Module holding torch.nn or rnnlab RNN/LSTM/GRU layers (torch.nn ones are
    converted in place, with identical numbers); `every` record one training forward in this many;
    `threshold` the horizon's relative threshold; `warn` warn once per layer when its horizon is below a
    quarter of its sequence length; `hooks` count each training forward of `model` as a step (False: the
    caller marks steps with `begin_step` / `end_step`, e.g. once per batch of several forwards).
    """

    def __init__(
        self, model: nn.Module, every: int = 10, threshold: float = 1e-3, warn: bool = True, hooks: bool = True
    ):
        positive_int(every, "every", "monitor")
        if not 0 < threshold <= 1:
            raise ValueError(f"monitor: threshold must be in (0, 1], got {threshold!r}")
        self.model = convert(model)
        self.modules = recurrent_modules(self.model)
        if not self.modules:
            raise TypeError(f"monitor: {type(model).__name__} holds no RNN, LSTM or GRU layer to watch")
        self.every, self.threshold, self.warn = every, threshold, warn
        self.forwards = 0  # training steps seen (forwards of the model, or begin_step calls)
        self.rows: list[MonitorRow] = []
        # One recorder per recorded forward, until its backward has reported for every module: a recorded
        # forward without a backward (or one whose backward comes late) never mixes with another step.
        self._pending: dict[int, GradientRecorder] = {}
        self._warned: set[tuple[str, int]] = set()
        self._hooks = []
        if hooks:
            self._hooks = [
                self.model.register_forward_pre_hook(self._before_forward),
                self.model.register_forward_hook(self._after_forward),
            ]

    # ------------------------------------------------------------------------------------------ steps

    def begin_step(self, step: int | None = None) -> None:
        """Start a training step: if it is one in `every`, the forwards until `end_step` are recorded, and their
        backward reports to the monitor (with several forwards in one step, e.g. truncated BPTT chunks, the
        first backward to arrive). The forward hooks call this for each training forward; with `hooks=False` a
        framework calls it itself (the Lightning callback, once per batch). `step` labels the rows (default:
        the count of training steps so far)."""
        self._consume()
        if not (self.model.training and torch.is_grad_enabled()):
            return
        if self.forwards % self.every == 0:
            label = self.forwards if step is None else step
            recorder = self._pending[label] = GradientRecorder()
            for name, m in self.modules:
                m.attach_recording((recorder, name))
        self.forwards += 1

    def end_step(self) -> None:
        """End a training step's forwards: later forwards are not recorded until the next `begin_step`."""
        # The engine took the recorder when the forward ran; the backward of this forward will use it.
        for _, m in self.modules:
            m.attach_recording(None)

    def _before_forward(self, module, args) -> None:
        self.begin_step()

    def _after_forward(self, module, args, output) -> None:
        self.end_step()

    def close(self) -> None:
        """Stop watching (the model stays converted)."""
        for hook in self._hooks:
            hook.remove()
        for _, m in self.modules:
            m.attach_recording(None)

    # ------------------------------------------------------------------------------------------ results

    def _consume(self) -> None:
        """Turn the records of finished backwards into rows (and warnings), oldest step first."""
        for step in sorted(self._pending):
            records = self._pending[step].records
            if len(records) < len(self.modules):
                continue  # its backward has not run (yet) for every module
            del self._pending[step]
            for record in records[: len(self.modules)]:
                # A bidirectional layer's reverse direction is recorded too, by the original step t: its last
                # step is t = 0, so its profile by lag is its norms as they are.
                for part in (record, record.reverse) if record.reverse is not None else (record,):
                    for layer, norms in enumerate(part.norms):
                        profile = norms if part.direction == "reverse" else norms.flip(0)  # (T,) by lag
                        row = MonitorRow(
                            step=step,
                            module=record.module,
                            layer=layer,
                            seq_len=len(profile),
                            horizon=horizon(profile, self.threshold),
                            decay_rate=fit_decay(profile).rate,
                            profile=[float(v) for v in profile],
                            direction=part.direction,
                        )
                        self.rows.append(row)
                        self._maybe_warn(row)

    def _maybe_warn(self, row: MonitorRow) -> None:
        if not self.warn or row.key in self._warned or row.horizon >= FAR_SHORTER * row.seq_len:
            return
        self._warned.add(row.key)
        cell = dict(self.modules)[row.module].cell
        kind = cell.name if cell.name in _ADVICE else cell.torch_module  # None: a cell without advice of its own
        which = f"layer {row.layer}" + (" (reverse direction)" if row.direction == "reverse" else "")
        warnings.warn(
            f"rnnlab.monitor: {row.module} {which} sees about {row.horizon} steps back (its gradient "
            f"falls below {self.threshold:g} of its value at the last step); its sequences are {row.seq_len} "
            f"long, so it cannot learn dependencies longer than that. Try: {_ADVICE.get(kind, _ADVICE[None])}.",
            HorizonWarning,
            stacklevel=4,
        )

    @property
    def history(self) -> list[MonitorRow]:
        """Every recorded (step, module, layer) so far, oldest first."""
        self._consume()
        return list(self.rows)

    def table(self) -> list[dict[str, Any]]:
        """The history as plain rows (`pandas.DataFrame(monitor.table())` makes a data frame of it)."""
        return [row.as_dict() for row in self.history]

    def _rows(self, module: str | None, layer: int, direction: str = "forward") -> list[MonitorRow]:
        """The history of one layer (and direction); `module` defaults to the first recurrent module."""
        if direction not in ("forward", "reverse"):
            raise ValueError(f"monitor: direction must be 'forward' or 'reverse', got {direction!r}")
        name = module if module is not None else self.modules[0][0]
        return [r for r in self.history if r.key == (name, layer, direction)]

    def _name(self, module: str | None, layer: int, direction: str) -> str:
        name = module if module is not None else self.modules[0][0]
        return f"{name} layer {layer}" + (" (reverse)" if direction == "reverse" else "")

    @property
    def horizon(self) -> int | None:
        """The most recent horizon of the first recurrent module's layer 0, or None before any record — a
        value, like `GradientFlow.horizon` and a row's `horizon`; `horizon_at` names another layer."""
        return self.horizon_at()

    def horizon_at(self, module: str | None = None, layer: int = 0, direction: str = "forward") -> int | None:
        """The most recent horizon of a layer (default: the first recurrent module; `direction="reverse"` for
        a bidirectional layer's reverse direction), or None before any record."""
        rows = self._rows(module, layer, direction)
        return rows[-1].horizon if rows else None

    def plot(self, module: str | None = None, layer: int = 0, direction: str = "forward"):
        """A matplotlib Figure: ‖∂L/∂h_t‖ against lag at each recorded step (left) and the horizon over training
        (right), for one layer. Displays inline in Jupyter."""
        from matplotlib import colormaps  # with the figure: see figures.py

        rows = self._rows(module, layer, direction)
        fig = new_figure((11, 4))
        left, right = fig.subplots(1, 2)
        cmap = colormaps["viridis"]  # early steps dark, late steps bright
        for index, row in enumerate(rows):
            draw_profile(left, row.profile, f"step {row.step}", cmap(index / max(1, len(rows) - 1)), linewidth=1.2)
        if rows:
            left.axvline(rows[-1].horizon, color="grey", linestyle="--", linewidth=1,
                         label=f"horizon at step {rows[-1].step}: {rows[-1].horizon}")  # fmt: skip
            right.plot([r.step for r in rows], [r.horizon for r in rows], marker="o")
            right.axhline(rows[-1].seq_len - 1, color="grey", linestyle=":", linewidth=1, label="whole sequence")
            right.legend(fontsize=8)
        left.set_title(f"{self._name(module, layer, direction)}: ‖∂L/∂h_t‖ of your loss against lag")
        label_profile_axes(left, legend=bool(rows))
        right.set_title(f"gradient horizon (threshold {self.threshold:g} of lag 0)")
        right.set_xlabel("training step (forwards of the model)")
        right.set_ylabel("horizon (steps)")
        right.grid(True, alpha=0.3)
        return fig

    def heatmap(self, module: str | None = None, layer: int = 0, direction: str = "forward"):
        """A matplotlib Figure: log₁₀‖∂L/∂h_t‖ by lag (x) and recorded step (y) for one layer, the horizon of
        each step marked: the whole profile over training in one picture (TensorBoard gets it as an image).
        A gradient that vanished to exactly zero takes the lowest colour; a blank cell is a lag the step's
        sequence did not have (see figures.py)."""
        rows = self._rows(module, layer, direction)
        fig = new_figure((7, 4.5))
        ax = fig.subplots()
        ax.set_title(f"{self._name(module, layer, direction)}: log₁₀‖∂L/∂h_t‖ of your loss over training")
        if not rows:
            ax.set_xlabel("lag: steps back from the last step (T − 1 − t)")
            ax.text(0.5, 0.5, "nothing recorded yet", ha="center", va="center", transform=ax.transAxes)
            return fig
        values = heatmap_rows([r.profile for r in rows])
        low, high = colour_scale([values])
        image = draw_heatmap(ax, values, [r.step for r in rows], low, high)
        ax.plot([r.horizon for r in rows], range(len(rows)), color="white", marker="|", linestyle="--",
                linewidth=1, label=f"horizon (threshold {self.threshold:g} of lag 0)")  # fmt: skip
        ax.legend(fontsize=8, loc="upper right")
        heatmap_colourbar(fig, image, ax, low)
        return fig


def monitor(
    model: nn.Module, every: int = 10, threshold: float = 1e-3, warn: bool = True, hooks: bool = True
) -> Monitor:
    """Watch the gradient's reach in `model` during your own training loop; see `Monitor` (the same arguments:
    `hooks=False` when you mark steps yourself with `begin_step` / `end_step`)."""
    return Monitor(model, every=every, threshold=threshold, warn=warn, hooks=hooks)
