"""Pascanu's Ω regulariser (Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
networks", eq. 9–10): a penalty that asks every backward step to preserve the norm of the gradient.

    Ω = Σ_k ( ‖∂L/∂h_{k+1} · ∂h_{k+1}/∂h_k‖ / ‖∂L/∂h_{k+1}‖ − 1 )²

For an Elman cell h_{k+1} = φ(x W_ihᵀ + h_k W_hhᵀ + b) the backward step is the row vector
(∂L/∂h_{k+1} ⊙ φ′) W_hh — for IndRNN's h_{k+1} = ReLU(x W_ihᵀ + u ⊙ h_k + b) it is (∂L/∂h_{k+1} ⊙ ReLU′) ⊙ u — so Ω
needs exactly what rnnlab's engine already has after a recorded backward:
∂L/∂h_{k+1} at every step and the states h_{k+1}, both of every layer (`record_gradients(..., keep_vectors=True)`
keeps them). Nothing is run again: Ω costs one (T·B, H) × (H, H) product per layer and direction, and its
backward.

The gradient of Ω is the paper's "immediate" one (eq. 10) as its code (pascanur/trainingRNNs, RNN.py) takes it:
∂L/∂h_{k+1} and the states are constants, so Ω reaches W_hh only, through the W_hh of each backward step.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent.cells import VANILLA
from rnnlab.recurrent.modules import RecurrentBase
from rnnlab.recurrent.recorder import BackwardRecord, GradientRecorder

#: The cells Ω is defined for here: one gate block, no cell state, step Jacobian diag(φ′) W_hh (the Elman cells)
#: or diag(φ′ ⊙ u) (IndRNN).
OMEGA_CELLS = tuple(sorted([*VANILLA, "indrnn"]))

#: ‖∂L/∂h_{k+1}‖ below this drops step k from Ω (its ratio is 0/0 in float precision). RNN.py's `bound` is
#: 1e-20 on the squared norm, the same cut.
MIN_GRADIENT_NORM = 1e-10


def omega(
    module: RecurrentBase,
    record: BackwardRecord | GradientRecorder,
    states: Tensor | None = None,
    *,
    squared: bool = False,
) -> Tensor:
    """Pascanu's Ω for the batch whose backward `record` holds, differentiable with respect to W_hh.

    **Arguments**: `module` an rnnlab `RNN` (tanh, relu or linear) or `IndRNN`, any number of layers, one or
    two directions; `record` the `BackwardRecord` of the batch's loss backward made with
    `rnnlab.record_gradients(..., keep_vectors=True)` (or its `GradientRecorder`: its last record), which holds
    ∂L/∂h_t and the states h_t of every layer; `states` (optional, one layer and one direction only) the
    module's output of that forward, (B, T, H) with `batch_first` else (T, B, H), used instead of the record's
    copy; `squared` uses the ratio of squared norms, ‖·‖²/‖·‖², as RNN.py computes it (the paper's eq. 9 has
    the plain norms: the default). **Returns** a scalar tensor in W_hh's dtype (at least float32).

    Use it in a training loop, in the official code's order (RNN.py adds α·∂Ω/∂W_hh to the loss gradient,
    then clips the sum: the paper's "SGD-CR")::

        with rnnlab.record_gradients(rnn, keep_vectors=True) as rec:
            output, _ = rnn(x)                            # (B, T, H) with batch_first
            loss = loss_fn(head(output[:, -1]), y)
            loss.backward()                               # the engine records ∂L/∂h_t (and h_t) of every step
        reg = rnnlab.omega(rnn, rec.last)
        (weight * reg).backward()                         # adds weight·∂Ω/∂W_hh to W_hh.grad
        torch.nn.utils.clip_grad_norm_(params, 1.0)       # clip loss + Ω gradients together
        optimizer.step()

    Normalisation and weight: the paper writes a sum over k (eq. 9); its code, and rnnlab, take the mean
    instead, per sample, over every (step, sample) whose ‖∂L/∂h_{k+1}‖ ≥ 1e-10 (RNN.py: Σ_k mean_b Ω_kb /
    Σ_k mean_b [kept]), so the weight α does not grow with T; the code's defaults are α = 2 with clipping at 1.
    A stacked or bidirectional module (the paper has one layer) has one term per layer, direction, step and
    sample, each from that layer's own ∂L/∂h and W_hh, and Ω is their mean: each W_hh is asked to preserve
    the norm of the gradient that crosses it.
    Where rnnlab differs from the code: the plain-norm ratio of eq. 9 by default (`squared=True` is RNN.py's
    ‖·‖²/‖·‖²; both vanish exactly where every step preserves the norm); no fall-back update when the gradient
    is not finite (RNN.py then steps W_hh by 0.02·W_hh; rnnlab's trainer stops the run as diverged). Ω = 0
    when every step preserves the norm, e.g. a linear RNN with orthogonal W_hh.
    """
    total, count = None, 0
    for w_hh, gradients, layer_states in _checked(module, record, states):  # per layer and direction
        terms, kept = _terms(module, w_hh, gradients, layer_states, squared)
        total = terms if total is None else total + terms
        count += kept
    return total / max(count, 1)


def _terms(module, w_hh: Tensor, gradients: Tensor, states: Tensor, squared: bool) -> tuple[Tensor, int]:
    """The sum of one layer and direction's terms (ratio − 1)², and how many (step, sample) pairs were kept."""
    dtype = torch.promote_types(w_hh.dtype, torch.float32)
    w_hh = w_hh.to(dtype)  # a differentiable cast: the gradient lands in the weight's own dtype
    # Held constant (RNN.py differentiates with these as free symbols, substituted afterwards): the gradient
    # arriving at h_{k+1}, and the state h_{k+1} that fixes φ′.
    g = gradients.detach().to(dtype)  # (T, B, H)
    h_next = states.detach().to(dtype)  # (T, B, H)
    # One backward step of the cell, as the engine runs it: g ⊙ φ′(h_{k+1}) (`step_backward`), then back through
    # the recurrent term (`previous_state_grad`: · W_hh, or ⊙ u for IndRNN) — the one factor that depends on W_hh.
    back = module.cell.previous_state_grad(module.cell.step_backward(g, None, h_next, None, None), w_hh)  # (T, B, H)
    back_norm = torch.linalg.vector_norm(back, dim=-1)  # (T, B)
    g_norm = torch.linalg.vector_norm(g, dim=-1)  # (T, B)
    kept = g_norm >= MIN_GRADIENT_NORM  # (T, B)
    # A dropped step divides by 1 instead: its 0/0 would reach the gradient as NaN even through where().
    g_norm = torch.where(kept, g_norm, torch.ones_like(g_norm))
    ratio = back_norm.square() / g_norm.square() if squared else back_norm / g_norm
    terms = torch.where(kept, ratio - 1.0, torch.zeros_like(ratio)).square()  # (T, B)
    return terms.sum(), int(kept.sum())


def _checked(module, record, states) -> list[tuple[Tensor, Tensor, Tensor]]:
    """`omega`'s arguments checked, one-line errors: per layer and direction, its W_hh, the recorded
    ∂L/∂h_{k+1} and the states h_{k+1}, both (T, B, H) time-major."""
    where = "omega"
    if not isinstance(module, RecurrentBase):
        raise TypeError(f"{where}: module must be an rnnlab RNN or IndRNN, got {type(module).__name__}")
    if module.cell.name not in OMEGA_CELLS:
        raise ValueError(f"{where} supports the cells {', '.join(OMEGA_CELLS)}; got cell {module.cell.name!r}")
    if module.truncate is not None:
        raise ValueError(f"{where}: a truncated module records a truncated gradient, not ∂L/∂h; got truncate={module.truncate}")  # fmt: skip
    if isinstance(record, GradientRecorder):
        record = record.last
    if not isinstance(record, BackwardRecord):
        raise TypeError(f"{where}: record must be a BackwardRecord (rec.last), got {type(record).__name__}")
    if record.vectors is None:
        raise ValueError(f"{where} needs the gradients themselves: record with rnnlab.record_gradients(model, keep_vectors=True)")  # fmt: skip
    if record.lengths is not None:
        raise ValueError(f"{where} does not support PackedSequence input; pad the batch to one length")
    records = [record] if record.reverse is None else [record, record.reverse]
    if len(records) != module.num_directions or record.vectors.shape[0] != module.num_layers:
        raise ValueError(
            f"{where}: the record is of a module with {record.vectors.shape[0]} layer(s) and {len(records)} "
            f"direction(s), not of this one ({module.num_layers} and {module.num_directions})"
        )
    if states is not None:
        if module.num_layers != 1 or module.bidirectional:
            raise ValueError(
                f"{where}: states (the output) are the top layer's only; for num_layers={module.num_layers}, "
                f"bidirectional={module.bidirectional} leave them out: the record holds every layer's"
            )
        return [(module.weight_hh_l0, record.vectors[0], _output_states(module, states, record.vectors[0]))]
    if any(r.states is None for r in records):
        raise ValueError(f"{where}: the record holds no states (not recorded by the BPTT engine); pass the module's output as states")  # fmt: skip
    return [
        (getattr(module, f"weight_hh_l{layer}{'_reverse' if direction else ''}"), r.vectors[layer], r.states[layer])
        for direction, r in enumerate(records)
        for layer in range(module.num_layers)
    ]


def _output_states(module, states, gradients: Tensor) -> Tensor:
    """The module's output as the states h_1 … h_T, (T, B, H) time-major, checked against the record."""
    where = "omega"
    if not isinstance(states, Tensor):
        raise TypeError(f"{where}: states must be the module's output tensor, got {type(states).__name__}")
    if states.dim() == 2:  # unbatched input: (T, H)
        states = states.unsqueeze(0 if module.batch_first else 1)
    if module.batch_first and states.dim() == 3:
        states = states.transpose(0, 1)
    if states.shape != gradients.shape:
        layout = "(B, T, H)" if module.batch_first else "(T, B, H)"
        raise ValueError(
            f"{where}: states must be the output {layout} of the recorded forward; got shape {tuple(states.shape)}, "
            f"the record holds {tuple(gradients.shape)} (T, B, H)"
        )
    return states


__all__ = ["MIN_GRADIENT_NORM", "OMEGA_CELLS", "omega"]
