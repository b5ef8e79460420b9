"""The coupled oscillatory RNN (Rusch & Mishra 2021, "Coupled oscillatory recurrent neural network (coRNN)",
github tk-rusch/coRNN): a network of damped, driven oscillators,

    y″ = σ(W y + 𝒲 y′ + V x + b) − γ y − ε y′,   written as the first-order system   y′ = z,  z′ = σ(…) − γ y − ε z,

with σ = tanh, discretised (their eq. (3), and every ``coRNNCell.forward`` of their code) by an IMEX step of
size Δt that updates z first from the old (y, z), then y from the new z:

    z_n = z_{n−1} + Δt (tanh(W y_{n−1} + 𝒲 z_{n−1} + V x_n + b) − γ y_{n−1} − ε z_{n−1})
    y_n = y_{n−1} + Δt z_n

How it fits the cell contract (`base.py`): y is the state h (what the layer outputs, what their readout reads),
z sits in the cell-state slot c, as the LSTM's c_t — so a module returns (y_n, z_n) as h_n, records
‖∂L/∂y_t‖ as ‖∂L/∂h_t‖ and ‖∂L/∂z_t‖ as the cell state's norm, and the engine's time loops, truncation and
initial-state handling carry both states unchanged. The recurrent term reads both states, so ``weight_hh`` is
one (H, 2H) matrix [𝒲 | W] acting on the operand [z, y] (`recurrent_operand`): the columns in the order of their
``i2h = nn.Linear(I + 2H, H)`` on ``cat(x, hz, hy)``, so their i2h.weight is [weight_ih | weight_hh] and
their i2h.bias is bias_ih — a plain copy. One bias, as their one Linear.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnlab.recurrent.cells.base import Cell, StepGrads

#: The defaults: the adding task's values in the authors' code (adding/adding_task.py: dt 6e-2, gamma 66,
#: epsilon 15). Their sMNIST script uses dt 0.042, gamma 2.7, epsilon 4.7; each task has its own.
DEFAULT_DT, DEFAULT_GAMMA, DEFAULT_EPSILON = 0.06, 66.0, 15.0


def check_constants(dt, gamma, epsilon, where: str = "CoRNN") -> tuple[float, float, float]:
    """(dt, gamma, epsilon) as floats: dt a finite number > 0, gamma and epsilon finite numbers ≥ 0 (the paper
    takes both positive; 0 is the undamped or unrestored limit), else a one-line ValueError naming the value."""
    checked = []
    for name, value, low in (("dt", dt, "> 0"), ("gamma", gamma, "≥ 0"), ("epsilon", epsilon, "≥ 0")):
        number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not number or value < 0 or (value == 0 and low == "> 0"):
            raise ValueError(f"{where}: {name} must be a finite number {low}, got {value!r}")
        checked.append(float(value))
    return checked[0], checked[1], checked[2]


class CoRNNCell(Cell):
    """One IMEX step of coRNN (see the module docstring). h = y, c = z; ``weight_hh`` (H, 2H) = [𝒲 | W] on
    [z, y]; x_pre = V x_n + b. Saved per step: tanh(·) (B, H).

    The constants Δt, γ, ε belong to the cell: the table's row holds the defaults (`DEFAULT_DT`, …), and a
    module with other values holds its own instance (`rnnlab.CoRNN`)."""

    name = "cornn"
    gates = 1
    has_cell_state = True  # z_t, in the LSTM's c_t slot
    recurrent_bias = False  # their one i2h bias

    def __init__(self, dt: float = DEFAULT_DT, gamma: float = DEFAULT_GAMMA, epsilon: float = DEFAULT_EPSILON):
        self.dt, self.gamma, self.epsilon = check_constants(dt, gamma, epsilon, "CoRNNCell")

    def __repr__(self) -> str:
        return f"CoRNNCell(dt={self.dt:g}, gamma={self.gamma:g}, epsilon={self.epsilon:g})"

    def parameter_shape(self, name, hidden, layer_input, state):
        if name == "weight_hh":
            return (hidden, 2 * state)  # [𝒲 | W] on [z, y]
        return super().parameter_shape(name, hidden, layer_input, state)

    def recurrent_operand(self, h: Tensor, c: Tensor | None) -> Tensor:
        return torch.cat([c, h], dim=-1)  # (..., 2H) [z, y], their cat order (hz, hy)

    def step(self, x_pre, h, c, weight_hh, bias_h):
        y, z = h, c
        drive = torch.tanh(torch.addmm(x_pre, torch.cat([z, y], dim=1), weight_hh.t()))  # (B, H) σ(W y + 𝒲 z + V x + b)
        z_new = z + self.dt * (drive - self.gamma * y - self.epsilon * z)  # z_n, from the old y, z
        y_new = y + self.dt * z_new  # y_n, from the new z
        return y_new, z_new, drive

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        drive = saved  # (..., H) tanh(·)
        dz = dc + self.dt * dh  # (..., H) ∂L/∂z_n, all paths: from step n+1 and through y_n = y_{n−1} + Δt z_n
        d_pre = dz * self.dt * (1 - drive * drive)  # (..., H)
        dy_direct = dh - (self.dt * self.gamma) * dz  # ∂y_n/∂y_{n−1} = I and ∂z_n/∂y_{n−1} ∋ −Δt γ
        dz_direct = (1 - self.dt * self.epsilon) * dz  # ∂z_n/∂z_{n−1} ∋ (1 − Δt ε) I
        return StepGrads(d_pre, d_pre, dy_direct, dz_direct, dz)

    def previous_state_grads(self, grads, weight_hh):
        through = grads.d_h_pre @ weight_hh  # (..., 2H) back through [𝒲 | W] to [z_{n−1}, y_{n−1}]
        hidden = through.shape[-1] // 2
        return grads.dh_direct + through[..., hidden:], grads.dc_prev + through[..., :hidden]

    def recurrent_blocks(self, weight_hh: Tensor) -> Tensor:
        """(1, 2H, 2H): the step's Jacobian ∂(y_n, z_n)/∂(y_{n−1}, z_{n−1}) linearised where tanh′ = 1 (the state
        and drive at 0), the matrix whose powers carry the gradient back while the oscillators stay small:
            ∂z_n/∂y = Δt (W − γ I),  ∂z_n/∂z = I + Δt (𝒲 − ε I),  ∂y_n/∂· = Δt ∂z_n/∂· (+ I on y)."""
        hidden = weight_hh.shape[0]
        eye = torch.eye(hidden, dtype=weight_hh.dtype, device=weight_hh.device)
        w_z, w_y = weight_hh[:, :hidden], weight_hh[:, hidden:]
        dz_dy = self.dt * (w_y - self.gamma * eye)
        dz_dz = eye + self.dt * (w_z - self.epsilon * eye)
        top = torch.cat([eye + self.dt * dz_dy, self.dt * dz_dz], dim=1)  # ∂y_n/∂(y, z)
        bottom = torch.cat([dz_dy, dz_dz], dim=1)  # ∂z_n/∂(y, z)
        return torch.cat([top, bottom], dim=0).unsqueeze(0)
