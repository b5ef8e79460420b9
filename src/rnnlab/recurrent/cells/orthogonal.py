"""Cells whose recurrent matrix is kept orthogonal by construction, so ‖∂h_t/∂h_{t−1}‖ cannot shrink through W_hh.

- ExpRNN (Lezcano-Casado & Martínez-Rubio 2019, "Cheap orthogonal constraints in neural networks", github
  Lezcano/expRNN, `orthogonal.py`): h_t = modReLU(W_ih x_t + W_hh h_{t−1}), W_hh = exp(A) with A skew-symmetric,
  modReLU(z) = sign(z) ⊙ ReLU(|z| + b). The module (`rnnlab.ExpRNN`) computes W_hh = exp(A) once per forward and
  hands it to the engine as ``weight_hh``; the cell sees an ordinary (H, H) matrix.

How modReLU's bias fits the step contract (`cells/base.py`): b is not added to a pre-activation, so it cannot
travel with the input projection (whose bias the engine adds to x_pre for all steps at once) nor be summed from
d_h_pre as an additive b_hh is. It is the layer's ``bias_hh`` (H,), handed to every `step` as `bias_h` —
applied at every step inside the recurrence, as the GRU's b_hn is — and its gradient comes from the cell itself
(`Cell.step_bias = True`, `step_bias_grad`): Σ_t,b ∂L/∂z ⊙ sign(z) over the active units. The authors' input
layer has no bias (``nn.Linear(..., bias=False)``), so ExpRNN has no ``bias_ih``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent.cells.base import Cell, StepGrads


def modrelu(z: Tensor, b: Tensor | None) -> Tensor:
    """modReLU (Arjovsky et al. 2016, real case): sign(z) ⊙ ReLU(|z| + b), b (H,); with b None (bias=False) the
    identity. Written as the authors' `modrelu.forward` computes it, so it is also the autograd reference."""
    if b is None:
        return z
    return torch.sign(z) * torch.relu(z.abs() + b)


class ExpRNNCell(Cell):
    """ExpRNN's step (the paper's eq. for its RNN, column vectors; torch's row layout h W_hhᵀ here):
    z_t = W_ih x_t + W_hh h_{t−1},  h_t = modReLU(z_t) = sign(z_t) ⊙ ReLU(|z_t| + b),  W_hh = exp(A) orthogonal.

    ∂h_t/∂h_{t−1} = diag(1[|z_t| + b > 0]) W_hh: W_hh keeps every singular value at 1, so the gradient can only
    shrink where modReLU switches a unit off. Saved per step: the phase s = sign(z_t) ⊙ 1[|z_t| + b > 0] ∈ {−1, 0,
    1}, from which both derivatives follow: ∂h/∂z = |s| (z + b·sign z has slope 1 where active), ∂h/∂b = s."""

    name = "exprnn"
    gates = 1
    weight_hh_computed = True  # the module computes W_hh = exp(A): init schemes that write W_hh do not apply
    step_bias = True  # bias_hh is modReLU's b, not added to a pre-activation: its gradient is `step_bias_grad`

    def parameter_names(self, bias: bool) -> tuple[str, ...]:
        # The authors' input layer has no bias; the only bias is modReLU's b (bias=False: b = 0, modReLU = identity).
        return ("weight_ih", "weight_hh", "bias_hh") if bias else ("weight_ih", "weight_hh")

    def split_bias(self, bias_ih, bias_hh):
        return None, bias_hh  # nothing to add to x_pre; b goes to every step as `bias_h`

    def step(self, x_pre, h, c, weight_hh, bias_h):
        z = x_pre + h @ weight_hh.t()  # (B, H) z_t = W_ih x_t + W_hh h_{t−1}
        h_new = modrelu(z, bias_h)  # (B, H) h_t
        # (B, H) s ∈ {−1, 0, 1}; without b modReLU is the identity, slope 1 everywhere
        phase = torch.ones_like(z) if bias_h is None else torch.sign(z) * (z.abs() + bias_h > 0)
        return h_new, None, phase.detach()

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        d_z = dh * saved.abs()  # (..., H) ∂L/∂z_t: slope 1 on the active units, 0 on the others
        return StepGrads(d_z, d_z, None, None, None)

    def step_bias_grad(self, d_pre: Tensor, saved: Tensor) -> Tensor:
        # ∂L/∂b = Σ ∂L/∂h ⊙ s = Σ ∂L/∂z ⊙ s (s = |s|·s), d_pre (T, B, H), saved (T, B, H) → (H,)
        return (d_pre * saved).sum((0, 1))
