"""The engine's matrix products: by the compiled extension's GEMM where it runs, else by PyTorch; the weight
gradients of a layer, one GEMM each over all T·B rows."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent import native
from rnnlab.recurrent.cells import Recurrence

# Positions of a layer's tensors among its weights (torch.nn's order).
W_IH, W_HH, B_IH, B_HH = 0, 1, 2, 3


def extension_on(device: torch.device):
    """The compiled extension for tensors on `device`, or None: it reads CPU memory only. Resolved once per
    engine call (it reads the environment, RNNLAB_ENGINE and RNNLAB_GEMM) and handed down from there."""
    return native.extension() if device.type == "cpu" else None


def matmul(ext, a: Tensor, b: Tensor, scratch: bool = False) -> Tensor:
    """a · b by the compiled extension `ext`'s GEMM where it runs (oneDNN for large float32 products on AMD
    CPUs, see `_ext/bptt.cpp`), else (ext None) by PyTorch. scratch: the result is the engine's own temporary
    and may live in one of the extension's reused buffers (never for a tensor handed to the caller)."""
    return a @ b if ext is None else ext.matmul(a, b, scratch)


def layer_weight_grads(ext, d_x: Tensor, d_h: Tensor, x: Tensor, h: Tensor, bias: bool, needs, shared: bool) -> list:
    """Weight gradients of one layer for all steps at once, in torch.nn's order (w_ih, w_hh[, b_ih, b_hh]).

    d_x, d_h (T·B, G·H): gradients of the input and recurrent projections — one tensor when `shared` (every cell
    but the GRU); x (T·B, I) the layer's inputs, h (T·B, H) the states h_{t−1}; `ext` the compiled extension or
    None. Each gradient is d_preᵀ · operand; where several share d_pre they come from one GEMM against the
    operands side by side ([h, x, 1] for vanilla and LSTM cells), so the large d_pre is read once instead of
    once per weight and bias (measured at the adding shape: ~7 ms saved of ~100).
    """
    ones = x.new_ones((x.shape[0], 1))
    if shared:
        groups = [(d_x, [(h, W_HH), (x, W_IH)] + ([(ones, B_IH)] if bias else []))]
    else:
        groups = [
            (d_x, [(x, W_IH)] + ([(ones, B_IH)] if bias else [])),
            (d_h, [(h, W_HH)] + ([(ones, B_HH)] if bias else [])),
        ]
    grads: list = [None] * (4 if bias else 2)
    for d_pre, operands in groups:
        # With shared d_pre both biases get the one bias gradient, computed in the b_ih slot.
        wanted = [(m, k) for m, k in operands if needs[k] or (k == B_IH and shared and needs[B_HH])]
        if not wanted:
            continue
        product = _weight_grad(ext, d_pre, _side_by_side(ext, [m for m, _ in wanted]))
        col = 0
        for m, k in wanted:
            block = product[:, col : col + m.shape[1]]
            col += m.shape[1]
            grads[k] = block.squeeze(1).contiguous() if k >= B_IH else block.contiguous()
    if bias and shared:  # vanilla and LSTM cells add both biases to one pre-activation: same gradient
        both = grads[B_IH]
        grads[B_IH] = both if needs[B_IH] else None
        grads[B_HH] = both.clone() if needs[B_HH] and both is not None else None
    return [g if needs[k] else None for k, g in enumerate(grads)]


def _side_by_side(ext, parts: list[Tensor]) -> Tensor:
    """The operands of one weight-gradient GEMM as columns of one (T·B, ΣI) matrix, in a reused buffer where
    the compiled engine runs (at the fastrnns shape a fresh 26 MB buffer cost ~3 ms of page faults)."""
    if len(parts) == 1:
        return parts[0]
    if ext is None:
        return torch.cat(parts, dim=1)
    out = ext.scratch([parts[0].shape[0], sum(p.shape[1] for p in parts)], parts[0])
    return torch.cat(parts, dim=1, out=out)


def _weight_grad(ext, d_pre: Tensor, inputs: Tensor) -> Tensor:
    """d_preᵀ · inputs, (G·H, T·B) @ (T·B, I) → (G·H, I).

    Two orientations, by shape. With many rows and few columns (T·B ≥ 8·I: long sequences, small inputs) it is
    computed as (inputsᵀ · d_pre)ᵀ, which MKL runs faster (I=2, G·H=512, T·B=12800: 4.7 ms instead of 11.7 ms;
    I=131, T·B=12800: 5.5 instead of 7.1 ms). Otherwise directly, which leaves the result in the parameter's
    layout: the transposed result costs a transposing copy of the whole (G·H, I) gradient, which dominated
    short sequences (T·B=35, I=1025, G·H=2048: 3.1 ms against 0.65 ms; T·B=560, I=513, G·H=1024: 2.9 against
    1.8 ms). The rule T·B ≥ 8·I picked the faster one at all 8 shapes measured (Intel Xeon, MKL)."""
    if inputs.shape[0] >= 8 * inputs.shape[1]:
        return matmul(ext, inputs.t(), d_pre).t()
    return matmul(ext, d_pre.t(), inputs)


def listed_weight_grads(ext, d_x: Tensor, d_h: Tensor, x: Tensor, h: Tensor, cell, bias: bool, needs) -> list:
    """Weight gradients of one layer of a cell outside `layer_weight_grads`' layout — an element-wise recurrence
    (`Recurrence.DIAGONAL`: u ⊙ h_{t−1}), none (`Recurrence.NONE`), or a matrix W_hh beside a single bias
    (coRNN) — in the cell's order (`Cell.parameter_names`).

    d_x, d_h (T·B, G·H) the gradients of the input projection and of the recurrent term; x (T·B, I) the layer's
    inputs, h (T·B, S) what W_hh multiplied (`Cell.recurrent_operand`). weight_ih: one GEMM d_xᵀ · x; bias_ih:
    the column sums of d_x; a matrix weight_hh: one GEMM d_hᵀ · h; weight_hh = u: Σ over all T·B rows of
    d_h ⊙ h_{t−1}, since u scales each unit's own state.
    """
    matrix = cell.recurrence is Recurrence.MATRIX
    grads: list = []
    for name, wanted in zip(cell.parameter_names(bias), needs, strict=True):
        if not wanted:
            grads.append(None)
        elif name == "weight_ih":
            grads.append(_weight_grad(ext, d_x, x).contiguous())
        elif name == "bias_ih":
            grads.append(d_x.sum(0))
        elif name == "weight_hh":
            grads.append(_weight_grad(ext, d_h, h).contiguous() if matrix else (d_h * h).sum(0))
        else:
            raise ValueError(f"listed_weight_grads: no gradient for a parameter {name!r} of cell {cell.name!r}")
    return grads
