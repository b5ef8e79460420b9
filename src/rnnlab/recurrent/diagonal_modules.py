"""`IndRNN`, `MinGRU` and `MinLSTM`: the modules of the element-wise cells (`cells/diagonal.py`), constructed
like `rnnlab.RNN` and returning (output, h_n), with each paper's own options and initialisation.

They run in rnnlab's engine like every table cell (recording, truncation, the diagnostics, the monitor); no
torch.nn class computes them, so there is no fused op and no `to_torch`. IndRNN runs the engine's compiled time
loop (`_ext/kernels/rnn.cpp`: the ReLU RNN's kernel with a diagonal recurrence; the Python loop where there is no
extension), minGRU and minLSTM the chunked scan (`scan.py`) or, with `scan=False`, the Python loop.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import nn

from rnnlab.recurrent.modules import RecurrentBase, register_safe_globals


def _positive_number(value, name: str, where: str, *, allow_none: bool = False) -> float | None:
    """`value` as a float if it is a finite number > 0 (or None where allowed), else a one-line ValueError."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        expected = "a finite number > 0" + (" or None" if allow_none else "")
        raise ValueError(f"{where}: {name} must be {expected}, got {value!r}")
    return float(value)


class _InputLinear(RecurrentBase):
    """The element-wise cells' input projection is the authors' `nn.Linear`: weight_ih and bias_ih drawn as
    torch.nn.Linear draws them, U(−1/√fan_in, 1/√fan_in) with fan_in the layer's input size."""

    def reset_parameters(self) -> None:
        for name, weight in self.named_parameters():
            if name.startswith(("weight_ih", "bias_ih")):
                fan_in = getattr(self, name.replace("bias_ih", "weight_ih")).shape[1]
                bound = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(weight, -bound, bound)


class IndRNN(_InputLinear):
    """IndRNN (Li et al. 2018): h_t = ReLU(x_t W_ihᵀ + b_ih + u ⊙ h_{t−1}), one recurrent weight per unit,
    u = ``weight_hh_l{k}`` (H,). Parameters per layer: weight_ih (H, I), weight_hh (H,), bias_ih (H,).

    **Arguments** (besides `rnnlab.RNN`'s): `recurrent_max_abs` — the paper's constraint |u| ≤ bound, applied
    as the authors' code applies it: u is clamped to [−bound, bound] before every forward (their training loop
    calls ``clip_weight(model, U_bound)`` before ``model(inputs)``), so every forward computes with a bounded u
    and the optimiser's step can pull an entry back inside. Their README: the bound is ``MAG ** (1 / T)``
    (`magnitude_bound`, MAG = 2, 5 or 10) for long sequences, or "can always set to [-1, 1]" — the default
    here; None: unconstrained (their script's default without ``--constrain_U``). `recurrent_init_max` — u is
    drawn U(0, recurrent_init_max) (their ``uniform_(0, U_bound)``; 1 is their cell's own default).

    Initialisation as their code: u as above, weight_ih as their input `nn.Linear` (U(±1/√I)), bias 0.
    """

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
        recurrent_max_abs: float | None = 1.0,
        recurrent_init_max: float = 1.0,
        truncate: int | None = None,
    ):
        self.recurrent_max_abs = _positive_number(recurrent_max_abs, "recurrent_max_abs", "IndRNN", allow_none=True)
        self.recurrent_init_max = _positive_number(recurrent_init_max, "recurrent_init_max", "IndRNN")
        super().__init__(
            "indrnn", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device,
            dtype, truncate=truncate,
        )  # fmt: skip

    @staticmethod
    def magnitude_bound(magnitude: float, seq_len: int) -> float:
        """The paper's bound MAG^(1/T): a unit that stays active may grow its gradient by at most MAG over T
        steps (their ``U_bound = 10 ** (log10(MAG) / seq_len)``)."""
        _positive_number(magnitude, "magnitude", "IndRNN.magnitude_bound")
        _positive_number(seq_len, "seq_len", "IndRNN.magnitude_bound")
        return float(magnitude) ** (1.0 / seq_len)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():
            for name, weight in self.named_parameters():
                if name.startswith("weight_hh"):
                    nn.init.uniform_(weight, 0.0, self.recurrent_init_max)
                elif name.startswith("bias"):
                    weight.zero_()
        self.constrain_()

    @torch.no_grad()
    def constrain_(self) -> None:
        """Clamp every u to [−recurrent_max_abs, recurrent_max_abs] in place (nothing when unconstrained). Only
        a u that is outside is written: an in-place write would otherwise invalidate the graph of an earlier
        forward whose backward has not run yet."""
        if self.recurrent_max_abs is None:
            return
        for name, weight in self.named_parameters():
            if name.startswith("weight_hh") and weight.abs().max() > self.recurrent_max_abs:
                weight.clamp_(-self.recurrent_max_abs, self.recurrent_max_abs)

    def forward(self, input, hx=None):
        """As `rnnlab.RNN.forward`, after `constrain_` (the authors' code clamps u before every forward)."""
        self.constrain_()
        return super().forward(input, hx)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", recurrent_max_abs={self.recurrent_max_abs}"


class _Scanned(_InputLinear):
    """A module whose layers can run as one parallel scan each (`scan.py`) instead of the step-by-step loop:
    `scan=True` (the default) in the forward and its full backward; a truncated backward walks the loop."""

    def _check_scan(self, scan) -> bool:
        if not isinstance(scan, bool):
            raise TypeError(f"{type(self).__name__}: scan must be True or False, got {scan!r}")
        return scan

    def _spec(self):
        return replace(super()._spec(), scan=self.scan)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.scan else ", scan=False")


class MinGRU(_Scanned):
    """minGRU (Feng et al. 2024): z_t = σ(k_z), h̃_t = g(k_h) from x_t only, (k_h, k_z) = x_t W_ihᵀ + b_ih;
        h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t, g(k) = k + ½ (k ≥ 0), σ(k) (k < 0) as the authors' code.
        Parameters per layer: weight_ih (2H, I) with blocks (h̃, z) in the code's order, bias_ih (2H,); no
        recurrent weight. Initialisation: the authors' `nn.Linear` (U(±1/√I)). `scan` (default True): each layer
    runs as one chunked scan (`scan.py`; the authors train with a log-space scan, slower on CPU), else the
    step-by-step loop. Their
    block around the cell
        (expansion factor, output projection, learned h0) is the model's business, not the recurrence's: pass h0
        as `hx`."""

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
        scan: bool = True,
        truncate: int | None = None,
    ):
        self.scan = self._check_scan(scan)
        super().__init__(
            "mingru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device,
            dtype, truncate=truncate,
        )  # fmt: skip


class MinLSTM(_Scanned):
    """minLSTM (Feng et al. 2024): f_t = σ(k_f), i_t = σ(k_i), h̃_t = g(k_h) from x_t only, (k_h, k_f, k_i) =
    x_t W_ihᵀ + b_ih; with `normalize` (the default, the code's use_coeff_norm) f′, i′ = f, i / (f + i);
    h_t = f′_t ⊙ h_{t−1} + i′_t ⊙ h̃_t. Parameters per layer: weight_ih (3H, I) with blocks (h̃, f, i) in the
    code's order, bias_ih (3H,). `forget_bias` is added to the forget block of bias_ih after the `nn.Linear`
    draw, as the code's forget_bias_init_scale (0: none added, the code's default None). `scan` as `MinGRU`'s."""

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
        normalize: bool = True,
        forget_bias: float = 0.0,
        scan: bool = True,
        truncate: int | None = None,
    ):
        self.scan = self._check_scan(scan)
        if not isinstance(normalize, bool):
            raise TypeError(f"MinLSTM: normalize must be True or False, got {normalize!r}")
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, int | float) or not math.isfinite(forget_bias):
            raise ValueError(f"MinLSTM: forget_bias must be a finite number, got {forget_bias!r}")
        if forget_bias and not bias:
            raise ValueError(f"MinLSTM: forget_bias={forget_bias!r} sets a bias, but bias=False")
        self.normalize = normalize
        self.forget_bias = float(forget_bias)
        cell = "minlstm" if normalize else "minlstm_unnormalized"
        super().__init__(
            cell, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device,
            dtype, truncate=truncate,
        )  # fmt: skip

    def reset_parameters(self) -> None:
        super().reset_parameters()
        hidden = self.hidden_size
        with torch.no_grad():
            for name, weight in self.named_parameters():
                if name.startswith("bias_ih"):
                    weight[hidden : 2 * hidden] += self.forget_bias

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", forget_bias={self.forget_bias}" if self.forget_bias else "")


#: The module of each element-wise cell by its table name, for `make_recurrent` (keyword options the
#: cell's name implies are given here).
CELL_MODULES = {
    "indrnn": (IndRNN, {}),
    "mingru": (MinGRU, {}),
    "minlstm": (MinLSTM, {}),
    "minlstm_unnormalized": (MinLSTM, {"normalize": False}),
}


register_safe_globals(IndRNN, MinGRU, MinLSTM)
