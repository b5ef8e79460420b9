"""Higher-order gradients and in-place edits through rnnlab modules, against torch.nn in float64.

A backward with create_graph=True (gradient penalties, physics-informed losses, meta-learning) must give
torch.nn's numbers — never a derivative that silently does not depend on the weights — and editing the input
or a weight in place between forward and backward must be an error, as it is in torch.nn.
Run: `.venv/bin/pytest tests/test_higher_order.py`.
"""

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck

import rnnlab

T, B, I, H = 4, 2, 3, 5  # noqa: E741 - the sizes as the docs name them
CELLS = [
    ("rnn_tanh", nn.RNN, {}),
    ("rnn_relu", nn.RNN, {"nonlinearity": "relu"}),
    ("lstm", nn.LSTM, {}),
    ("gru", nn.GRU, {}),
]


def _pair(torch_cls, options, layers=1):
    torch.manual_seed(0)
    reference = torch_cls(I, H, num_layers=layers, **options).double()
    return reference, rnnlab.from_torch(reference)


@pytest.mark.parametrize(("name", "torch_cls", "options"), CELLS)
@pytest.mark.parametrize("layers", [1, 2])
def test_gradcheck_and_gradgradcheck_in_float64(name, torch_cls, options, layers):
    _, module = _pair(torch_cls, options, layers)
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    weights = list(module.parameters())

    def run(x, *params):
        with torch.nn.utils.stateless._reparametrize_module(module, dict(zip(dict(module.named_parameters()), params, strict=True))):  # fmt: skip
            output, _ = module(x)
        return output

    assert gradcheck(run, (x, *weights), eps=1e-6, atol=1e-6)
    assert gradgradcheck(run, (x, *weights), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize(("name", "torch_cls", "options"), CELLS)
def test_a_gradient_penalty_gives_torch_nn_numbers(name, torch_cls, options):
    """loss + ‖∂loss/∂x‖²: the penalty's gradient w.r.t. the weights must not be silently zero."""
    reference, module = _pair(torch_cls, options)
    grads = []
    for m in (reference, module):
        x = torch.randn(T, B, I, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
        output, hidden = m(x)
        loss = output.pow(2).sum() + (hidden[0] if isinstance(hidden, tuple) else hidden).sum()
        (d_x,) = torch.autograd.grad(loss, x, create_graph=True)
        assert d_x.requires_grad, "the derivative must itself be differentiable"
        (loss + d_x.pow(2).sum()).backward()
        grads.append([p.grad for p in m.parameters()])
    for expected, got in zip(*grads, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_higher_order_gradients_through_a_truncated_module_raise():
    module = rnnlab.LSTM(I, H, truncate=2).double()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    output, _ = module(x)
    with pytest.raises(NotImplementedError, match="create_graph=True through a truncated rnnlab module"):
        torch.autograd.grad(output.sum(), x, create_graph=True)


def test_recording_still_exact_during_a_create_graph_backward():
    module = rnnlab.GRU(I, H).double()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    with rnnlab.record_gradients(module) as first:
        output, _ = module(x)
        output[-1].sum().backward()
    with rnnlab.record_gradients(module) as second:
        output, _ = module(x)
        torch.autograd.grad(output[-1].sum(), x, create_graph=True)
    assert len(second.records) == 1
    torch.testing.assert_close(second.norms, first.norms, rtol=0, atol=0)


@pytest.mark.parametrize("target", ["input", "weight"])
def test_editing_the_input_or_a_weight_in_place_before_backward_is_an_error(target):
    module = rnnlab.LSTM(I, H)
    x = torch.randn(T, B, I, requires_grad=True)
    leaf = x * 1.0  # a non-leaf input that may legally be edited in place
    output, _ = module(leaf)
    with torch.no_grad():
        (leaf if target == "input" else module.weight_hh_l0).mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        output.sum().backward()
