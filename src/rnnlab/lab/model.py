"""Sequence models for the tasks: an input layer, an rnnlab recurrent stack, and a linear readout."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnlab.recurrent.convert import make_recurrent
from rnnlab.recurrent.modules import RecurrentBase


class SequenceModel(nn.Module):
    """Embedding (symbol inputs) or identity (real inputs) → rnnlab RNN/LSTM/GRU → linear readout.

    **Arguments**: `cell`, `input_size` (features, or vocabulary size when `symbols`), `hidden_size`,
    `output_size`, `readout` ("last": one prediction per sequence, from the last step; "every": one per
    step), `num_layers`, `dropout` (between layers), `truncate` (engine-level truncated BPTT), `readout_std`
    (None: torch.nn.Linear's own init; σ > 0: readout weight N(0, σ²) and bias 0, drawn from the global RNG
    after the layers' default init — Le et al.'s IRNN uses 0.001, Pascanu et al.'s smart tanh 0.01),
    `cell_options` (the cell module's own keyword options, e.g. coRNN's dt, gamma, epsilon),
    `learn_initial_state` (h_0, and c_0 for an LSTM, as parameters `h0` / `c0` (num_layers, 1, H), zero at first,
    used for every sequence when no state is given: the models of Arjovsky et al.'s code), `readout_init`
    ("xavier_uniform": the readout weight Glorot-uniform U(±√(6/(H+O))) and bias 0, as their code's out_mat;
    drawn like readout_std, after nn.Linear's own init).
    Symbols are one-hot encoded (an embedding with the identity matrix would be the same thing), so the
    recurrent layer sees exactly the inputs the task defines and no extra learnable parameters.

    forward(x (B, T, I) float or (B, T) int64, state=None) → (prediction, state), prediction (B, O) for
    "last" and (B, T, O) for "every"; `state` is the recurrent module's (h_n or (h_n, c_n)).
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        output_size: int,
        readout: str = "last",
        symbols: bool = False,
        num_layers: int = 1,
        dropout: float = 0.0,
        truncate: int | None = None,
        readout_std: float | None = None,
        cell_options: dict | None = None,
        learn_initial_state: bool = False,
        readout_init: str = "default",
    ):
        super().__init__()
        if readout not in ("last", "every"):
            raise ValueError(f"readout must be 'last' or 'every', got {readout!r}")
        if readout_std is not None and not (math.isfinite(readout_std) and readout_std > 0):
            raise ValueError(f"readout_std must be None (torch's default init) or a number > 0, got {readout_std!r}")
        if readout_init not in ("default", "xavier_uniform"):
            raise ValueError(f"readout_init must be 'default' or 'xavier_uniform', got {readout_init!r}")
        self.symbols, self.readout_mode, self.vocabulary = symbols, readout, input_size
        self.rnn: RecurrentBase = make_recurrent(
            cell,
            input_size,
            hidden_size,
            num_layers,
            batch_first=True,
            dropout=dropout,
            truncate=truncate,
            **(cell_options or {}),
        )
        self.readout = nn.Linear(hidden_size, output_size)
        if readout_std is not None:
            # Drawn after nn.Linear's own init, so a model without readout_std draws exactly what it always did.
            with torch.no_grad():
                nn.init.normal_(self.readout.weight, 0.0, readout_std)
                nn.init.zeros_(self.readout.bias)
        if readout_init == "xavier_uniform":  # the uRNN code's out_mat: U(±√(6/(H+O))), out_bias 0
            with torch.no_grad():
                nn.init.xavier_uniform_(self.readout.weight)
                nn.init.zeros_(self.readout.bias)
        self.h0 = self.c0 = None
        if learn_initial_state:
            self.h0 = nn.Parameter(torch.zeros(num_layers, 1, hidden_size))
            if self.rnn.cell.has_cell_state:
                self.c0 = nn.Parameter(torch.zeros(num_layers, 1, hidden_size))

    def encode(self, x: Tensor) -> Tensor:
        """What the recurrent stack reads: symbols (B, T) int64 → one-hot (B, T, V); real inputs unchanged."""
        if self.symbols:
            return nn.functional.one_hot(x, self.vocabulary).to(self.readout.weight.dtype)  # (B, T, V)
        return x

    def read(self, output: Tensor) -> Tensor:
        """The prediction from the recurrent stack's output (B, T, H): (B, O) for "last", (B, T, O) for "every"."""
        return self.readout(output[:, -1] if self.readout_mode == "last" else output)

    def initial_state(self, batch: int):
        """The learned initial state expanded over a batch (h, or (h, c)); None without `learn_initial_state`."""
        if self.h0 is None:
            return None
        h = self.h0.expand(-1, batch, -1).contiguous()
        return h if self.c0 is None else (h, self.c0.expand(-1, batch, -1).contiguous())

    def forward(self, x: Tensor, state=None):
        if state is None:
            state = self.initial_state(x.shape[0])
        output, state = self.rnn(self.encode(x), state)  # (B, T, H)
        return self.read(output), state
