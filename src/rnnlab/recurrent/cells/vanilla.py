"""The Elman RNN cell: h_t = φ(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), φ ∈ {tanh, relu, identity}."""

from __future__ import annotations

from typing import ClassVar

import torch

from rnnlab.recurrent.cells.base import Cell, StepGrads


class VanillaCell(Cell):
    """Elman RNN (torch.nn.RNN's math), one gate block; 'linear' (φ = identity) is for closed-form work."""

    gates = 1
    torch_module = "RNN"

    native_kinds: ClassVar[dict[str, int]] = {"tanh": 0, "relu": 1, "linear": 2}  # _ext/bptt.cpp `kind` codes

    def __init__(self, nonlinearity: str):
        self.nonlinearity = nonlinearity
        self.name = f"rnn_{nonlinearity}"
        self.native_kind = self.native_kinds[nonlinearity]

    def step(self, x_pre, h, c, weight_hh, bias_h):
        pre = torch.addmm(x_pre, h, weight_hh.t())  # (B, H)
        if self.nonlinearity == "tanh":
            h_new = torch.tanh(pre)
        elif self.nonlinearity == "relu":
            h_new = torch.relu(pre)
        else:
            h_new = pre
        return h_new, None, h_new

    def step_backward(self, dh, dc, saved, h_prev, c_prev):
        h_new = saved
        if self.nonlinearity == "tanh":
            d_pre = dh * (1 - h_new * h_new)
        elif self.nonlinearity == "relu":
            d_pre = dh * (h_new > 0)
        else:
            d_pre = dh
        return StepGrads(d_pre, d_pre, None, None, None)
