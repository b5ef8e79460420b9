"""Drop-in `RNN`, `LSTM` and `GRU`: torch.nn's constructor, forward, parameter names, shapes and gate order.

A state_dict loads in both directions between rnnlab and torch.nn, and `from_torch` / `to_torch` convert
with identical numbers. The difference is inside: the time loop runs in rnnlab's explicit BPTT engine
(`rnnlab.recurrent.engine`), which can record ‖∂L/∂h_t‖ for every step and truncate the backward pass.

A forward that records nothing and is not truncated runs torch's own fused op instead, as torch.nn would —
on CUDA by default, on every device with RNNLAB_ENGINE=fused (`fused.py`, where the rule is written).
Two ways through the engine: the fast path — one engine call for the whole stack — for unidirectional
modules on a padded tensor; and several engine calls for bidirectional layers, `PackedSequence` input,
`dropout=1` in training and empty batches (`split_forward.py`). An LSTM with `proj_size > 0` runs its stacks in
`projected.py` (autograd's backward: the engine's has no projection).
float16 and bfloat16 modules compute in float32 on upcast copies of the weights and inputs (the casts are
part of the graph, so gradients arrive in the parameters' dtype) and cast the results back — in the engine,
and on CPU; on CUDA an unrecorded forward computes as torch.nn's does (cuDNN).
"""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from rnnlab.recurrent.cells import Cell, get_cell
from rnnlab.recurrent.engine import StackSpec, run_stack
from rnnlab.recurrent.fused import flatten_weights, run_fused, run_fused_packed, takes_fused
from rnnlab.recurrent.split_forward import empty_batch, forward_packed, run_packed, run_split, split_recording

NONLINEARITIES = ("tanh", "relu", "linear")
#: dtypes the engine does not compute in: the module runs in float32 on upcast copies (see the module doc).
LOW_PRECISION = (torch.float16, torch.bfloat16)


class RecurrentInputError(ValueError, RuntimeError):
    """A wrong shape, size or device of an input or state: torch.nn raises RuntimeError for these, rnnlab
    raised ValueError; this class is both, so callers written against either keep working."""


class RecurrentDtypeError(TypeError, ValueError):
    """An input or state whose dtype is not the parameters': torch.nn raises ValueError, rnnlab TypeError."""


class RecurrentArgumentError(ValueError, TypeError):
    """A size argument that is not an integer: torch.nn raises TypeError, rnnlab raised ValueError."""


def _all_finite(t: Tensor) -> bool:
    """Whether every value of t is finite. The sum is one pass (isfinite is three, ~1 % of a training step at
    the fastrnns shape) and is non-finite whenever a value is; finite values can also overflow it, so only
    then is each value checked. The sum is tested in Python: a tensor isfinite on it is two more dispatches
    (5.4 against 1.9 µs, ~1 % of a small training step)."""
    return math.isfinite(t.sum().item()) or bool(torch.isfinite(t).all())


class RecurrentBase(nn.Module):
    """Shared parameters, input checks and conversions of the three module kinds.

    Parameters per layer k, registered in torch.nn's order: ``weight_ih_l{k}`` (G·H, I or D·S),
    ``weight_hh_l{k}`` (G·H, S), with ``bias=True`` ``bias_ih_l{k}`` and ``bias_hh_l{k}`` (G·H,), and for an
    LSTM with proj_size = P > 0 ``weight_hr_l{k}`` (P, H); S = `state_size` (P, or H without a projection).
    """

    _kind: ClassVar[str]  # "RNN", "LSTM" or "GRU": the torch.nn class this one mirrors

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
        # torch.nn's checks and error types (torch.nn.RNNBase.__init__); where rnnlab raised another type
        # before, the error class derives from both.
        if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        for arg, value in (("bias", bias), ("batch_first", batch_first)):
            if not isinstance(value, bool):
                raise TypeError(f"{name}: {arg} must be True or False, got {value!r} ({type(value).__name__})")
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise RecurrentArgumentError(f"{name}: {arg} must be a positive integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        if isinstance(proj_size, bool) or not isinstance(proj_size, int):
            raise RecurrentArgumentError(f"{name}: proj_size must be an integer, got {proj_size!r}")
        if proj_size < 0:
            raise ValueError(f"{name}: proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size has to be smaller than hidden_size (got {proj_size} >= {hidden_size})")
        if proj_size and cell != "lstm":
            raise ValueError(f"{name}: proj_size argument is only supported for LSTM, not RNN or GRU")
        if dropout > 0 and num_layers == 1:
            # torch.nn warns the same way: dropout only acts between layers.
            warnings.warn(
                f"{name}: dropout={dropout} has no effect with num_layers=1 (it is applied between layers)",
                UserWarning,
                stacklevel=2,
            )
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

        factory = {"device": device, "dtype": dtype}
        gate_size = self.cell.gates * hidden_size
        state = self.state_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else state * self.num_directions
            for suffix in ("", "_reverse")[: self.num_directions]:  # torch.nn's order: per layer, forward first
                tag = f"l{layer}{suffix}"
                self.register_parameter(f"weight_ih_{tag}", nn.Parameter(torch.empty(gate_size, layer_input, **factory)))  # fmt: skip
                self.register_parameter(f"weight_hh_{tag}", nn.Parameter(torch.empty(gate_size, state, **factory)))
                if bias:
                    self.register_parameter(f"bias_ih_{tag}", nn.Parameter(torch.empty(gate_size, **factory)))
                    self.register_parameter(f"bias_hh_{tag}", nn.Parameter(torch.empty(gate_size, **factory)))
                if proj_size:
                    self.register_parameter(f"weight_hr_{tag}", nn.Parameter(torch.empty(proj_size, hidden_size, **factory)))  # fmt: skip
        self.reset_parameters()
        self.flatten_parameters()  # as torch.nn: a module built on a GPU starts with cuDNN's layout

    # ------------------------------------------------------------------------------------------ properties

    @property
    def truncate(self) -> int | None:
        """Truncated BPTT inside one forward: ∂L_s/∂h_t is kept only for s − t < truncate (None: full)."""
        return self._truncate

    @truncate.setter
    def truncate(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{type(self).__name__}: truncate must be a positive integer or None, got {value!r}")
        self._truncate = value

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
        """Parameters per layer and direction: w_ih, w_hh[, b_ih, b_hh][, w_hr]."""
        return (4 if self.bias else 2) + (1 if self.proj_size else 0)

    @property
    def _flat_weights_names(self) -> list[str]:
        """The parameter names in torch.nn's order: per layer, per direction, w_ih, w_hh[, b_ih, b_hh][, w_hr]."""
        kinds = ("weight_ih", "weight_hh", "bias_ih", "bias_hh") if self.bias else ("weight_ih", "weight_hh")
        kinds += ("weight_hr",) if self.proj_size else ()
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

    def __setstate__(self, state):
        super().__setstate__(state)
        self.flatten_parameters()  # a module unpickled onto a GPU, as torch.nn

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
        if self._kind == "RNN":
            s += f", nonlinearity={self.nonlinearity!r}"
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
        x, batched = self._check_input(input)
        if self.batch_first and batched:
            x = x.transpose(0, 1)
        h0, c0 = self._initial_state(hx, x, batched)
        if takes_fused(self, x, self._recording):  # nothing recorded: torch's fused op (fused.py)
            output, h_n, c_n = run_fused(self, x, h0, c0)
        else:
            output, h_n, c_n = self._run(x.contiguous(), h0, c0)  # (T, B, I): the engine is time-major
        if self.batch_first and batched:
            output = output.transpose(0, 1)
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if c_n is not None else None
        return (output, (h_n, c_n)) if self.cell.has_cell_state else (output, h_n)

    def _run(self, x: Tensor, h0: Tensor, c0: Tensor | None, lengths: Tensor | None = None):
        """x (T, B, I) time-major, h0 / c0 (L·D, B, H) → (output (T, B, D·H), h_n, c_n), by the fast path
        where it applies. `lengths` (B,) for PackedSequence input (output beyond each length: zeros)."""
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
        recorder, record_name = self._recording or (None, type(self).__name__)
        if x.shape[1] == 0:
            output, h_n, c_n = empty_batch(self, x, h0, c0, weights)
        elif lengths is not None:
            output, h_n, c_n = run_packed(self, x, h0, c0, weights, lengths, recorder, record_name)
        elif self.bidirectional or (self.training and self.dropout == 1 and self.num_layers > 1):
            split = None
            if recorder is not None:
                split = split_recording(recorder, record_name, self, x.shape[0])
            output, h_n, c_n = run_split(self, x, h0, c0, weights, split, None, x.shape[1])
        else:
            output, h_n, c_n = run_stack(self._spec(), x, h0, c0, weights, recorder, record_name)
        if low:
            output, h_n = output.to(dtype), h_n.to(dtype)
            c_n = None if c_n is None else c_n.to(dtype)
        return output, h_n, c_n

    def _spec(self, num_layers: int | None = None, dropout: float | None = None) -> StackSpec:
        return StackSpec(
            cell=self.cell,
            num_layers=self.num_layers if num_layers is None else num_layers,
            bias=self.bias,
            dropout=self.dropout if dropout is None else dropout,
            training=self.training,
            truncate=self.truncate,
            proj_size=self.proj_size,
        )

    def _check_input(self, input) -> tuple[Tensor, bool]:
        """Validate the input and return it as (T, B, I) or (B, T, I), and whether it was batched."""
        name = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{name}: input must be a torch.Tensor, got {type(input).__name__}")
        layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
        if input.dim() not in (2, 3):
            raise ValueError(
                f"{name}: input must be 3-D {layout} or 2-D (T, I) unbatched, got shape {tuple(input.shape)}"
            )
        self._check_values(input, name, layout)
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)  # unbatched (T, I) → (T, 1, I)
        steps = x.shape[1] if self.batch_first and batched else x.shape[0]
        if steps == 0:
            raise RecurrentInputError(f"{name}: input is an empty sequence (0 time steps, shape {tuple(input.shape)})")
        return x, batched

    def _check_values(self, input: Tensor, name: str, layout: str) -> None:
        """The input's dtype, device, feature size and values (for a tensor or a PackedSequence's data)."""
        param = self.weight_ih_l0
        if input.dtype != param.dtype:
            raise RecurrentDtypeError(
                f"{name}: input dtype {input.dtype} does not match the parameters' {param.dtype}; "
                f"convert one of them (e.g. input.to({param.dtype}))"
            )
        if input.device != param.device:
            raise RecurrentInputError(f"{name}: input is on {input.device} but the parameters are on {param.device}")
        if input.shape[-1] != self.input_size:
            raise RecurrentInputError(
                f"{name}: input has {input.shape[-1]} features per step, expected input_size={self.input_size} "
                f"(input shape {tuple(input.shape)}, layout {layout})"
            )
        if not _all_finite(input):
            # A NaN or Inf input would silently poison every later step and every gradient.
            bad = int((~torch.isfinite(input)).sum())
            raise ValueError(f"{name}: input contains {bad} NaN or infinite value(s); expected finite numbers")

    def _initial_state(self, hx, x: Tensor, batched: bool) -> tuple[Tensor, Tensor | None]:
        """Return h0 (and c0 for LSTMs) as (L, B, H), zeros where hx is None."""
        name = type(self).__name__
        batch = x.shape[1]
        rows = self.num_layers * self.num_directions
        if hx is None:
            zeros = x.new_zeros((rows, batch, self.state_size))
            return zeros, (x.new_zeros((rows, batch, self.hidden_size)) if self.cell.has_cell_state else None)
        if self.cell.has_cell_state:
            if not (isinstance(hx, tuple | list) and len(hx) == 2):
                raise TypeError(f"{name}: hx must be a tuple (h0, c0), got {type(hx).__name__}")
            return self._check_state(hx[0], "h0", batch, batched), self._check_state(hx[1], "c0", batch, batched)
        return self._check_state(hx, "h0", batch, batched), None

    def _check_state(self, state, what: str, batch: int, batched: bool) -> Tensor:
        name = type(self).__name__
        if not isinstance(state, Tensor):
            raise TypeError(f"{name}: {what} must be a torch.Tensor, got {type(state).__name__}")
        rows = self.num_layers * self.num_directions
        layers = "num_layers * 2" if self.bidirectional else "num_layers"
        size, size_name = (self.state_size, "proj_size") if what == "h0" and self.proj_size else (self.hidden_size, "hidden_size")  # fmt: skip
        expected = (rows, batch, size) if batched else (rows, size)
        if tuple(state.shape) != expected:
            raise RecurrentInputError(
                f"{name}: {what} has shape {tuple(state.shape)}, expected {expected} ({layers}, batch, {size_name})"
                if batched
                else f"{name}: {what} has shape {tuple(state.shape)}, expected {expected} ({layers}, {size_name})"
            )
        param = self.weight_ih_l0
        if state.dtype != param.dtype:
            raise RecurrentDtypeError(
                f"{name}: {what} dtype {state.dtype} does not match the parameters' {param.dtype}"
            )
        if not _all_finite(state):
            raise ValueError(f"{name}: {what} contains NaN or infinite values; expected finite numbers")
        if state.device != param.device:
            raise RecurrentInputError(f"{name}: {what} is on {state.device} but the parameters are on {param.device}")
        return state if batched else state.unsqueeze(1)

    # ------------------------------------------------------------------------------------------ conversion

    def to_torch(self) -> nn.Module:
        """An equivalent `torch.nn.RNN/LSTM/GRU` with a copy of these parameters."""
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
        if self._kind == "RNN":
            if self.nonlinearity == "linear":
                raise ValueError("RNN: nonlinearity='linear' has no torch.nn equivalent (torch: tanh or relu)")
            kwargs["nonlinearity"] = self.nonlinearity
        if self.proj_size:
            kwargs["proj_size"] = self.proj_size
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the dropout warning was already given here
            module = getattr(nn, self._kind)(self.input_size, self.hidden_size, **kwargs)
        module.load_state_dict(self.state_dict())
        module.train(self.training)
        return module


class RNN(RecurrentBase):
    """Elman RNN, drop-in for `torch.nn.RNN`; `nonlinearity` may also be 'linear' (for closed-form work)."""

    _kind = "RNN"

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
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r}; choose from: {', '.join(NONLINEARITIES)}")
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

    _kind = "LSTM"

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

    _kind = "GRU"

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


MODULES = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}  # rnnlab's module for each torch.nn class name


def _register_safe_globals() -> None:
    """Let `torch.load(weights_only=True)` — PyTorch's default — load whole saved rnnlab modules: the classes
    (and the cell lookup that restores a module's cell) are plain data holders, safe to allow."""
    serialization = getattr(torch, "serialization", None)
    if serialization is not None and hasattr(serialization, "add_safe_globals"):  # torch ≥ 2.4
        serialization.add_safe_globals([RNN, LSTM, GRU, get_cell])


_register_safe_globals()
