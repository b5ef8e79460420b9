"""Gradient clipping, with the statistics that say whether and how hard it acted.

Three modes, named so nobody confuses them:

- ``global_norm``: rescale all gradients together so their joint L2 norm is at most `threshold`
  (Pascanu et al. 2013; `torch.nn.utils.clip_grad_norm_`). Direction is preserved.
- ``value``: clamp every gradient element to [−threshold, threshold] (`clip_grad_value_`). Direction changes.
- ``per_param_norm``: rescale each parameter tensor's gradient separately to norm ≤ threshold — what
  Keras calls ``clipnorm``. Each tensor keeps its direction, the whole does not.

Clipping acts on the gradient after backward and before the optimizer step: it bounds the size of an update
when the gradient explodes; it does nothing for a vanishing gradient.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

MODES = ("none", "global_norm", "value", "per_param_norm")


@dataclass(frozen=True)
class ClipStats:
    """pre_norm: global L2 norm of all gradients before clipping; clipped: whether clipping changed them."""

    pre_norm: float
    clipped: bool


def clip_gradients(parameters: Iterable[nn.Parameter], mode: str, threshold: float | None = None) -> ClipStats:
    """Clip the gradients of `parameters` in place; always returns the pre-clip global norm."""
    if mode not in MODES:
        raise ValueError(f"unknown clipping mode {mode!r}; choose from: {', '.join(MODES)}")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return ClipStats(pre_norm=0.0, clipped=False)
    pre_norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    if mode == "none":
        return ClipStats(pre_norm, False)
    if threshold is None or not threshold > 0:
        raise ValueError(f"clipping mode {mode!r} needs a positive threshold, got {threshold!r}")
    if mode == "global_norm":
        # Same rule as torch.nn.utils.clip_grad_norm_: scale by threshold / (norm + 1e-6) when norm > threshold.
        coefficient = threshold / (pre_norm + 1e-6)
        if coefficient < 1:
            for g in grads:
                g.mul_(coefficient)
        return ClipStats(pre_norm, coefficient < 1)
    if mode == "value":
        clipped = any(bool((g.abs() > threshold).any()) for g in grads)
        for g in grads:
            g.clamp_(-threshold, threshold)
        return ClipStats(pre_norm, clipped)
    clipped = False  # per_param_norm
    for g in grads:
        norm = float(torch.linalg.vector_norm(g))
        if norm > threshold:
            g.mul_(threshold / norm)
            clipped = True
    return ClipStats(pre_norm, clipped)
