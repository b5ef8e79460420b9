"""The chunked scan: a layer of a linear recurrence h_t = a_t ⊙ h_{t−1} + b_t whose coefficients come from x_t
alone (minGRU, minLSTM: `Cell.coefficients`), forward and backward over all T steps with about 2√T Python
steps instead of T. The Python loop over `Cell.step` stays the reference it is tested against.

The T steps are cut into K chunks of C ≈ √T steps, laid side by side (K, C, …):
1. inside every chunk at once, the recurrence from a zero state: C steps, each one multiply-add over all K
   chunks, and the products P_{k,j} = a_{k,0} ⋯ a_{k,j} alongside (`torch.cumprod` along that dimension
   took 73 % of the scan's time);
2. the state entering each chunk: s_k = P_{k−1,C−1} ⊙ s_{k−1} + (chunk k−1's last local state), K steps;
3. every state at once: h_{k,j} = local_{k,j} + P_{k,j} ⊙ s_k.
The chunks are views of the (T, …) tensors; the T mod C steps left over follow one by one.
It multiplies and adds the numbers the loop does, in plain (not log) space, so any sign is allowed and its
float32 error is the loop's order (about 1e-7 relative). Why not the log-space scan of Heinsen (2023), which
Feng et al.'s code uses on GPU: on this CPU its `logcumsumexp` alone took 41 % of a minGRU training step
(T = 512), the logs and cumsums another 15 %, and the whole step ran at 0.7–0.8× the loop's speed; its float32
error also grows with the span of Σ log a it covers (3.5e-4 scanned whole at T = 4096).

Backward: ∂L/∂h_t = d_t + a_{t+1} ⊙ ∂L/∂h_{t+1} is the same recurrence run backwards in time, so ∂L/∂h_t of
every step comes out whole — what recording needs — and the step's own gradients are one call of
`Cell.step_backward` over all T steps.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnlab.recurrent.cells import Cell


class ScanSaved:
    """What the scan's forward keeps: the activations `step` would have saved, stacked (T, B, G·H) — indexable
    per step, so the Python loop's (truncated) backward can follow a scan forward — and a_t (T, B, H)."""

    def __init__(self, acts: Tensor, a: Tensor):
        self.acts, self.a = acts, a

    def __getitem__(self, t: int) -> Tensor:
        return self.acts[t]


def chunked_scan(a: Tensor, b: Tensor, initial: Tensor | None = None, chunk: int | None = None) -> Tensor:
    """h_t = a_t ⊙ h_{t−1} + b_t for t = 0 … T−1 along dim 0, from h_{−1} = `initial` (zero when None): a, b
    (T, …) → h (T, …), in chunks of `chunk` steps (default ⌈√T⌉; see the module doc). Not differentiable by
    autograd (it writes into its output): the engine's backward is the reverse scan."""
    steps = b.shape[0]
    size = chunk or max(1, math.isqrt(steps - 1) + 1)
    count, tail = divmod(steps, size)  # K whole chunks (views where the inputs are contiguous); then the tail
    h = torch.empty(b.shape, dtype=b.dtype, device=b.device)  # contiguous, so that its chunks are views
    last = torch.zeros_like(b[0]) if initial is None else initial
    if count:
        whole = count * size
        a_k, b_k = a[:whole].reshape(count, size, *b.shape[1:]), b[:whole].reshape(count, size, *b.shape[1:])
        h_k = h[:whole].view(count, size, *b.shape[1:])
        products = torch.empty_like(a_k)  # P_{k,j} = a_{k,0} ⋯ a_{k,j}: what a state entering chunk k becomes at j
        h_k[:, 0], products[:, 0] = b_k[:, 0], a_k[:, 0]
        for j in range(1, size):  # 1. inside every chunk at once, from a zero state
            torch.addcmul(b_k[:, j], a_k[:, j], h_k[:, j - 1], out=h_k[:, j])
            torch.mul(products[:, j - 1], a_k[:, j], out=products[:, j])
        entering = torch.empty_like(h_k[:, 0])  # (K, …) 2. the state entering each chunk
        entering[0] = last
        for k in range(1, count):
            torch.addcmul(h_k[k - 1, -1], products[k - 1, -1], entering[k - 1], out=entering[k])
        h_k.addcmul_(products, entering.unsqueeze(1))  # 3. every state at once
        last = h_k[-1, -1]
    for t in range(steps - tail, steps):  # the tail (fewer than `size` steps)
        last = torch.addcmul(b[t], a[t], last, out=h[t])
    return h


def scan_forward(cell: Cell, x_pre: Tensor, h0: Tensor):
    """One layer forward by the scan → (hs (T+1, B, H), None, ScanSaved), as the Python loop returns; x_pre
    (T, B, G·H) with its bias added, h0 (B, H)."""
    a, b, acts = cell.coefficients(x_pre)  # (T, B, H), (T, B, H), (T, B, G·H)
    hs = x_pre.new_empty((x_pre.shape[0] + 1, *h0.shape))  # (T+1, B, H)
    hs[0] = h0
    hs[1:] = chunked_scan(a, b, h0)
    return hs, None, ScanSaved(acts, a)


def scan_backward(cell: Cell, hs: Tensor, saved: ScanSaved, d_out: Tensor, dh_last: Tensor):
    """One layer's full BPTT by the reverse scan → (d_x_pre (T, B, G·H), dh0 (B, H), dh (T, B, H): ∂L/∂h_t of
    every step, all paths). d_out (T, B, H) ∂L/∂h_t from outside the recurrence, dh_last (B, H) ∂L/∂h_{T−1}'s
    part from h_n."""
    entering = d_out.clone()
    entering[-1] += dh_last
    # Backwards in time, step τ = T−1−t carries ∂L/∂h_{t+1} to h_t with a_{t+1}; the first (t = T−1) none.
    a_back = torch.cat([torch.ones_like(saved.a[:1]), saved.a[1:].flip(0)])  # (T, B, H)
    dh = chunked_scan(a_back, entering.flip(0)).flip(0)  # (T, B, H) ∂L/∂h_t
    grads = cell.step_backward(dh, None, saved.acts, hs[:-1], None)  # all T steps in one call
    dh0 = cell.previous_state_grad(grads, None)[0]  # (B, H) step 0 carries ∂L/∂h_0 to the initial state
    return grads.d_x_pre, dh0, dh
