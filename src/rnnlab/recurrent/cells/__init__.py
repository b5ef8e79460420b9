"""The cell table: every recurrent cell rnnlab knows, one row each, and the lookups by name.

Each cell family's step and hand-written backward live in their own file (`vanilla.py`, `lstm.py`, `gru.py`,
`diagonal.py` for the element-wise recurrences: IndRNN, minGRU, minLSTM; `orthogonal.py`: ExpRNN; `oscillator.py`: coRNN; `lru.py` for the LRU),
the facts every cell declares and the step's contract in `base.py`. Everything else — the engine, the modules
(`make_recurrent`), initialisation, diagnostics, the monitor, configs and the CLI — reads the cells from
`CELLS`, so a new cell is one row here, its step in a file of its family (the Python reference), and its
kernel in the compiled loop if it has one (see ARCHITECTURE.md, "Adding a cell").
"""

from __future__ import annotations

from torch import nn

from rnnlab.recurrent.cells.base import Cell, Recurrence, StepGrads
from rnnlab.recurrent.cells.diagonal import IndRNNCell, MinGRUCell, MinLSTMCell
from rnnlab.recurrent.cells.gru import GRUCell
from rnnlab.recurrent.cells.lru import LRUCell
from rnnlab.recurrent.cells.lstm import LSTMCell, OutputPeepholeLSTMCell
from rnnlab.recurrent.cells.orthogonal import ExpRNNCell
from rnnlab.recurrent.cells.oscillator import CoRNNCell
from rnnlab.recurrent.cells.vanilla import VanillaCell

#: Every cell by name, one row per cell. Configs and the CLI use these names; `rnnlab.recurrent.modules` maps
#: torch.nn's (class, nonlinearity) to them.
CELLS: dict[str, Cell] = {
    cell.name: cell
    for cell in (
        VanillaCell("tanh"),
        VanillaCell("relu"),
        VanillaCell("linear"),
        LSTMCell(),
        OutputPeepholeLSTMCell(),
        GRUCell(),
        IndRNNCell(),
        MinGRUCell(),
        MinLSTMCell(),
        MinLSTMCell(normalized=False),
        ExpRNNCell(),
        CoRNNCell(),
        LRUCell(),
    )
}

#: The vanilla (Elman) cells: one gate block, no cell state; what identity (IRNN) initialisation applies to.
VANILLA = frozenset(name for name, cell in CELLS.items() if cell.torch_module == "RNN")

_TORCH_CLASSES = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def cell_of_torch(module) -> Cell:
    """The cell of a torch.nn.RNN/LSTM/GRU module (by its class and nonlinearity)."""
    kind = next((name for name, cls in _TORCH_CLASSES.items() if isinstance(module, cls)), None)
    # Not a torch.nn recurrent module: no cell matches (the table's cells without a torch.nn class have None).
    for cell in CELLS.values() if kind is not None else ():
        if cell.torch_module == kind and (kind != "RNN" or cell.nonlinearity == module.nonlinearity):
            return cell
    raise TypeError(f"expected a torch.nn RNN, LSTM or GRU module, got {type(module).__name__}")


def get_cell(name: str) -> Cell:
    """Look a cell up by name, with an error that lists the choices."""
    try:
        return CELLS[name]
    except KeyError:
        raise ValueError(f"unknown cell {name!r}; choose from: {', '.join(CELLS)}") from None


def is_table_cell(cell: Cell) -> bool:
    """Whether `cell` is the table's own instance (a user's Cell subclass or copy is not): the compiled loop
    serves only these, and a module saves such a cell by name."""
    return CELLS.get(cell.name) is cell


__all__ = ["CELLS", "VANILLA", "Cell", "CoRNNCell", "ExpRNNCell", "GRUCell", "IndRNNCell", "LRUCell", "LSTMCell", "MinGRUCell", "MinLSTMCell", "OutputPeepholeLSTMCell", "Recurrence",
           "StepGrads", "VanillaCell", "cell_of_torch", "get_cell", "is_table_cell"]  # fmt: skip
