"""Independent references for the engine tests, built from torch.nn pieces only (never from rnnlab.recurrent.cells).

`unrolled` runs a torch.nn.RNN/LSTM/GRU step by step with torch.nn.RNNCell/LSTMCell/GRUCell holding the same
weights, under plain autograd, and keeps every h_t (and c_t) with `retain_grad`, so that after a backward
`h.grad` is the brute-force ∂L/∂h_t the engine must record.
"""

import torch
from torch import nn


def cells_of(module: nn.Module) -> list[nn.Module]:
    """One torch.nn cell per layer, sharing the module's parameter tensors (so gradients land on them)."""
    cells = []
    for layer in range(module.num_layers):
        if isinstance(module, nn.LSTM):
            cell = nn.LSTMCell(1, 1, bias=module.bias)
        elif isinstance(module, nn.GRU):
            cell = nn.GRUCell(1, 1, bias=module.bias)
        else:
            cell = nn.RNNCell(1, 1, bias=module.bias, nonlinearity=module.nonlinearity)
        cell.input_size, cell.hidden_size = (
            (module.input_size if layer == 0 else module.hidden_size),
            module.hidden_size,
        )
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            if hasattr(module, f"{name}_l{layer}"):
                delattr(cell, name)
                setattr(cell, name, getattr(module, f"{name}_l{layer}"))
        cells.append(cell)
    return cells


def unrolled(module: nn.Module, x: torch.Tensor, hx=None, dropout_masks=None):
    """Time-major x (T, B, I). Returns (output (T, B, H), hs, cs) where hs[l][t] is layer l's state after
    step t with retain_grad() called, cs likewise for LSTMs (else None). `dropout_masks[l]` (T, B, H)
    multiplies layer l's output before layer l+1."""
    is_lstm = isinstance(module, nn.LSTM)
    steps, batch, _ = x.shape
    if hx is None:
        zeros = x.new_zeros(module.num_layers, batch, module.hidden_size)
        hx = (zeros, zeros) if is_lstm else zeros
    layer_input = x
    hs, cs = [], [] if is_lstm else None
    for layer, cell in enumerate(cells_of(module)):
        h = hx[0][layer] if is_lstm else hx[layer]
        c = hx[1][layer] if is_lstm else None
        h_list, c_list = [], []
        for t in range(steps):
            if is_lstm:
                h, c = cell(layer_input[t], (h, c))
                if c.requires_grad:
                    c.retain_grad()
                c_list.append(c)
            else:
                h = cell(layer_input[t], h)
            if h.requires_grad:
                h.retain_grad()
            h_list.append(h)
        hs.append(h_list)
        if is_lstm:
            cs.append(c_list)
        out = torch.stack(h_list)
        if dropout_masks is not None and layer < module.num_layers - 1:
            out = out * dropout_masks[layer]
        layer_input = out
    return layer_input, hs, cs


def truncated_reference_grads(run, state_before, x: torch.Tensor, w_out: torch.Tensor, k: int, params: dict) -> dict:
    """The parameter gradients that truncated BPTT(k) must give for the loss Σ_s out_s · w_out[s]: each loss term
    s re-run under plain autograd from the detached state before step s − k + 1, so its gradient reaches steps
    s−k+1 … s only. `run(x_slice, state)` → the reference's outputs over those steps; `state_before(t)` the
    (detached) state entering step t, the initial state for t = 0; `params` the reference's leaf tensors."""
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    for s in range(x.shape[0]):
        start = max(s - k + 1, 0)
        term_out = run(x[start : s + 1], state_before(start))
        grads = torch.autograd.grad((term_out[-1] * w_out[s]).sum(), list(params.values()))
        for n, grad in zip(params, grads, strict=True):
            total[n] += grad
    return total
