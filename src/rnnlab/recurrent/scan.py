"""The parallel scan: a layer of a linear recurrence h_t = a_t ⊙ h_{t−1} + b_t whose coefficients come from x_t
alone (minGRU, minLSTM: `Cell.log_coefficients`), forward and backward over all T steps at once, in log space
(Heinsen 2023, "Efficient parallelization of a ubiquitous sequential computation"; the form Feng et al.'s
code trains with). The Python loop over `Cell.step` stays the reference it is tested against.

Forward: with A_t = Σ_{s≤t} log a_s, h_t = e^{A_t} h_0 + e^{A_t + logcumsumexp_{s≤t}(log b_s − A_s)} — one cumsum
and one logcumsumexp; b_t > 0 (g > 0), while h_0 may have any sign, so it gets its own term.
Backward: ∂L/∂h_t = d_t + a_{t+1} ⊙ ∂L/∂h_{t+1} is the same recurrence run backwards in time, on signed inputs:
their positive and negative parts are scanned apart. So ∂L/∂h_t of every step comes out whole — what recording
needs — and the step's own gradients are one call of `Cell.step_backward` over all T steps.

Chunks: the scan runs in parallel inside chunks of `SCAN_CHUNK` steps, and the chunks follow each other, each
starting from the last state of the one before. The log-space form's relative error grows with the span
|Σ log a_t| it covers (the exponent adds two numbers of that size that nearly cancel): scanned whole in
float32, against a float64 loop (minGRU, I = 32, H = 64, N(0, 1) inputs), it was 2e-5 at T = 256, 9e-5 at
T = 1024 and 3.5e-4 at T = 4096, where the float32 loop's was 4e-7; in chunks of 64 steps it was 6e-6 at all
three lengths (`tests/test_diagonal_cells.py` holds it below 2e-5 at T = 1024).
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.recurrent.cells import Cell


class ScanSaved:
    """What the scan's forward keeps: the activations `step` would have saved, stacked (T, B, G·H) — indexable
    per step, so the Python loop's (truncated) backward can follow a scan forward — and log a_t (T, B, H)."""

    def __init__(self, acts: Tensor, log_a: Tensor):
        self.acts, self.log_a = acts, log_a

    def __getitem__(self, t: int) -> Tensor:
        return self.acts[t]


def log_scan(log_a: Tensor, log_b: Tensor) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t from h_{−1} = 0, along dim 0, given log a and log b (T, …) (log b may be −inf
    where b = 0): h_t = Σ_{s≤t} b_s Π_{s<r≤t} a_r = exp(A_t + logcumsumexp_{s≤t}(log b_s − A_s)), A = cumsum(log a)."""
    return _from_zero(torch.cumsum(log_a, dim=0), log_b)


def _from_zero(cumulative: Tensor, log_b: Tensor) -> Tensor:
    """`log_scan` given A = cumsum(log a) (T, …), which the chunked scan also needs for its carry."""
    return torch.exp(cumulative + torch.logcumsumexp(log_b - cumulative, dim=0))


#: Steps scanned in parallel at once; longer sequences are scanned chunk after chunk (see the module doc).
SCAN_CHUNK = 64


def linear_scan(log_a: Tensor, inputs: Tensor, initial: Tensor | None, *, signed: bool, chunk: int = SCAN_CHUNK):
    """h_t = a_t ⊙ h_{t−1} + b_t for t = 0 … T−1 along dim 0, from h_{−1} = `initial` (zero when None), chunk
    after chunk. log_a (T, …); `inputs` the b_t: their logs (signed=False: b_t ≥ 0, −inf where 0), or the b_t
    themselves of any sign (signed=True: the positive and negative parts are scanned apart). → h (T, …)."""
    out = torch.empty_like(log_a)
    carry = initial
    for start in range(0, log_a.shape[0], chunk):
        cumulative = torch.cumsum(log_a[start : start + chunk], dim=0)  # (C, …) A_t within the chunk
        part_b = inputs[start : start + chunk]
        if signed:
            part = _from_zero(cumulative, part_b.clamp(min=0).log()) - _from_zero(cumulative, (-part_b).clamp(min=0).log())  # fmt: skip
        else:
            part = _from_zero(cumulative, part_b)
        if carry is not None:  # the state entering the chunk, carried by Π a over the chunk's steps so far
            part = part + torch.exp(cumulative) * carry
        out[start : start + chunk] = part
        carry = part[-1]
    return out


def scan_forward(cell: Cell, x_pre: Tensor, h0: Tensor):
    """One layer forward by the scan → (hs (T+1, B, H), None, ScanSaved), as the Python loop returns; x_pre
    (T, B, G·H) with its bias added, h0 (B, H)."""
    log_a, log_b, acts = cell.log_coefficients(x_pre)  # (T, B, H), (T, B, H), (T, B, G·H)
    hs = x_pre.new_empty((x_pre.shape[0] + 1, *h0.shape))  # (T+1, B, H)
    hs[0] = h0
    hs[1:] = linear_scan(log_a, log_b, h0, signed=False)
    return hs, None, ScanSaved(acts, log_a)


def scan_backward(cell: Cell, hs: Tensor, saved: ScanSaved, d_out: Tensor, dh_last: Tensor):
    """One layer's full BPTT by the reverse scan → (d_x_pre (T, B, G·H), dh0 (B, H), dh (T, B, H): ∂L/∂h_t of
    every step, all paths). d_out (T, B, H) ∂L/∂h_t from outside the recurrence, dh_last (B, H) ∂L/∂h_{T−1}'s
    part from h_n."""
    entering = d_out.clone()
    entering[-1] += dh_last
    # Backwards in time, step τ = T−1−t carries ∂L/∂h_{t+1} to h_t with a_{t+1}; the first (t = T−1) none.
    log_a_back = torch.cat([torch.zeros_like(saved.log_a[:1]), saved.log_a[1:].flip(0)])  # (T, B, H)
    dh = linear_scan(log_a_back, entering.flip(0), None, signed=True).flip(0)  # (T, B, H) ∂L/∂h_t
    grads = cell.step_backward(dh, None, saved.acts, hs[:-1], None)  # all T steps in one call
    dh0 = cell.previous_state_grad(grads, None)[0]  # (B, H) step 0 carries ∂L/∂h_0 to the initial state
    return grads.d_x_pre, dh0, dh
