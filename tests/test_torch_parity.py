"""PyTorch's own RNN/LSTM/GRU tests, run twice: against torch.nn and against rnnlab's modules.

A representative port of the module-level RNN tests of PyTorch's `test/test_nn.py` (test_rnn_args_check,
test_rnn_initial_hidden_state, test_RNN_nonlinearity, test_RNN_nonlinearity_passed_as_arg,
test_variable_sequence, test_RNN_change_dropout, test_RNN_dropout, test_rnn_retain_variables,
test_RNN_input_size_zero, test_rnn_weight_norm, the dropout warning) and of the RNN ModuleInfo checks of
`test/test_modules.py` (unbatched input, factory kwargs, `.to`, pickling, state_dict round trip,
non-contiguous input, gradcheck and gradgradcheck), rewritten for pytest on CPU. The checks were written
from what those tests check, not compared line by line with PyTorch's current source (it was not read in
this session), so an equal count here is a strong sign, not proof, that PyTorch's own suite would pass.
The LSTM `proj_size` tests (test_projections_lstm_args_check, test_projections_lstm_initial_hidden_state,
test_projections_errors_on_gru_and_rnn, and the LSTM ModuleInfo's proj_size inputs) are ported the same way.
Each test takes `family`, the namespace that provides RNN/LSTM/GRU. Not ported: cell tests (`nn.RNNCell` &
co., which rnnlab does not replace), cuDNN-only tests. Run: `.venv/bin/pytest tests/test_torch_parity.py`.
"""

import copy
import io
import pickle
import re
import warnings

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import rnnlab

FAMILIES = {"torch.nn": nn, "rnnlab": rnnlab}
MODES = ["RNN", "LSTM", "GRU"]


@pytest.fixture(params=list(FAMILIES))
def family(request):
    return FAMILIES[request.param]


def _hidden(mode, shape, dtype=torch.float64):
    h = torch.randn(shape, dtype=dtype)
    return (h, torch.randn(shape, dtype=dtype)) if mode == "LSTM" else h


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_rnn_args_check(family, mode, bidirectional):
    """Wrong input size, hidden batch, hidden layers or hidden size: RuntimeError (test_nn.py)."""
    input_size, hidden_size, num_layers, seq_len, batch = 3, 5, 2, 7, 6
    directions = 2 if bidirectional else 1
    module = getattr(family, mode)(input_size, hidden_size, num_layers, bidirectional=bidirectional).double()
    good_hidden = (num_layers * directions, batch, hidden_size)
    bad_cases = [
        (torch.randn(seq_len, batch, input_size + 1, dtype=torch.float64), good_hidden),  # input size
        (
            torch.randn(seq_len, batch, input_size, dtype=torch.float64),
            (num_layers * directions, batch + 1, hidden_size),
        ),
        (
            torch.randn(seq_len, batch, input_size, dtype=torch.float64),
            (num_layers * directions + 1, batch, hidden_size),
        ),
        (
            torch.randn(seq_len, batch, input_size, dtype=torch.float64),
            (num_layers * directions, batch, hidden_size + 1),
        ),
    ]
    for x, hidden_shape in bad_cases:
        with pytest.raises(RuntimeError):
            module(x, _hidden(mode, hidden_shape))
    output, _ = module(torch.randn(seq_len, batch, input_size, dtype=torch.float64), _hidden(mode, good_hidden))
    assert output.shape == (seq_len, batch, directions * hidden_size)


@pytest.mark.parametrize("mode", MODES)
def test_rnn_initial_hidden_state(family, mode):
    """Omitting hx is the same as passing zeros."""
    torch.manual_seed(0)
    module = getattr(family, mode)(30, 20, 2).double()
    x = torch.randn(10, 32, 30, dtype=torch.float64)
    zeros = torch.zeros(2, 32, 20, dtype=torch.float64)
    hx = (zeros, zeros) if mode == "LSTM" else zeros
    out_default, hidden_default = module(x)
    out_zeros, hidden_zeros = module(x, hx)
    torch.testing.assert_close(out_default, out_zeros, rtol=0, atol=0)
    torch.testing.assert_close(hidden_default, hidden_zeros, rtol=0, atol=0)


def test_RNN_nonlinearity(family):
    assert family.RNN(1, 10).nonlinearity == "tanh"
    assert family.RNN(1, 10, nonlinearity="relu").nonlinearity == "relu"
    with pytest.raises(ValueError, match="nonlinearity"):
        family.RNN(1, 10, nonlinearity="garbage")


def test_RNN_nonlinearity_passed_as_arg(family):
    assert family.RNN(1, 10, 1, "relu").nonlinearity == "relu"


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_variable_sequence(family, mode, bidirectional):
    """A packed batch gives each sequence the output, final state and gradients of running it alone."""
    torch.manual_seed(0)
    lengths = [10, 10, 6, 2, 2, 1, 1]
    module = getattr(family, mode)(3, 4, num_layers=2, bidirectional=bidirectional).double()
    x = torch.randn(max(lengths), len(lengths), 3, dtype=torch.float64, requires_grad=True)
    packed_out, packed_hidden = module(pack_padded_sequence(x, lengths))
    padded, _ = pad_packed_sequence(packed_out)
    grad_out = torch.randn_like(padded)
    for i, length in enumerate(lengths):
        assert (padded[length:, i] == 0).all()
    (padded * grad_out).sum().backward()
    packed_grads = [p.grad.clone() for p in module.parameters()]
    x_grad = x.grad.clone()
    module.zero_grad()
    x.grad = None
    total = 0
    for i, length in enumerate(lengths):
        seq_out, seq_hidden = module(x[:length, i : i + 1])
        torch.testing.assert_close(seq_out, padded[:length, i : i + 1], rtol=1e-10, atol=1e-12)
        h_packed = packed_hidden[0] if mode == "LSTM" else packed_hidden
        h_seq = seq_hidden[0] if mode == "LSTM" else seq_hidden
        torch.testing.assert_close(h_seq, h_packed[:, i : i + 1], rtol=1e-10, atol=1e-12)
        total = total + (seq_out * grad_out[:length, i : i + 1]).sum()
    total.backward()
    for a, b in zip(packed_grads, module.parameters(), strict=True):
        torch.testing.assert_close(a, b.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x_grad, x.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.276, 0.5, 1.0])
def test_RNN_change_dropout(family, p):
    """All-ones weights and inputs, ReLU, no bias: layer 2's output is 100 · (kept units) / (1 − p)."""
    module = family.RNN(100, 100, 2, bias=False, dropout=p, nonlinearity="relu").double()
    with torch.no_grad():
        for w in module.parameters():
            w.fill_(1)
    module.train()
    x = torch.ones(1, 1, 100, dtype=torch.float64)
    for _ in range(3):
        output, hidden = module(x)
        if p == 0:
            assert (output == 10000).all()
        elif p == 1:
            assert (output == 0).all()
        else:
            kept = output[0, 0, 0] * (1 - p) / 100
            assert torch.isclose(kept, kept.round(), atol=1e-6) and 0 <= kept <= 100
            assert (output == output[0, 0, 0]).all(), "every unit of layer 2 sums the same dropped inputs"
        assert (hidden[0] == 100).all(), "layer 1 sees no dropout"
    module.eval()
    output, _ = module(x)
    assert (output == 10000).all(), "no dropout in eval mode"


@pytest.mark.parametrize("mode", MODES)
def test_RNN_dropout_warning(family, mode):
    with pytest.warns(UserWarning):
        getattr(family, mode)(3, 4, num_layers=1, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(family, mode)(3, 4, num_layers=2, dropout=0.2)


@pytest.mark.parametrize("mode", MODES)
def test_rnn_retain_variables(family, mode):
    """Backward twice through one graph (retain_graph) gives the same gradients."""
    torch.manual_seed(0)
    module = getattr(family, mode)(10, 20, num_layers=2).double()
    x = torch.randn(5, 6, 10, dtype=torch.float64, requires_grad=True)
    output = module(x)
    output[0].sum().backward(retain_graph=True)
    grads = [x.grad.clone()] + [p.grad.clone() for p in module.parameters()]
    for _ in range(2):
        module.zero_grad()
        x.grad = None
        output[0].sum().backward(retain_graph=True)
        again = [x.grad] + [p.grad for p in module.parameters()]
        for a, b in zip(grads, again, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_RNN_input_size_zero(family, mode):
    with pytest.raises(ValueError, match="input_size must be"):
        getattr(family, mode)(input_size=0, hidden_size=10)


@pytest.mark.parametrize("mode", MODES)
def test_rnn_weight_norm(family, mode):
    """weight_norm replaces weight_hh_l0 by weight_hh_l0_g/_v; the forward must use the recomputed weight."""
    torch.manual_seed(0)
    module = getattr(family, mode)(5, 6, num_layers=2).double()
    before = len(list(module.parameters()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm is deprecated
        module = nn.utils.weight_norm(module, name="weight_hh_l0")
    assert len(list(module.parameters())) == before + 1
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    output, _ = module(x)
    output.sum().backward()
    assert module.weight_hh_l0_g.grad is not None and module.weight_hh_l0_v.grad is not None
    with torch.no_grad():
        module.weight_hh_l0_g.mul_(2)  # a different norm must change the output
    assert not torch.allclose(module(x)[0], output)


# ------------------------------------------------------------------------------------------------ projections


@pytest.mark.parametrize("bidirectional", [False, True])
def test_projections_lstm_args_check(family, bidirectional):
    """LSTM with proj_size: h0 has proj_size features, c0 hidden_size; any other shape is a RuntimeError."""
    input_size, hidden_size, proj_size, num_layers, seq_len, batch = 3, 5, 2, 2, 7, 6
    rows = num_layers * (2 if bidirectional else 1)
    module = family.LSTM(input_size, hidden_size, num_layers, bidirectional=bidirectional, proj_size=proj_size)
    module = module.double()
    x = torch.randn(seq_len, batch, input_size, dtype=torch.float64)
    good_h, good_c = (rows, batch, proj_size), (rows, batch, hidden_size)
    bad_cases = [
        (torch.randn(seq_len, batch, input_size + 1, dtype=torch.float64), good_h, good_c),  # input size
        (x, (rows, batch + 1, proj_size), good_c),  # h0 batch
        (x, (rows + 1, batch, proj_size), good_c),  # h0 layers
        (x, (rows, batch, hidden_size), good_c),  # h0 of hidden_size, not proj_size
        (x, good_h, (rows, batch, proj_size)),  # c0 of proj_size, not hidden_size
        (x, good_h, (rows, batch + 1, hidden_size)),  # c0 batch
    ]
    for inp, h_shape, c_shape in bad_cases:
        with pytest.raises(RuntimeError):
            module(inp, (torch.randn(h_shape, dtype=torch.float64), torch.randn(c_shape, dtype=torch.float64)))
    output, (h_n, c_n) = module(x, (torch.randn(good_h, dtype=torch.float64), torch.randn(good_c, dtype=torch.float64)))
    assert output.shape == (seq_len, batch, (rows // num_layers) * proj_size)
    assert h_n.shape == good_h and c_n.shape == good_c


@pytest.mark.parametrize("bidirectional", [False, True])
def test_projections_lstm_initial_hidden_state(family, bidirectional):
    """Omitting hx is the same as zeros of the projected size for h0 and hidden_size for c0."""
    torch.manual_seed(0)
    rows = 2 * (2 if bidirectional else 1)
    module = family.LSTM(30, 20, 2, bidirectional=bidirectional, proj_size=10).double()
    x = torch.randn(10, 32, 30, dtype=torch.float64)
    hx = (torch.zeros(rows, 32, 10, dtype=torch.float64), torch.zeros(rows, 32, 20, dtype=torch.float64))
    out_default, (h_default, c_default) = module(x)
    out_zeros, (h_zeros, c_zeros) = module(x, hx)
    for a, b in ((out_default, out_zeros), (h_default, h_zeros), (c_default, c_zeros)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
def test_projections_errors_on_gru_and_rnn(family, mode):
    with pytest.raises(ValueError, match="proj_size argument is only supported for LSTM, not RNN or GRU"):
        getattr(family, mode)(3, 5, proj_size=2)


def test_projections_lstm_pickle_and_gradgradcheck(family):
    """The LSTM ModuleInfo's proj_size inputs: pickling keeps the numbers; gradcheck and gradgradcheck pass."""
    torch.manual_seed(0)
    module = family.LSTM(2, 3, num_layers=2, proj_size=2).double()
    x = torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True)
    expected, _ = module(x)
    for copied in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        torch.testing.assert_close(copied(x)[0], expected, rtol=0, atol=0)
    names = list(dict(module.named_parameters()))

    def run(inp, *params):
        with torch.nn.utils.stateless._reparametrize_module(module, dict(zip(names, params, strict=True))):
            output, _ = module(inp)
        return output

    inputs = (x, *module.parameters())
    assert gradcheck(run, inputs)
    assert gradgradcheck(run, inputs)


# ------------------------------------------------------------------------------------------------ ModuleInfo


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_unbatched_input_equals_a_batch_of_one(family, mode, bidirectional):
    torch.manual_seed(0)
    module = getattr(family, mode)(3, 4, num_layers=2, bidirectional=bidirectional).double()
    x = torch.randn(5, 3, dtype=torch.float64)
    out, hidden = module(x)
    out_batched, hidden_batched = module(x.unsqueeze(1))
    torch.testing.assert_close(out, out_batched.squeeze(1), rtol=0, atol=0)
    h = hidden[0] if mode == "LSTM" else hidden
    hb = hidden_batched[0] if mode == "LSTM" else hidden_batched
    torch.testing.assert_close(h, hb.squeeze(1), rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_factory_kwargs_and_to(family, mode):
    module = getattr(family, mode)(3, 4, num_layers=2, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in module.parameters())
    module = module.to(torch.float32)
    assert all(p.dtype == torch.float32 for p in module.parameters())
    output, _ = module(torch.randn(2, 1, 3))
    assert output.dtype == torch.float32


@pytest.mark.parametrize("mode", MODES)
def test_pickle_deepcopy_and_state_dict_round_trip(family, mode):
    torch.manual_seed(0)
    module = getattr(family, mode)(3, 4, num_layers=2, bidirectional=True).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    expected, _ = module(x)
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    fresh = getattr(family, mode)(3, 4, num_layers=2, bidirectional=True).double()
    fresh.load_state_dict(torch.load(buffer))
    for copied in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module), fresh):
        torch.testing.assert_close(copied(x)[0], expected, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous_input(family, mode):
    torch.manual_seed(0)
    module = getattr(family, mode)(3, 4, batch_first=True).double()
    x = torch.randn(5, 2, 3, dtype=torch.float64).transpose(0, 1)  # (B, T, I), not contiguous
    assert not x.is_contiguous()
    # torch.nn's own kernels differ in the last bit between the two layouts, hence the float64 tolerance.
    torch.testing.assert_close(module(x)[0], module(x.contiguous())[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck_and_gradgradcheck(family, mode, bidirectional):
    torch.manual_seed(0)
    module = getattr(family, mode)(2, 3, num_layers=2, bidirectional=bidirectional).double()
    names = list(dict(module.named_parameters()))

    def run(x, *params):
        with torch.nn.utils.stateless._reparametrize_module(module, dict(zip(names, params, strict=True))):
            output, _ = module(x)
        return output

    inputs = (torch.randn(3, 2, 2, dtype=torch.float64, requires_grad=True), *module.parameters())
    assert gradcheck(run, inputs)
    assert gradgradcheck(run, inputs)


# ------------------------------------------------------------------------------------------------ messages
# PyTorch's tests match error messages, not only types. These cases carry PyTorch's own regular expressions:
# test_error_RNN_seq_len_zero and test_RNN_nonlinearity of test/test_nn.py, the RNN/GRU error inputs of
# torch/testing/_internal/common_modules.py (module_error_inputs_torch_nn_RNN_GRU), and the two patterns of
# test_nn.py's test_cudnn_forward_exception (a CUDA test there; its messages come from torch.nn's Python
# forward, the same on CPU). Each case also runs on torch.nn, so a pattern that torch itself no longer matches
# fails there. rnnlab keeps its own sentence and appends torch.nn's words (`validation.torch_words`).

CONSTRUCTION_ERRORS = [  # (args, kwargs, error type, PyTorch's regex)
    ((10, 0, 1), {}, ValueError, "hidden_size must be greater than zero"),
    ((10, 10, 0), {}, ValueError, "num_layers must be greater than zero"),
    ((3, 5), {"bias": 0}, TypeError, "bias should be of type bool, got: int"),
    ((3, 5), {"bias": 1}, TypeError, "bias should be of type bool, got: int"),
    ((3, 5), {"bias": "True"}, TypeError, "bias should be of type bool, got: str"),
    ((3, 5), {"batch_first": 0}, TypeError, "batch_first should be of type bool, got: int"),
    ((3, 5), {"batch_first": "False"}, TypeError, "batch_first should be of type bool, got: str"),
    ((3.0, 5), {}, TypeError, "input_size should be of type int, got: float"),
    (("10", 5), {}, TypeError, "input_size should be of type int, got: str"),
    ((0, 5), {}, ValueError, "input_size must be greater than zero"),
    ((-1, 5), {}, ValueError, "input_size must be greater than zero"),
    ((3, 5.0), {}, TypeError, "hidden_size should be of type int, got: float"),
]


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
@pytest.mark.parametrize(("args", "kwargs", "error", "regex"), CONSTRUCTION_ERRORS)
def test_construction_errors_in_pytorchs_words(family, mode, args, kwargs, error, regex):
    with pytest.raises(error, match=regex):
        getattr(family, mode)(*args, **kwargs)


def test_unknown_nonlinearity_in_pytorchs_words(family):
    with pytest.raises(ValueError, match="Unknown nonlinearity"):
        family.RNN(1, 10, nonlinearity="garbage")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_empty_sequence_in_pytorchs_words(family, mode, bidirectional):
    module = getattr(family, mode)(5, 6, bidirectional=bidirectional).double()
    with pytest.raises(RuntimeError, match="Expected sequence length to be larger than 0 in RNN"):
        module(torch.ones(0, 10, 5, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
def test_dtype_mismatch_in_pytorchs_words(family, mode):
    module = getattr(family, mode)(3, 5, dtype=torch.float32)
    regex = r"RNN input dtype .* does not match weight dtype .* Convert input: input\.to\(.*\), or convert model: model\.to\(.*\)"
    with pytest.raises(ValueError, match=regex):
        module(torch.randn(2, 4, 3, dtype=torch.float64))


@pytest.mark.parametrize(("mode", "kwargs"), [("LSTM", {}), ("LSTM", {"proj_size": 10}), ("GRU", {}), ("RNN", {})])
def test_forward_size_errors_in_pytorchs_words(family, mode, kwargs):
    module = getattr(family, mode)(10, 20, batch_first=True, **kwargs)
    hidden = torch.zeros(1, 2, 19)
    hidden = (hidden, torch.zeros(1, 2, 19)) if mode == "LSTM" else hidden
    with pytest.raises(RuntimeError, match=r"Expected hidden.*size"):
        module(torch.randn(2, 3, 10), hidden)
    with pytest.raises(RuntimeError, match=re.escape("input.size(-1) must be equal to input_size")):
        module(torch.randn(2, 3, 3))
