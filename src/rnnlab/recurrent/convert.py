"""Between torch.nn and rnnlab: one module (`from_torch`, `RecurrentBase.to_torch`), every recurrent layer
inside a whole model (`convert`, `convert_back`), finding them (`recurrent_modules`) and building one by cell
name (`make_recurrent`). Parameters are copied, so outputs, gradients and state_dict keys stay the same.

One meaning per verb: `from_torch` / `to_torch` make a copy of one module and leave the original alone;
`convert` / `convert_back` replace the recurrent layers of a whole model in place.
"""

from __future__ import annotations

import inspect
import warnings

from torch import nn

from rnnlab.recurrent.cells import cell_of_torch, get_cell
from rnnlab.recurrent.diagonal_modules import CELL_MODULES as DIAGONAL_MODULES
from rnnlab.recurrent.lru_module import LRU
from rnnlab.recurrent.modules import MODULES, RNN, Recurrent, RecurrentBase
from rnnlab.recurrent.orthogonal_modules import CELL_MODULES as ORTHOGONAL_MODULES
from rnnlab.recurrent.oscillator_modules import CELL_MODULES as OSCILLATOR_MODULES

#: The paper's module of each table cell without a torch.nn class that has one (element-wise, orthogonal,
#: oscillator): its options and initialisation.
_PAPER_MODULES = {**DIAGONAL_MODULES, **ORTHOGONAL_MODULES, **OSCILLATOR_MODULES}


def from_torch(module: nn.Module) -> RecurrentBase:
    """An rnnlab copy of a `torch.nn.RNN/LSTM/GRU` with identical parameters; the original is untouched."""
    if isinstance(module, RecurrentBase):
        raise TypeError("from_torch: the module is already an rnnlab module")
    try:
        cell = cell_of_torch(module)
    except TypeError:
        raise TypeError(f"from_torch: expected torch.nn.RNN, LSTM or GRU, got {type(module).__name__}") from None
    target = MODULES[cell.torch_module]
    param = next(module.parameters())
    kwargs = {
        "num_layers": module.num_layers,
        "bias": module.bias,
        "batch_first": module.batch_first,
        "dropout": module.dropout,
        "bidirectional": bool(module.bidirectional),
        "device": param.device,
        "dtype": param.dtype,
    }
    if target is RNN:
        kwargs["nonlinearity"] = module.nonlinearity
    if getattr(module, "proj_size", 0):
        kwargs["proj_size"] = module.proj_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.nn already warned about dropout on 1 layer
        copy = target(module.input_size, module.hidden_size, **kwargs)
    copy.load_state_dict(module.state_dict())
    copy.train(module.training)
    return copy


def recurrent_modules(model: nn.Module) -> list[tuple[str, RecurrentBase]]:
    """Every rnnlab recurrent module inside `model` (itself included), with its qualified name — the class
    name for `model` itself — as recordings and the monitor name it."""
    if isinstance(model, RecurrentBase) and not model._modules:  # the common case, without walking the tree
        return [(type(model).__name__, model)]
    return [(name or type(m).__name__, m) for name, m in model.named_modules() if isinstance(m, RecurrentBase)]


def _module_class(cell: str) -> tuple[type[RecurrentBase], dict]:
    """The module class that `make_recurrent` builds for a table cell, and the options its name implies."""
    facts = get_cell(cell)
    if facts.name == "lru":
        return LRU, {}
    if facts.name in _PAPER_MODULES:
        return _PAPER_MODULES[facts.name]
    if facts.torch_module is None:
        return Recurrent, {}
    return MODULES[facts.torch_module], {}


def cell_options(cell: str) -> tuple[str, ...]:
    """The paper's own options of a cell's module (keyword-only arguments: coRNN's dt, gamma, epsilon; the LRU's
    ring; IndRNN's bound …), which a config passes as `cell_options`. Not `truncate` (the config's own key) nor
    `proj_size` (a model's readout reads the hidden size)."""
    module_class, implied = _module_class(cell)
    parameters = inspect.signature(module_class.__init__).parameters.values()
    return tuple(
        p.name
        for p in parameters
        if p.kind is p.KEYWORD_ONLY and p.name not in ("truncate", "proj_size") and p.name not in implied
    )


def make_recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, **kwargs) -> RecurrentBase:
    """Build the rnnlab module for a cell name of the table ('rnn_tanh', 'lstm', 'gru', 'indrnn', …): the
    drop-in RNN/LSTM/GRU where the cell has a torch.nn class, the paper's module for an element-wise, orthogonal
    or oscillator cell (`IndRNN`, `MinGRU`, `MinLSTM`, `ExpRNN`, `CoRNN`, `LRU`, with their default options), else
    a `Recurrent` module of that cell."""
    facts = get_cell(cell)  # the error for an unknown name lists the choices
    module_class, implied = _module_class(facts.name)
    if module_class is Recurrent:
        return Recurrent(facts.name, input_size, hidden_size, num_layers, **kwargs)
    if facts.nonlinearity is not None:
        kwargs["nonlinearity"] = facts.nonlinearity
    return module_class(input_size, hidden_size, num_layers, **implied, **kwargs)


# ------------------------------------------------------------------------------------------------ whole models


def _replace_children(model: nn.Module, convert_one, wanted) -> nn.Module:
    """Replace, in place, every submodule for which `wanted(m)` holds by `convert_one(m)`; `model` itself too."""
    if wanted(model):
        return convert_one(model)
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if wanted(child):
                setattr(parent, child_name, convert_one(child))
    return model


def convert(model: nn.Module) -> nn.Module:
    """Replace every `torch.nn.RNN/LSTM/GRU` inside `model` by rnnlab's equivalent, in place, and return the
    model (a bare torch.nn recurrent module is returned converted). Parameters are copied, so outputs,
    gradients and state_dict keys stay the same; `record_gradients(model)` and the diagnostics then see the real
    model with its real loss."""
    return _replace_children(model, from_torch, lambda m: isinstance(m, nn.RNN | nn.LSTM | nn.GRU))


def convert_back(model: nn.Module) -> nn.Module:
    """The reverse of `convert`: every rnnlab RNN/LSTM/GRU inside `model` back to torch.nn's, in place, and
    return the model (a bare rnnlab module is returned as a torch.nn copy, as `module.to_torch()`)."""
    return _replace_children(model, lambda m: m.to_torch(), lambda m: isinstance(m, RecurrentBase))


def to_torch(model: nn.Module) -> nn.Module:
    """Deprecated: `convert_back(model)`. The function converted in place while the method
    `module.to_torch()` returns a copy; the in-place one now has the in-place verb."""
    warnings.warn(
        "rnnlab.to_torch(model) is now rnnlab.convert_back(model) (it converts in place; module.to_torch() "
        "returns a copy); the old name will be removed",
        DeprecationWarning,
        stacklevel=2,
    )
    return convert_back(model)
