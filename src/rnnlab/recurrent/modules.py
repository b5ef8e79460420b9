"""Drop-in `RNN`, `LSTM` and `GRU`: torch.nn's constructor, forward, parameter names, shapes and gate order.

A state_dict loads in both directions between rnnlab and torch.nn, and `from_torch` / `to_torch` convert
with identical numbers. The difference is inside: the time loop runs in rnnlab's explicit BPTT engine
(`rnnlab.recurrent.engine`), which can record ‖∂L/∂h_t‖ for every step and truncate the backward pass.

`RecurrentBase._run` is the one dispatcher: the fast path — one engine call for the whole stack — for
unidirectional modules on a padded tensor; several calls for bidirectional layers, `PackedSequence` input,
`dropout=1` in training and empty batches (`split_forward.py`); each call to `engine.run_stack`, or for an
LSTM with `proj_size > 0` to `projected.run_projected` (autograd's backward: the engine's has no projection).
A forward that records nothing and is not truncated runs torch's own fused op instead, as torch.nn — on
CUDA by default, everywhere with RNNLAB_ENGINE=fused (the rule: `fused.py`). Input checks: `validation.py`.
float16/bfloat16 compute in float32 on upcast copies (differentiable casts: gradients in the parameters' dtype).
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnlab.recurrent.cells import Cell, get_cell, is_table_cell
from rnnlab.recurrent.engine import StackSpec, run_stack
from rnnlab.recurrent.fused import flatten_weights, run_fused, run_fused_packed, takes_fused
from rnnlab.recurrent.projected import run_projected
from rnnlab.recurrent.split_forward import empty_batch, forward_packed, needs_split, run_packed, run_split
from rnnlab.recurrent.validation import (
    check_input,
    check_module_arguments,
    check_nonlinearity,
    initial_state,
    positive_int,
)

#: dtypes the engine does not compute in: the module runs in float32 on upcast copies (see the module doc).
LOW_PRECISION = (torch.float16, torch.bfloat16)


class RecurrentBase(nn.Module):
    """Shared parameters, input checks, the dispatcher and conversions of every recurrent module; by itself a
    module for any cell of the table (`make_recurrent` builds it for the cells without a torch.nn class).

    Parameters per layer k, registered in torch.nn's order: ``weight_ih_l{k}`` (G·H, I or D·S),
    ``weight_hh_l{k}`` (G·H, S), with ``bias=True`` ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (G·H,), and for an
    LSTM with proj_size = P > 0 ``weight_hr_l{k}`` (P, H); S = `state_size` (P, or H without a projection). A
    cell with an element-wise recurrence has ``weight_hh_l{k}`` (G·H,), one whose coefficients depend on x_t
    only has none, and a cell with one bias has no ``bias_hh_l{k}`` (`Cell.parameter_names`).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        truncate: int | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        sizes = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers}
        check_module_arguments(name, cell, sizes, bias, batch_first, dropout, proj_size)
        self.cell: Cell = get_cell(cell)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)  # torch.nn accepts any truthy value here too
        self.proj_size = proj_size
        self.truncate = truncate
        # (GradientRecorder, qualified name) while inside rnnlab.record_gradients, else None
        self._recording = None
        self._register_weights(device, dtype)
        self.reset_parameters()
        self.flatten_parameters()  # as torch.nn: a module built on a GPU starts with cuDNN's layout

    def _register_weights(self, device, dtype) -> None:
        """Every layer's and direction's parameters, empty, in torch.nn's order (per layer, forward first)."""
        factory = {"device": device, "dtype": dtype}
        state = self.state_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else state * self.num_directions
            for suffix in ("", "_reverse")[: self.num_directions]:
                tag = f"l{layer}{suffix}"
                for kind in self.cell.parameter_names(self.bias):  # what this cell has, in torch.nn's order
                    shape = self.cell.parameter_shape(kind, self.hidden_size, layer_input, state)
                    self.register_parameter(f"{kind}_{tag}", nn.Parameter(torch.empty(shape, **factory)))
                if self.proj_size:
                    self.register_parameter(f"weight_hr_{tag}", nn.Parameter(torch.empty(self.proj_size, self.hidden_size, **factory)))  # fmt: skip

    # ------------------------------------------------------------------------------------------ properties

    @property
    def truncate(self) -> int | None:
        """Truncated BPTT inside one forward: ∂L_s/∂h_t is kept only for s − t < truncate (None: full)."""
        return self._truncate

    @truncate.setter
    def truncate(self, value: int | None) -> None:
        self._truncate = positive_int(value, "truncate", type(self).__name__, allow_none=True)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> int:
        """Features of h_t per direction: `proj_size` for an LSTM with a projection, else `hidden_size`
        (the cell state c_t always has hidden_size)."""
        return self.proj_size or self.hidden_size

    @property
    def weights_per_layer(self) -> int:
        """Parameters per layer and direction: w_ih, w_hh[, b_ih, b_hh][, w_hr], less what the cell lacks."""
        return len(self.cell.parameter_names(self.bias)) + (1 if self.proj_size else 0)

    @property
    def _flat_weights_names(self) -> list[str]:
        """The parameter names in torch.nn's order: per layer, per direction, w_ih, w_hh[, b_ih, b_hh][, w_hr]
        (a cell without a recurrent weight or a second bias has none: `Cell.parameter_names`)."""
        kinds = self.cell.parameter_names(self.bias) + (("weight_hr",) if self.proj_size else ())
        suffixes = ("", "_reverse")[: self.num_directions]
        return [f"{k}_l{layer}{sfx}" for layer in range(self.num_layers) for sfx in suffixes for k in kinds]

    @property
    def _flat_weights(self) -> list[nn.Parameter]:
        """The parameters in torch.nn's order (as `torch.nn.RNNBase._flat_weights`), read afresh on each access
        so that a replaced parameter is always seen."""
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        """Per layer and direction, the parameters in torch.nn's order (as `torch.nn.RNNBase.all_weights`)."""
        per_layer = self.weights_per_layer
        flat = self._flat_weights
        return [flat[i : i + per_layer] for i in range(0, len(flat), per_layer)]

    def flatten_parameters(self) -> None:
        """As torch.nn: on CUDA with cuDNN, the weights move into one contiguous buffer in cuDNN's layout, which
        the fused op of unrecorded forwards reads in place (`fused.flatten_weights`); elsewhere a no-op."""
        flatten_weights(self)

    def _apply(self, fn, recurse=True):
        result = super()._apply(fn, recurse)
        self.flatten_parameters()  # .to(cuda), .half(), …: fresh weight tensors, flattened again as torch.nn does
        return result

    def reset_parameters(self) -> None:
        """torch.nn's default: every weight and bias U(−1/√H, 1/√H), drawn in the same order from the global
        RNG, so `torch.manual_seed(s)` gives the same weights as the torch.nn module would."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.cell.torch_module == "RNN":
            s += f", nonlinearity={self.cell.nonlinearity!r}"
        elif self.cell.torch_module is None:
            s += f", cell={self.cell.name!r}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        if self.truncate is not None:
            s += f", truncate={self.truncate}"
        return s

    # ------------------------------------------------------------------------------------------ recording

    @property
    def recording(self) -> tuple | None:
        """What the next forwards report their backward to: (GradientRecorder, qualified name), or None."""
        return self._recording

    def attach_recording(self, recording: tuple | None) -> None:
        """Set what the next forwards report their backward to: (GradientRecorder, qualified name), or None.

        Written past nn.Module.__setattr__ (whose checks for parameters, buffers and submodules do not apply to
        this value): through it, each set made the next training step ~7 µs slower (measured at T=35, B=1,
        H=32, a ~450 µs step), and recording sets it twice per step."""
        object.__setattr__(self, "_recording", recording)

    # ------------------------------------------------------------------------------------------ forward

    def forward(self, input: Tensor | PackedSequence, hx=None):
        """Same contract as torch.nn: input (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I), or
        a `PackedSequence` (sorted or not).

        hx: h0 (L·D, B, H) — for LSTM a tuple (h0, c0) — or (L·D, H) when unbatched; zeros when omitted
        (D = 2 for bidirectional modules, rows ordered layer by layer, forward direction first).
        Returns (output, h_n) — for LSTM (output, (h_n, c_n)) — with output (T, B, D·H) / (B, T, D·H) /
        (T, D·H), or a PackedSequence for packed input; h_n (L·D, B, H), each sequence's state at its own
        last step for packed input.
        """
        if isinstance(input, PackedSequence):
            if takes_fused(self, input, self._recording):  # nothing recorded: torch's fused op (fused.py)
                return run_fused_packed(self, input, hx)
            return forward_packed(self, input, hx)
        x, batched = check_input(self, input)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        x = x.contiguous()  # (T, B, I): the engine is time-major
        h0, c0 = initial_state(self, hx, x, batched)
        if takes_fused(self, x, self._recording):  # nothing recorded: torch's fused op (fused.py)
            output, h_n, c_n = run_fused(self, x, h0, c0)
        else:
            output, h_n, c_n = self._run(x, h0, c0)
        if self.batch_first and batched:
            output = output.transpose(0, 1)
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return (output, (h_n, c_n)) if self.cell.has_cell_state else (output, h_n)

    def _run(self, x: Tensor, h0: Tensor, c0: Tensor | None, lengths: Tensor | None = None):
        """The dispatcher: x (T, B, I) time-major, h0 / c0 (L·D, B, H) → (output (T, B, D·H), h_n, c_n) by one
        engine call where it can (the fast path), else by the split paths. `lengths` (B,) for PackedSequence
        input (output beyond each length: zeros)."""
        weights = self._flat_weights
        low = weights[0].dtype in LOW_PRECISION
        if low:
            # The engine computes in float32 (and float64); half-precision steps would lose the gradient
            # long before it vanishes for real. The casts are differentiable, so the weights' gradients
            # arrive in their own dtype.
            dtype = weights[0].dtype
            x, h0 = x.float(), h0.float()
            c0 = None if c0 is None else c0.float()
            weights = [w.float() for w in weights]
        recorder, name = self._recording or (None, type(self).__name__)
        spec = self._spec()
        run = run_projected if self.proj_size else run_stack  # the engine's backward has no projection
        if x.shape[1] == 0:
            output, h_n, c_n = empty_batch(x, h0, c0, weights, self.num_directions * self.state_size)
        elif lengths is not None:
            output, h_n, c_n = run_packed(run, spec, self.num_directions, x, h0, c0, weights, lengths, recorder, name)
        elif needs_split(spec, self.num_directions):
            output, h_n, c_n = run_split(run, spec, self.num_directions, x, h0, c0, weights, recorder, name)
        else:
            output, h_n, c_n = run(spec, x, h0, c0, weights, recorder, name)
        if low:
            output, h_n = output.to(dtype), h_n.to(dtype)
            c_n = None if c_n is None else c_n.to(dtype)
        return output, h_n, c_n

    def _spec(self) -> StackSpec:
        return StackSpec(
            cell=self.cell,
            num_layers=self.num_layers,
            bias=self.bias,
            dropout=self.dropout,
            training=self.training,
            truncate=self.truncate,
            proj_size=self.proj_size,
        )

    # ------------------------------------------------------------------------------------------ conversion

    def to_torch(self) -> nn.Module:
        """An equivalent `torch.nn.RNN/LSTM/GRU` with a copy of these parameters (this module is untouched)."""
        if self.cell.torch_module is None or self.cell.name == "rnn_linear":
            raise ValueError(
                f"{type(self).__name__}: cell {self.cell.name!r} has no torch.nn equivalent (torch: RNN with tanh "
                "or relu, LSTM, GRU)"
            )
        param = self.weight_ih_l0
        kwargs = {
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "device": param.device,
            "dtype": param.dtype,
        }
        if self.cell.nonlinearity is not None:
            kwargs["nonlinearity"] = self.cell.nonlinearity
        if self.proj_size:
            kwargs["proj_size"] = self.proj_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the dropout warning was already given here
            module = getattr(nn, self.cell.torch_module)(self.input_size, self.hidden_size, **kwargs)
        module.load_state_dict(self.state_dict())
        module.train(self.training)
        return module

    # ------------------------------------------------------------------------------------------ saving

    def __getstate__(self):
        # A table cell is saved by its name and loads back as the table's own instance (the one the compiled
        # loop serves), not as a copy; a user's Cell subclass is saved as it is.
        state = self.__dict__.copy()
        if is_table_cell(self.cell):
            state["cell"] = self.cell.name
        return state

    def __setstate__(self, state) -> None:
        if isinstance(state.get("cell"), str):
            state = {**state, "cell": get_cell(state["cell"])}
        super().__setstate__(state)
        self.flatten_parameters()  # a module unpickled onto a GPU, as torch.nn


class RNN(RecurrentBase):
    """Elman RNN, drop-in for `torch.nn.RNN`; `nonlinearity` may also be 'linear' (for closed-form work)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        proj_size: int = 0,
        truncate: int | None = None,
    ):
        check_nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(
            f"rnn_{nonlinearity}",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
            truncate=truncate,
        )


class LSTM(RecurrentBase):
    """LSTM, drop-in for `torch.nn.LSTM` (gate order i, f, g, o). With `proj_size` = P > 0 the state h_t is
    projected to P features, h_t = (o ⊙ tanh(c_t)) W_hrᵀ, as in torch.nn; that stack's backward is autograd's
    through the steps (`projected.py`), not the engine's."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        truncate: int | None = None,
    ):
        super().__init__(
            "lstm",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
            truncate=truncate,
        )


class GRU(RecurrentBase):
    """GRU, drop-in for `torch.nn.GRU` (gate order r, z, n)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        proj_size: int = 0,
        truncate: int | None = None,
    ):
        super().__init__(
            "gru",
            input_size,
            hidden_size,
            num_layers,
            bias,
            batch_first,
            dropout,
            bidirectional,
            proj_size,
            device,
            dtype,
            truncate=truncate,
        )


class Recurrent(RecurrentBase):
    """A recurrent module for any cell of the table, by name: `Recurrent("gru", 3, 8)` computes what
    `rnnlab.GRU(3, 8)` does. `make_recurrent` builds one for the cells that have no torch.nn class."""


MODULES = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}  # rnnlab's module for each torch.nn class name


def register_safe_globals(*classes) -> None:
    """Let `torch.load(weights_only=True)` — PyTorch's default — load whole saved rnnlab modules of these
    classes: they are plain data holders, safe to allow (a module saves its cell by name; `get_cell` restores
    the cells of modules saved before that)."""
    serialization = getattr(torch, "serialization", None)
    if serialization is not None and hasattr(serialization, "add_safe_globals"):  # torch ≥ 2.4
        serialization.add_safe_globals([*classes, get_cell])


register_safe_globals(RNN, LSTM, GRU, Recurrent)
