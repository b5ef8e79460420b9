"""torch's fused RNN ops for the forwards that record nothing: on a GPU, an rnnlab module runs as torch.nn does.

The engine's time loop exists for what torch's fused kernels cannot give: ∂L/∂h_t of every step (cuDNN runs the
whole sequence as one kernel, pytorch/pytorch#1407) and truncation inside one forward. On a GPU that loop is a
chain of small kernels per step, many times slower than cuDNN (pytorch/pytorch#31423 measures 15–30× for an
`LSTMCell` loop). So a forward that needs neither calls the op `torch.nn.RNN/LSTM/GRU` call
(`torch._VF.rnn_tanh / rnn_relu / lstm / gru`) with the module's parameters in torch.nn's order: the numbers
are torch.nn's, and so is the speed. The rule is `takes_fused`, and only there.

`RNNLAB_ENGINE` (read in `native.engine_choice`) switches it: `auto` (the default) takes the fused op on CUDA
only; `fused` on every device, the CPU included (how the tests reach it without a GPU); `cpp` and `python`
never (one path everywhere: the engine).

On the fused path the module has torch.nn's limits as well as its speed: with cuDNN, no backward with
`create_graph=True` (torch: "derivative for _cudnn_rnn_backward is not implemented"); such a user sets
`RNNLAB_ENGINE=cpp` (the engine everywhere) or disables cuDNN (`torch.backends.cudnn.flags(enabled=False)`).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence

from rnnlab.recurrent import native
from rnnlab.recurrent.cells import CELLS
from rnnlab.recurrent.validation import check_values, initial_state

#: cell name → (the `torch._VF` op torch.nn's module calls, the cuDNN mode torch.nn flattens its weights for).
#: A cell missing here (rnn_linear: torch has no linear RNN) always takes the engine.
FUSED_OPS: dict[str, tuple[str, str]] = {
    "rnn_tanh": ("rnn_tanh", "RNN_TANH"),
    "rnn_relu": ("rnn_relu", "RNN_RELU"),
    "lstm": ("lstm", "LSTM"),
    "gru": ("gru", "GRU"),
}

#: dtypes the fused op takes, per device type. On CUDA all four (cuDNN, or torch's CUDA kernels for
#: bfloat16); elsewhere float32 and float64 only: torch's CPU op computes float16/bfloat16 steps in that
#: precision, and rnnlab's modules promise those dtypes a float32 computation (`modules.py`).
FUSED_DTYPES: dict[str, frozenset[torch.dtype]] = {
    "cuda": frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64}),
}
OTHER_DEVICE_DTYPES = frozenset({torch.float32, torch.float64})


def device_takes_fused(choice: str, device: torch.device, dtype: torch.dtype) -> bool:
    """The device part of the rule: RNNLAB_ENGINE `choice` ('auto', 'fused', 'cpp' or 'python'), and whether
    torch's fused op computes `dtype` on `device` (`FUSED_DTYPES`)."""
    if choice == "fused" or (choice == "auto" and device.type == "cuda"):
        return dtype in FUSED_DTYPES.get(device.type, OTHER_DEVICE_DTYPES)
    return False


def takes_fused(module, input: Tensor | PackedSequence, recorder) -> bool:
    """Whether this forward runs torch's fused op instead of the engine. The rule, in full:

    a forward takes the fused op when it records nothing (`recorder` is None: no `record_gradients`, no
    monitor step that records, no diagnostics), has no truncation (`module.truncate` is None), uses only
    what the fused op has (a cell in `FUSED_OPS` — not nonlinearity='linear' nor a user's `Cell` — and a
    batch of at least one sequence), and RNNLAB_ENGINE allows it for the input's device and dtype
    (`device_takes_fused`: by default CUDA only). Every other forward takes the engine.

    **Arguments**: `input` the time-major (T, B, I) tensor (a view is fine) or a PackedSequence; `recorder`
    what the module reports its backward to (`module._recording`), or None.
    """
    choice = native.engine_choice()  # first: a wrong RNNLAB_ENGINE is an error on every forward, on any device
    if recorder is not None or module.truncate is not None:
        return False
    cell = module.cell
    if cell.name not in FUSED_OPS or CELLS.get(cell.name) is not cell:
        return False
    if isinstance(input, PackedSequence):
        data = input.data  # a PackedSequence always holds at least one sequence
    else:
        data = input
        if data.shape[1] == 0:  # an empty batch: the engine's empty_batch returns what torch.nn returns
            return False
    return device_takes_fused(choice, data.device, data.dtype)


def _op(module):
    """The `torch._VF` function for the module's cell, looked up at each call (as torch.nn does)."""
    return getattr(torch._VF, FUSED_OPS[module.cell.name][0])


def _train_and_dropout(module, tensors) -> tuple[bool, float]:
    """The op's `train` flag and dropout. torch.nn passes (module.training, module.dropout); so does this, but
    in eval mode a forward that autograd records asks for a training run without dropout: the same numbers,
    and cuDNN refuses the backward of a forward run with train=False ("cudnn RNN backward can only be called
    in training mode"), where the engine never did (an eval-mode input gradient, say)."""
    if module.training:
        return True, module.dropout
    graph = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    return graph, 0.0


def run_fused(module, x: Tensor, h0: Tensor, c0: Tensor | None):
    """x (T, B, I) time-major, h0 (L·D, B, S), c0 (L·D, B, H) or None (checked by the module) →
    (output (T, B, D·S), h_n (L·D, B, S), c_n (L·D, B, H) or None), by torch's fused op."""
    weights = module._flat_weights
    train, dropout = _train_and_dropout(module, [x, h0, c0, *weights])
    hx = h0 if c0 is None else (h0, c0)
    result = _op(module)(
        x, hx, weights, module.bias, module.num_layers, dropout, train, module.bidirectional, False
    )  # batch_first=False: x is time-major here (torch.nn transposes a batch-first input the same way)
    return result[0], result[1], result[2] if c0 is not None else None


def run_fused_packed(module, packed: PackedSequence, hx):
    """A PackedSequence forward as torch.nn.RNNBase runs it: the packed overload of the fused op on the data
    and batch sizes, hx permuted into the sorted order (`sorted_indices`) and h_n (c_n) back into the
    caller's (`unsorted_indices`). Returns (PackedSequence output, h_n), or (output, (h_n, c_n)) for an LSTM."""
    data = packed.data  # (N, I)
    check_values(module, data, "(N, I) packed data")
    batch = int(packed.batch_sizes[0])
    # initial_state reads only the batch size, dtype and device of its x: an empty (0, B, 0) stands in.
    h0, c0 = initial_state(module, hx, data.new_empty((0, batch, 0)), True)
    if packed.sorted_indices is not None:
        h0 = h0.index_select(1, packed.sorted_indices)
        c0 = None if c0 is None else c0.index_select(1, packed.sorted_indices)
    weights = module._flat_weights
    train, dropout = _train_and_dropout(module, [data, h0, c0, *weights])
    state = h0 if c0 is None else (h0, c0)
    result = _op(module)(
        data, packed.batch_sizes, state, weights, module.bias, module.num_layers, dropout, train, module.bidirectional
    )
    output = PackedSequence(result[0], packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
    finals = [result[1], result[2]] if c0 is not None else [result[1]]
    if packed.unsorted_indices is not None:
        finals = [f.index_select(1, packed.unsorted_indices) for f in finals]
    return (output, tuple(finals)) if c0 is not None else (output, finals[0])


def flatten_weights(module) -> None:
    """What torch.nn.RNNBase.flatten_parameters does: on CUDA with cuDNN, move the parameters into one
    contiguous buffer laid out as cuDNN wants it (each parameter becomes a view of it), so the fused op
    reads them in place; otherwise cuDNN copies them on every call and warns. A no-op unless every weight is
    a CUDA tensor cuDNN accepts, of one dtype, none aliasing another — as torch.nn, whose checks these are."""
    weights = module._flat_weights
    ops = FUSED_OPS.get(module.cell.name)
    first = weights[0]
    if ops is None or not all(
        w.dtype == first.dtype and w.is_cuda and torch.backends.cudnn.is_acceptable(w) for w in weights
    ):
        return
    if len({w.data_ptr() for w in weights}) != len(weights):
        return
    with torch.cuda.device_of(first):
        import torch.backends.cudnn.rnn as cudnn_rnn  # needs cuDNN's bindings: imported only where they exist

        with torch.no_grad():  # the flattening writes the parameters in place
            if torch._use_cudnn_rnn_flatten_weight():
                torch._cudnn_rnn_flatten_weight(
                    weights,
                    module.weights_per_layer,
                    module.input_size,
                    cudnn_rnn.get_cudnn_mode(ops[1]),
                    module.hidden_size,
                    module.proj_size,
                    module.num_layers,
                    module.batch_first,
                    module.bidirectional,
                )
