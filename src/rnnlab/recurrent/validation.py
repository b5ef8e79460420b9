"""Argument and input checks: one-line errors that name what was wrong and what was expected.

`positive_int` is the one check of a positive-integer argument that every layer of rnnlab uses. The rest checks
what a recurrent module is given — its constructor's arguments, its input and its initial states — with
torch.nn's error types and, inside rnnlab's own sentence, torch.nn's own words (`torch_words`), so that code
and tests written against torch.nn's messages (PyTorch's own test suite among them) keep working with rnnlab.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor

NONLINEARITIES = ("tanh", "relu", "linear")  # torch.nn.RNN's two, and 'linear' for closed-form work


class RecurrentInputError(ValueError, RuntimeError):
    """A wrong shape, size or device of an input or state: torch.nn raises RuntimeError for these, rnnlab
    raised ValueError; this class is both, so callers written against either keep working."""


class RecurrentDtypeError(TypeError, ValueError):
    """An input or state whose dtype is not the parameters': torch.nn raises ValueError, rnnlab TypeError."""


class RecurrentArgumentError(ValueError, TypeError):
    """A size argument that is not an integer: torch.nn raises TypeError, rnnlab raised ValueError."""


def torch_words(sentence: str, phrase: str) -> str:
    """rnnlab's sentence with torch.nn's message for the same mistake appended verbatim, so a regular
    expression written for torch.nn's message matches rnnlab's too."""
    return f"{sentence} (torch.nn: {phrase})"


def positive_int(value, name: str, where: str = "", *, allow_none: bool = False) -> int | None:
    """`value` if it is an int ≥ 1 (or None where `allow_none`), else a ValueError naming `name`, e.g.
    "monitor: every must be a positive integer, got 0" (`where` is the prefix before the colon). A bool is
    refused: True is an int to Python, but never a size or a count."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        prefix = f"{where}: " if where else ""
        expected = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"{prefix}{name} must be {expected}, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------ constructor


def check_module_arguments(
    name: str, cell: str, sizes: dict[str, object], bias, batch_first, dropout, proj_size
) -> None:
    """torch.nn.RNNBase.__init__'s checks, error types and warning; `sizes` holds input_size, hidden_size and
    num_layers. Where rnnlab raised another type before, the error class derives from both."""
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout <= 1:
        raise ValueError(
            torch_words(
                f"{name}: dropout must be a number in [0, 1], got {dropout!r}",
                "dropout should be a number in range [0, 1] representing the probability of an element being zeroed",
            )
        )
    for arg, value in (("bias", bias), ("batch_first", batch_first)):
        if not isinstance(value, bool):
            phrase = f"{arg} should be of type bool, got: {type(value).__name__}"
            raise TypeError(torch_words(f"{name}: {arg} must be True or False, got {value!r}", phrase))
    for arg, value in sizes.items():
        sentence = f"{name}: {arg} must be a positive integer, got {value!r}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecurrentArgumentError(torch_words(sentence, f"{arg} should be of type int, got: {type(value).__name__}"))  # fmt: skip
        if value < 1:
            raise ValueError(torch_words(sentence, f"{arg} must be greater than zero"))
    _check_projection(name, cell, proj_size, sizes["hidden_size"])
    if dropout > 0 and sizes["num_layers"] == 1:
        # torch.nn warns the same way: dropout only acts between layers. (stacklevel: the module's __init__)
        warnings.warn(
            f"{name}: dropout={dropout} has no effect with num_layers=1 (it is applied between layers)",
            UserWarning,
            stacklevel=3,
        )


def _check_projection(name: str, cell: str, proj_size, hidden_size: int) -> None:
    if isinstance(proj_size, bool) or not isinstance(proj_size, int):
        raise RecurrentArgumentError(f"{name}: proj_size must be an integer, got {proj_size!r}")
    if proj_size < 0:
        raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections")
    if proj_size >= hidden_size:
        raise ValueError(f"{name}: proj_size has to be smaller than hidden_size (got {proj_size} >= {hidden_size})")
    if proj_size and cell != "lstm":
        raise ValueError(f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU")


def check_nonlinearity(nonlinearity) -> None:
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(
            torch_words(
                f"RNN: unknown nonlinearity {nonlinearity!r}; choose from: {', '.join(NONLINEARITIES)}",
                f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.",
            )
        )


# ------------------------------------------------------------------------------------------------ forward


def all_finite(t: Tensor) -> bool:
    """Whether every value of t is finite. The sum is one pass (isfinite is three, ~1 % of a training step at
    the fastrnns shape) and is non-finite whenever a value is; finite values can also overflow it, so only
    then is each value checked. The sum is tested in Python: a tensor isfinite on it is two more dispatches
    (5.4 against 1.9 µs, ~1 % of a small training step)."""
    return math.isfinite(t.sum().item()) or bool(torch.isfinite(t).all())


def first_parameter(module) -> Tensor:
    """The module's first own parameter (weight_ih_l0 of torch.nn's layout, nu_log_l0 of an LRU): its dtype and
    device are the module's. Read from the ordered dict directly: this runs on every forward."""
    return next(iter(module._parameters.values()))


def check_input(module, input) -> tuple[Tensor, bool]:
    """Validate a module's tensor input and return it as (T, B, I) or (B, T, I), and whether it was batched."""
    name = type(module).__name__
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}: input must be a torch.Tensor, got {type(input).__name__}")
    layout = "(B, T, I)" if module.batch_first else "(T, B, I)"
    if input.dim() not in (2, 3):
        raise ValueError(
            torch_words(
                f"{name}: input must be 3-D {layout} or 2-D (T, I) unbatched, got shape {tuple(input.shape)}",
                _torch_dims_phrase(module, input.dim()),
            )
        )
    check_values(module, input, layout)
    batched = input.dim() == 3
    x = input if batched else input.unsqueeze(1)  # unbatched (T, I) → (T, 1, I)
    steps = x.shape[1] if module.batch_first and batched else x.shape[0]
    if steps == 0:
        raise RecurrentInputError(
            torch_words(
                f"{name}: input is an empty sequence (0 time steps, shape {tuple(input.shape)})",
                "Expected sequence length to be larger than 0 in RNN",
            )
        )
    return x, batched


def _torch_dims_phrase(module, dims: int) -> str:
    kind = module.cell.torch_module or type(module).__name__
    tensor = " tensor" if kind == "RNN" else ""  # torch.nn.RNN's wording differs from LSTM's and GRU's here
    return f"{kind}: Expected input to be 2D or 3D, got {dims}D{tensor} instead"


def check_values(module, input: Tensor, layout: str) -> None:
    """The input's dtype, device, feature size and values (of a tensor or a PackedSequence's data)."""
    name = type(module).__name__
    param = first_parameter(module)
    if input.dtype != param.dtype:
        raise RecurrentDtypeError(
            torch_words(
                f"{name}: input dtype {input.dtype} does not match the parameters' {param.dtype}",
                f"RNN input dtype ({input.dtype}) does not match weight dtype ({param.dtype}). "
                f"Convert input: input.to({param.dtype}), or convert model: model.to({input.dtype})",
            )
        )
    if input.device != param.device:
        raise RecurrentInputError(f"{name}: input is on {input.device} but the parameters are on {param.device}")
    if input.shape[-1] != module.input_size:
        raise RecurrentInputError(
            torch_words(
                f"{name}: input has {input.shape[-1]} features per step, expected input_size={module.input_size} "
                f"(input shape {tuple(input.shape)}, layout {layout})",
                f"input.size(-1) must be equal to input_size. Expected {module.input_size}, got {input.shape[-1]}",
            )
        )
    if not all_finite(input):
        # A NaN or Inf input would silently poison every later step and every gradient.
        bad = int((~torch.isfinite(input)).sum())
        raise ValueError(f"{name}: input contains {bad} NaN or infinite value(s); expected finite numbers")


def initial_state(module, hx, x: Tensor, batched: bool) -> tuple[Tensor, Tensor | None]:
    """A module's h0 (and c0 for cells with a cell state) as (L·D, B, ·), zeros where hx is None."""
    name = type(module).__name__
    batch = x.shape[1]
    rows = module.num_layers * module.num_directions
    if hx is None:
        zeros = x.new_zeros((rows, batch, module.state_size))
        return zeros, (x.new_zeros((rows, batch, module.hidden_size)) if module.cell.has_cell_state else None)
    if module.cell.has_cell_state:
        if not (isinstance(hx, tuple | list) and len(hx) == 2):
            raise TypeError(f"{name}: hx must be a tuple (h0, c0), got {type(hx).__name__}")
        return check_state(module, hx[0], "h0", batch, batched), check_state(module, hx[1], "c0", batch, batched)
    return check_state(module, hx, "h0", batch, batched), None


def check_state(module, state, what: str, batch: int, batched: bool) -> Tensor:
    """One initial state ('h0' or 'c0'): its type, shape, dtype, values and device; returned as (L·D, B, ·)."""
    name = type(module).__name__
    if not isinstance(state, Tensor):
        raise TypeError(f"{name}: {what} must be a torch.Tensor, got {type(state).__name__}")
    _check_state_shape(module, state, what, batch, batched)
    param = first_parameter(module)
    if state.dtype != param.dtype:
        raise RecurrentDtypeError(f"{name}: {what} dtype {state.dtype} does not match the parameters' {param.dtype}")
    if not all_finite(state):
        raise ValueError(f"{name}: {what} contains NaN or infinite values; expected finite numbers")
    if state.device != param.device:
        raise RecurrentInputError(f"{name}: {what} is on {state.device} but the parameters are on {param.device}")
    return state if batched else state.unsqueeze(1)


def _check_state_shape(module, state: Tensor, what: str, batch: int, batched: bool) -> None:
    rows = module.num_layers * module.num_directions
    layers = "num_layers * 2" if module.bidirectional else "num_layers"
    if what == "h0" and module.proj_size:
        size, size_name = module.state_size, "proj_size"
    else:
        size, size_name = module.hidden_size, "hidden_size"
    expected = (rows, batch, size) if batched else (rows, size)
    if tuple(state.shape) == expected:
        return
    axes = f"({layers}, batch, {size_name})" if batched else f"({layers}, {size_name})"
    dims = 3 if batched else 2
    if state.dim() != dims:
        kind = "batched 3-D" if batched else "unbatched 2-D"
        phrase = f"For {kind} input, hx should also be {dims}-D but got {state.dim()}-D tensor"
    else:  # torch.nn's forward names the LSTM's states hidden[0] and hidden[1], and compares the batched shape
        label = {"h0": "hidden[0]", "c0": "hidden[1]"}[what] if module.cell.has_cell_state else "hidden"
        shown = list(state.shape) if batched else [state.shape[0], 1, state.shape[1]]
        phrase = f"Expected {label} size {(rows, batch, size)}, got {shown}"
    message = f"{type(module).__name__}: {what} has shape {tuple(state.shape)}, expected {expected} {axes}"
    raise RecurrentInputError(torch_words(message, phrase))
