"""The optimisers a run config can name, one row each: the torch.optim class and which of the config's knobs
(`momentum`, `alpha`) it takes. The config's validation, the trainer, `rnnlab train --optimizer` and the
run table (`rnnlab runs show`) all read this table, so a new optimiser is one row here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Optimizer:
    """One optimiser a config can name."""

    name: str
    torch_class: type[torch.optim.Optimizer]
    takes_momentum: bool = False  # the config's `momentum` (unset: 0, as torch.optim)
    default_alpha: float | None = None  # the smoothing constant's default if it takes the config's `alpha`

    def build(self, params: Iterable[nn.Parameter], lr: float, momentum: float | None, alpha: float | None):
        """The torch.optim optimiser over `params` with the config's values (momentum, alpha: None = unset)."""
        kwargs: dict[str, Any] = {"lr": lr}
        if self.takes_momentum:
            kwargs["momentum"] = momentum or 0.0
        if self.default_alpha is not None:
            kwargs["alpha"] = self.default_alpha if alpha is None else alpha
        return self.torch_class(params, **kwargs)


OPTIMIZERS: dict[str, Optimizer] = {
    spec.name: spec
    for spec in (
        Optimizer("adam", torch.optim.Adam),
        Optimizer("sgd", torch.optim.SGD, takes_momentum=True),
        Optimizer("rmsprop", torch.optim.RMSprop, takes_momentum=True, default_alpha=0.99),  # torch.optim's alpha
    )
}


def get_optimizer(name: str) -> Optimizer:
    """Look an optimiser up by name, with an error that lists the choices."""
    try:
        return OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; choose from: {', '.join(OPTIMIZERS)}") from None
