"""Drop-in parity of rnnlab.RNN/LSTM/GRU with torch.nn: outputs, final states and every gradient.

Checks values with random weights at small unequal sizes (T=5, B=2, I=3, H=7) in float64, so a swapped gate
cannot hide behind equal shapes; plus float32 at a realistic size, conversions, state_dict round trips and
the errors for bad input. Run: `.venv/bin/pytest tests/test_modules.py`.
"""

import itertools

import pytest
import torch
from torch.testing import assert_close

import rnnlab
from tests.conftest import CELL_KINDS, make_pair

F64 = {"rtol": 1e-10, "atol": 1e-12}


def _run_and_backward(module, x, state, seed=1):
    """Forward, then a loss that weights every output and final state randomly; returns the values."""
    out, final = module(x, state)
    finals = final if isinstance(final, tuple) else (final,)
    gen = torch.Generator().manual_seed(seed)
    loss = (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum()
    for f in finals:
        loss = loss + (f * torch.randn(f.shape, generator=gen, dtype=f.dtype)).sum()
    loss.backward()
    return out, finals


def _leaves(cell, layers, batch_first, given_state, steps=5, batch=2, inputs=3, hidden=7, dtype=torch.float64):
    gen = torch.Generator().manual_seed(7)
    shape = (batch, steps, inputs) if batch_first else (steps, batch, inputs)
    x = torch.randn(shape, generator=gen, dtype=dtype)
    states = []
    if given_state:
        n = 2 if cell == "lstm" else 1
        states = [torch.randn(layers, batch, hidden, generator=gen, dtype=dtype) for _ in range(n)]
    return x, states


def _clone_leaves(x, states):
    x = x.clone().requires_grad_()
    states = [s.clone().requires_grad_() for s in states]
    return x, states


def _as_hx(cell, states):
    if not states:
        return None
    return tuple(states) if cell == "lstm" else states[0]


CASES = list(itertools.product(CELL_KINDS, (1, 3), (False, True), (True, False), (True, False)))


@pytest.mark.parametrize(("cell", "layers", "batch_first", "bias", "given_state"), CASES)
def test_parity_with_torch_nn_float64(cell, layers, batch_first, bias, given_state):
    reference, module = make_pair(cell, num_layers=layers, batch_first=batch_first, bias=bias)
    x, states = _leaves(cell, layers, batch_first, given_state)
    x_ref, states_ref = _clone_leaves(x, states)
    x_new, states_new = _clone_leaves(x, states)

    out_ref, finals_ref = _run_and_backward(reference, x_ref, _as_hx(cell, states_ref))
    out_new, finals_new = _run_and_backward(module, x_new, _as_hx(cell, states_new))

    assert_close(out_new, out_ref, **F64)
    for a, b in zip(finals_new, finals_ref, strict=True):
        assert_close(a, b, **F64)
    for (name, p_ref), (name_new, p_new) in zip(reference.named_parameters(), module.named_parameters(), strict=True):
        assert name == name_new
        assert_close(p_new.grad, p_ref.grad, **F64, msg=lambda m, n=name: f"grad of {n}: {m}")
    assert_close(x_new.grad, x_ref.grad, **F64)
    for s_new, s_ref in zip(states_new, states_ref, strict=True):
        assert_close(s_new.grad, s_ref.grad, **F64)


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_parity_float32_realistic_size(cell):
    reference, module = make_pair(cell, input_size=32, hidden_size=64, dtype=torch.float32, spread=None, num_layers=2)
    x = torch.randn(50, 16, 32)
    x_ref, x_new = x.clone().requires_grad_(), x.clone().requires_grad_()
    out_ref, _ = _run_and_backward(reference, x_ref, None)
    out_new, _ = _run_and_backward(module, x_new, None)
    assert_close(out_new, out_ref, rtol=1e-4, atol=1e-5)
    for p_ref, p_new in zip(reference.parameters(), module.parameters(), strict=True):
        assert_close(p_new.grad, p_ref.grad, rtol=1e-4, atol=1e-4)
    assert_close(x_new.grad, x_ref.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_unbatched_input_matches_torch(cell):
    reference, module = make_pair(cell, num_layers=2)
    x = torch.randn(5, 3, dtype=torch.float64)
    out_ref, final_ref = reference(x)
    out_new, final_new = module(x)
    assert out_new.shape == (5, 7)
    assert_close(out_new, out_ref, **F64)
    assert_close(final_new, final_ref, **F64)


def test_same_seed_gives_the_same_default_weights_as_torch():
    torch.manual_seed(3)
    reference = torch.nn.LSTM(3, 7, num_layers=2)
    torch.manual_seed(3)
    module = rnnlab.LSTM(3, 7, num_layers=2)
    for (k, a), (k2, b) in zip(reference.state_dict().items(), module.state_dict().items(), strict=True):
        assert k == k2
        assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_state_dict_loads_both_ways(cell):
    torch_cls, rnnlab_cls, extra = CELL_KINDS[cell]
    reference = torch_cls(3, 7, num_layers=2, **extra)
    module = rnnlab_cls(3, 7, num_layers=2, **extra)
    assert list(module.state_dict()) == list(reference.state_dict())
    module.load_state_dict(reference.state_dict())
    back = torch_cls(3, 7, num_layers=2, **extra)
    back.load_state_dict(module.state_dict())
    for a, b in zip(back.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    x = torch.randn(4, 2, 3)
    # float32: the fused kernel sums in another order, so outputs agree to rounding, not bit for bit.
    assert_close(module(x)[0], reference(x)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_from_torch_to_torch_round_trip(cell):
    reference, module = make_pair(cell, num_layers=2, batch_first=True, dropout=0.25)
    back = module.to_torch()
    assert type(back) is type(reference)
    for attr in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout"):
        assert getattr(back, attr) == getattr(reference, attr), attr
    for a, b in zip(reference.state_dict().values(), back.state_dict().values(), strict=True):
        assert_close(a, b, rtol=0, atol=0)
    before = {k: v.clone() for k, v in reference.state_dict().items()}
    rnnlab.from_torch(reference)(torch.randn(2, 4, 3, dtype=torch.float64))
    for k, v in reference.state_dict().items():
        assert torch.equal(v, before[k]), "from_torch must leave the user's module untouched"


def test_dropout_acts_only_in_training_and_eval_matches_torch():
    reference, module = make_pair("lstm", num_layers=3, dropout=0.5)
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    reference.eval()
    module.eval()
    assert_close(module(x)[0], reference(x)[0], **F64)
    module.train()
    torch.manual_seed(0)
    a = module(x)[0]
    torch.manual_seed(1)
    b = module(x)[0]
    assert not torch.allclose(a, b), "training-mode dropout should depend on the RNG"


def test_dropout_on_one_layer_warns_like_torch():
    with pytest.warns(UserWarning, match="no effect with num_layers=1"):
        rnnlab.GRU(3, 4, dropout=0.3)


def test_linear_nonlinearity_is_identity_recurrence():
    module = rnnlab.RNN(2, 3, nonlinearity="linear", bias=False, dtype=torch.float64)
    x = torch.randn(4, 1, 2, dtype=torch.float64)
    out, _ = module(x)
    h = torch.zeros(1, 3, dtype=torch.float64)
    for t in range(4):
        h = x[t] @ module.weight_ih_l0.T + h @ module.weight_hh_l0.T
        assert_close(out[t], h, **F64)
    with pytest.raises(ValueError, match=r"no torch\.nn equivalent"):
        module.to_torch()


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("make", "call", "error", "match"),
    [
        (lambda: rnnlab.LSTM(3, 7), lambda m: m(torch.randn(5, 2, 4)), ValueError, r"4 features.*input_size=3"),
        (
            lambda: rnnlab.GRU(3, 7),
            lambda m: m(torch.randn(5, 2, 3), torch.zeros(1, 3, 7)),
            ValueError,
            r"h0 has shape \(1, 3, 7\), expected \(1, 2, 7\)",
        ),
        (
            lambda: rnnlab.LSTM(3, 7),
            lambda m: m(torch.randn(5, 2, 3), torch.zeros(1, 2, 7)),
            TypeError,
            r"hx must be a tuple \(h0, c0\)",
        ),
        (
            lambda: rnnlab.RNN(3, 7),
            lambda m: m(torch.randn(5, 2, 3, dtype=torch.float64)),
            TypeError,
            r"input dtype torch.float64 does not match the parameters' torch.float32",
        ),
        (lambda: rnnlab.RNN(3, 7), lambda m: m(torch.randn(0, 2, 3)), ValueError, r"empty sequence"),
        (lambda: rnnlab.RNN(3, 7), lambda m: m(torch.randn(2, 5, 2, 3)), ValueError, r"must be 3-D"),
        (lambda: rnnlab.RNN(3, 7), lambda m: m([[1.0, 2.0, 3.0]]), TypeError, r"must be a torch.Tensor"),
        (lambda: rnnlab.RNN(3, 7, batch_first=True), lambda m: m(torch.randn(2, 0, 3)), ValueError, r"empty sequence"),
        (
            lambda: rnnlab.GRU(3, 7),
            lambda m: m(torch.tensor([[[1.0, float("nan"), 0.0]]])),
            ValueError,
            r"input contains 1 NaN or infinite value\(s\); expected finite numbers",
        ),
        (lambda: rnnlab.LSTM(3, 7), lambda m: m(torch.full((2, 1, 3), float("inf"))), ValueError, r"contains 6 NaN"),
        (
            lambda: rnnlab.GRU(3, 7),
            lambda m: m(torch.zeros(2, 1, 3), torch.full((1, 1, 7), float("nan"))),
            ValueError,
            r"h0 contains NaN or infinite values",
        ),
        (
            lambda: rnnlab.RNN(3, 7),
            lambda m: m(torch.zeros(2, 1, 3, dtype=torch.int64)),
            TypeError,
            r"input dtype torch.int64 does not match the parameters' torch.float32",
        ),
    ],
)
def test_bad_input_is_a_clear_error(make, call, error, match):
    with pytest.raises(error, match=match):
        call(make())


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (
            lambda: rnnlab.RNN(3, 7, nonlinearity="sigmoid"),
            ValueError,
            r"unknown nonlinearity 'sigmoid'; choose from: tanh, relu, linear",
        ),
        (lambda: rnnlab.LSTM(3, 7, proj_size=7), ValueError, r"proj_size has to be smaller than hidden_size"),
        (lambda: rnnlab.LSTM(3, 7, proj_size=-1), ValueError, r"proj_size should be a positive integer or zero"),
        (lambda: rnnlab.GRU(3, 7, proj_size=2), ValueError, r"only supported for LSTM, not RNN or GRU"),
        (lambda: rnnlab.GRU(0, 7), ValueError, r"input_size must be a positive integer, got 0"),
        (lambda: rnnlab.GRU(3, 7, dropout=1.5), ValueError, r"dropout must be a number in \[0, 1\], got 1.5"),
        (lambda: rnnlab.GRU(3, 7, truncate=0), ValueError, r"truncate must be a positive integer or None, got 0"),
        (lambda: rnnlab.from_torch(torch.nn.Linear(2, 3)), TypeError, r"expected torch.nn.RNN, LSTM or GRU"),
    ],
)
def test_bad_construction_is_a_clear_error(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_huge_finite_inputs_are_accepted_even_when_their_sum_overflows():
    """The finiteness check sums the input first; an overflowing sum of finite values must not be refused."""
    module = rnnlab.RNN(2, 3)
    x = torch.full((4, 1, 2), 3e38)  # the sum is inf in float32, every value is finite
    h0 = torch.full((1, 1, 3), -3e38)
    out, _ = module(x, h0)
    assert torch.isfinite(out).all()
