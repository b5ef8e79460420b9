"""Where an initialisation scheme finds a recurrent module's tensors: its cell, its layers and directions, the
gate blocks of a weight, an LSTM's projections. For rnnlab's modules and torch.nn's alike (`rnnlab.init`)."""

from __future__ import annotations

from collections.abc import Iterator

from torch import Tensor, nn

from rnnlab.recurrent.cells import Cell, cell_of_torch
from rnnlab.recurrent.modules import RecurrentBase


def module_cell(module: nn.Module) -> Cell:
    """The cell of an rnnlab module, or of a torch.nn RNN/LSTM/GRU by its class and nonlinearity."""
    if isinstance(module, RecurrentBase):
        return module.cell
    try:
        return cell_of_torch(module)
    except TypeError:
        raise TypeError(f"expected an rnnlab or torch.nn RNN/LSTM/GRU, got {type(module).__name__}") from None


def cell_name(module: nn.Module) -> str:
    """The rnnlab cell name of an rnnlab or torch.nn recurrent module (e.g. 'lstm', 'rnn_relu')."""
    return module_cell(module).name


def layers(module: nn.Module) -> Iterator[tuple[Tensor, Tensor, Tensor | None, Tensor | None]]:
    """Per layer and direction (a bidirectional module's `_reverse` weights too): (weight_ih, weight_hh or
    None, bias_ih or None, bias_hh or None) — None also where the cell has no such tensor."""
    for tag in tags(module):
        yield (
            getattr(module, f"weight_ih_{tag}"),
            getattr(module, f"weight_hh_{tag}", None),
            getattr(module, f"bias_ih_{tag}", None),
            getattr(module, f"bias_hh_{tag}", None),
        )


def tags(module: nn.Module) -> list[str]:
    """The parameter name suffixes of every layer and direction: l0, l0_reverse, l1, …"""
    directions = ("", "_reverse") if module.bidirectional else ("",)
    return [f"l{layer}{suffix}" for layer in range(module.num_layers) for suffix in directions]


def projections(module: nn.Module) -> list[Tensor]:
    """The projection weights weight_hr (P, H) of an LSTM with proj_size > 0, per layer and direction."""
    return [getattr(module, f"weight_hr_{tag}") for tag in tags(module)] if getattr(module, "proj_size", 0) else []


def blocks(weight: Tensor, hidden: int) -> list[Tensor]:
    """Views of the (H, ·) blocks of a (G·H, ·) weight: its gate blocks (and an output-gate peephole's V_o,
    the fifth block of its weight_hh)."""
    return list(weight.split(hidden, dim=0))


def zero_biases(module: nn.Module) -> None:
    """Zero every bias of every layer and direction."""
    for _, _, b_ih, b_hh in layers(module):
        for b in (b_ih, b_hh):
            if b is not None:
                b.zero_()
