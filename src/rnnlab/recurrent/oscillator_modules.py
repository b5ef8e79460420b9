"""`CoRNN`: the coupled oscillatory RNN's module (Rusch & Mishra 2021; the cell in `cells/oscillator.py`),
constructed like `rnnlab.RNN` plus the oscillators' step size and damping, and returning (output, (y_n, z_n)).

It runs in rnnlab's engine like every table cell (recording of ‖∂L/∂y_t‖ and ‖∂L/∂z_t‖, truncation, the
diagnostics, the monitor). No torch.nn class computes it, so there is no fused op and no `to_torch`; it has no
compiled kernel and runs the engine's Python loop (`benchmarks/bench_cornn.py` measures it against the
authors' autograd loop).
"""

from __future__ import annotations

import math

from torch import nn

from rnnlab.recurrent.cells import CoRNNCell
from rnnlab.recurrent.cells.oscillator import DEFAULT_DT, DEFAULT_EPSILON, DEFAULT_GAMMA, check_constants
from rnnlab.recurrent.modules import RecurrentBase, register_safe_globals


class CoRNN(RecurrentBase):
    """coRNN (Rusch & Mishra 2021), each layer a network of H damped, driven oscillators stepped by their IMEX
    scheme (eq. (3), their ``coRNNCell``):

        z_n = z_{n−1} + Δt (tanh(W y_{n−1} + 𝒲 z_{n−1} + V x_n + b) − γ y_{n−1} − ε z_{n−1})
        y_n = y_{n−1} + Δt z_n

    **Arguments**: those of `rnnlab.RNN` (`input_size`, `hidden_size`, `num_layers`, `bias`, `batch_first`,
    `dropout`, `bidirectional`, `device`, `dtype`, `truncate`), and `dt` (Δt > 0), `gamma` (γ ≥ 0, the
    restoring force on y), `epsilon` (ε ≥ 0, the damping of z). Defaults: the authors' adding-task values
    (adding/adding_task.py: Δt 0.06, γ 66, ε 15); their sMNIST script uses Δt 0.042, γ 2.7, ε 4.7.

    **States**: y is the output and z rides in the cell-state slot, as the LSTM's (h, c): `hx` is a pair
    (y0, z0), each (L·D, B, H), zeros when omitted, and the forward returns (output, (y_n, z_n)) with output
    the y sequence (T, B, D·H) — what the authors' readout reads (``self.readout(hy)``). A deeper layer's input
    is the y sequence of the layer below.

    **Parameters per layer**: weight_ih (H, I) = V, weight_hh (H, 2H) = [𝒲 | W] acting on [z, y], bias_ih (H,) =
    b: the authors' ``i2h = nn.Linear(I + 2H, H)`` on ``cat(x, hz, hy)`` cut by columns, so their weight is
    ``torch.cat([weight_ih, weight_hh], 1)``. Initialisation as that Linear: every tensor U(−k, k) with
    k = 1/√(I + 2H), its fan-in.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        dt: float = DEFAULT_DT,
        gamma: float = DEFAULT_GAMMA,
        epsilon: float = DEFAULT_EPSILON,
        truncate: int | None = None,
    ):
        constants = check_constants(dt, gamma, epsilon)
        super().__init__(
            "cornn", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device,
            dtype, truncate=truncate,
        )  # fmt: skip
        # The table's row holds the defaults; other constants get this module's own instance of the cell (saved
        # with the module, where the table's is saved by name).
        if constants != (DEFAULT_DT, DEFAULT_GAMMA, DEFAULT_EPSILON):
            self.cell = CoRNNCell(*constants)

    @property
    def dt(self) -> float:
        return self.cell.dt

    @property
    def gamma(self) -> float:
        return self.cell.gamma

    @property
    def epsilon(self) -> float:
        return self.cell.epsilon

    def reset_parameters(self) -> None:
        """The authors' i2h `nn.Linear(I + 2H, H)` per layer: every tensor U(−1/√fan_in, 1/√fan_in), fan_in the
        layer's input size plus 2H (a config's ``init: default``, the module's own)."""
        for name, weight in self.named_parameters():
            tag = name.split("_", 2)[-1]  # l0, l1_reverse, …
            fan_in = getattr(self, f"weight_ih_{tag}").shape[1] + getattr(self, f"weight_hh_{tag}").shape[1]
            bound = 1.0 / math.sqrt(fan_in)
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dt={self.dt:g}, gamma={self.gamma:g}, epsilon={self.epsilon:g}"


#: The module of each oscillator cell by its table name, for `make_recurrent`.
CELL_MODULES = {"cornn": (CoRNN, {})}


# A module with its own constants saves its CoRNNCell as an object: allowed for torch.load(weights_only=True).
register_safe_globals(CoRNN, CoRNNCell)
