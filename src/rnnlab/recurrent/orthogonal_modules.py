"""`ExpRNN`: the module of the orthogonal cell (`cells/orthogonal.py`), constructed like `rnnlab.RNN` and returning
(output, h_n), with the recurrent matrix kept orthogonal by the exponential map (Lezcano-Casado & Martínez-Rubio
2019, github Lezcano/expRNN).

The trained parameter is A's free entries (``skew_weight_hh_l{k}``); the recurrent matrix W_hh = exp(A) is
computed from it once per forward (`torch.linalg.matrix_exp`) and handed to the engine as an ordinary weight_hh,
so the engine's backward returns ∂L/∂W_hh and autograd carries it back to A through matrix_exp. There is no
torch.nn parametrization in the way (pytorch/pytorch#65688: one on `nn.LSTM` weights can silently stop them
training); `tests/test_exprnn.py` checks that A changes under an optimiser and that W_hh stays orthogonal.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnlab.recurrent import init
from rnnlab.recurrent.modules import LOW_PRECISION, RecurrentBase, register_safe_globals

#: ExpRNN's initialisations of A, the `skew_init` option, each an init scheme of `rnnlab.init` (the copy script's
#: `--init` choices; "henaff" its default).
SKEW_INITS = {"henaff": init.exprnn_henaff, "cayley": init.exprnn_cayley}


def orthogonal_matrix(skew_weight: Tensor) -> Tensor:
    """W_hh = exp(A), A = U − Uᵀ with U the strict upper triangle of `skew_weight` (H, H) (the authors'
    ``A.triu(diagonal=1); A - A.t()``): A is skew-symmetric, so exp(A) is orthogonal with determinant 1."""
    if skew_weight.dim() != 2 or skew_weight.shape[0] != skew_weight.shape[1]:
        raise ValueError(f"ExpRNN: A must be a square (H, H) matrix, got shape {tuple(skew_weight.shape)}")
    upper = skew_weight.triu(diagonal=1)
    return torch.linalg.matrix_exp(upper - upper.t())  # (H, H)


class ExpRNN(RecurrentBase):
    """ExpRNN (Lezcano-Casado & Martínez-Rubio 2019): h_t = modReLU(W_ih x_t + exp(A) h_{t−1}), A skew-symmetric,
    modReLU(z) = sign(z) ⊙ ReLU(|z| + b) with one b per unit.

    Parameters per layer k (and ``_reverse`` direction): ``weight_ih_l{k}`` (H, I) the input layer, without a bias
    as the authors' (``nn.Linear(..., bias=False)``); ``skew_weight_hh_l{k}`` (H, H), whose strict upper triangle
    holds A's free entries (the rest of the tensor is unused and gets a zero gradient); with ``bias=True``
    ``bias_hh_l{k}`` (H,) modReLU's b (``bias=False``: b = 0, modReLU is the identity and the layer a linear
    orthogonal RNN). ``weight_hh_l{k}`` is not a parameter: reading it computes exp(A) (H, H), as the diagnostics do.

    **Arguments** (besides `rnnlab.RNN`'s, without `nonlinearity`): `skew_init` — A's initialisation, "henaff"
    (the authors' copy-task default: rotations by θ ~ U(−π, π) in planes of two units; `rnnlab.init`'s
    `exprnn_henaff`) or "cayley" (`exprnn_cayley`); the rest as their code: weight_ih N(0, 2 / fan_in), b ~
    U(−0.01, 0.01). The authors train A with a learning rate 10× smaller than the other weights': build the
    optimiser with `ExpRNN.parameter_groups`.
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
        skew_init: str = "henaff",
        truncate: int | None = None,
    ):
        if not isinstance(skew_init, str) or skew_init not in SKEW_INITS:
            raise ValueError(f"ExpRNN: skew_init must be one of {', '.join(map(repr, SKEW_INITS))}, got {skew_init!r}")
        self.skew_init = skew_init
        super().__init__(
            "exprnn", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0, device,
            dtype, truncate=truncate,
        )  # fmt: skip

    def _register_weights(self, device, dtype) -> None:
        """weight_ih (H, I), skew_weight_hh (H, H) in weight_hh's place, bias_hh (H,): per layer, forward first."""
        factory = {"device": device, "dtype": dtype}
        hidden = self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else hidden * self.num_directions
            for suffix in ("", "_reverse")[: self.num_directions]:
                tag = f"l{layer}{suffix}"
                self.register_parameter(f"weight_ih_{tag}", nn.Parameter(torch.empty(hidden, layer_input, **factory)))
                self.register_parameter(f"skew_weight_hh_{tag}", nn.Parameter(torch.empty(hidden, hidden, **factory)))
                if self.bias:
                    self.register_parameter(f"bias_hh_{tag}", nn.Parameter(torch.empty(hidden, **factory)))

    def reset_parameters(self) -> None:
        SKEW_INITS[self.skew_init](self)

    def flatten_parameters(self) -> None:
        """A no-op: no fused op computes ExpRNN, so there is no cuDNN layout to keep."""

    @property
    def _flat_weights(self) -> list[Tensor]:
        """The engine's weights in the cell's order (weight_ih, weight_hh[, bias_hh]) per layer and direction, with
        weight_hh = exp(A) computed here, once per forward, inside autograd's graph (so A gets its gradient). For
        float16/bfloat16 parameters exp(A) is computed in float32, as the engine computes the steps (`_run`): in
        half precision W_hh would leave the orthogonal group by ~1e-3 at every forward."""
        weights = []
        for name in self._flat_weights_names:
            if name.startswith("weight_hh"):
                skew = getattr(self, "skew_" + name)
                weights.append(orthogonal_matrix(skew.float() if skew.dtype in LOW_PRECISION else skew))
            else:
                weights.append(getattr(self, name))
        return weights

    def __getattr__(self, name: str):
        # weight_hh_l{k}: the computed exp(A), for every reader of a module's recurrent matrix (the diagnostics'
        # spectral radius, init's layer walk); the parameters themselves are nn.Module's business.
        if name.startswith("weight_hh_l"):
            return orthogonal_matrix(super().__getattr__("skew_" + name))
        return super().__getattr__(name)

    @staticmethod
    def parameter_groups(model: nn.Module, lr: float, orthogonal_lr: float) -> list[dict]:
        """The optimiser's parameter groups for a model holding ExpRNN layers, as the authors train it (their
        copy script: RMSprop, lr 2e-4 for the other weights and 2e-5 for A; their README: "the learning rate of
        the non-orthogonal parameters to be 10 times that of the orthogonal parameters"):
        ``torch.optim.RMSprop(ExpRNN.parameter_groups(model, 2e-4, 2e-5))``.

        **Returns** [{"params": every other parameter, "lr": lr}, {"params": every ExpRNN's A, "lr": orthogonal_lr}].
        """
        for value, what in ((lr, "lr"), (orthogonal_lr, "orthogonal_lr")):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(f"ExpRNN.parameter_groups: {what} must be a finite number > 0, got {value!r}")
        skew = [
            p
            for m in model.modules()
            if isinstance(m, ExpRNN)
            for n, p in m.named_parameters(recurse=False)
            if n.startswith("skew_weight_hh")
        ]
        if not skew:
            raise ValueError(f"ExpRNN.parameter_groups: {type(model).__name__} holds no ExpRNN layer")
        others = [p for p in model.parameters() if all(p is not s for s in skew)]
        return [{"params": others, "lr": float(lr)}, {"params": skew, "lr": float(orthogonal_lr)}]

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", skew_init={self.skew_init!r}" if self.skew_init != "henaff" else "")


#: The module of the orthogonal cells by table name, for `make_recurrent`.
CELL_MODULES = {"exprnn": (ExpRNN, {})}

register_safe_globals(ExpRNN)
