"""Shared helpers for the test suite. Run everything with `make test`; slow tests with `make test-slow`."""

import pytest
import torch
from torch.testing import assert_close

import rnnlab

CELL_KINDS = {
    # cell name: (torch.nn class, rnnlab class, constructor kwargs)
    "rnn_tanh": (torch.nn.RNN, rnnlab.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (torch.nn.RNN, rnnlab.RNN, {"nonlinearity": "relu"}),
    "lstm": (torch.nn.LSTM, rnnlab.LSTM, {}),
    "gru": (torch.nn.GRU, rnnlab.GRU, {}),
}


def make_pair(cell: str, input_size=3, hidden_size=7, dtype=torch.float64, seed=0, spread=0.6, **kwargs):
    """A torch.nn module with random weights U(−spread, spread) and its rnnlab copy. The default spread is
    wider than torch's, so that a swapped gate or a wrong derivative changes the numbers visibly;
    spread=None keeps torch's default initialisation."""
    torch_cls, _, extra = CELL_KINDS[cell]
    torch.manual_seed(seed)
    reference = torch_cls(input_size, hidden_size, dtype=dtype, **extra, **kwargs)
    if spread is not None:
        with torch.no_grad():
            for p in reference.parameters():
                p.uniform_(-spread, spread)
    return reference, rnnlab.from_torch(reference)


def weighted_loss(*tensors, seed=1):
    """Every tensor weighted randomly (seeded) and summed: a loss that reaches every output and final state
    through its own random weights, so a wrong gradient along any path changes the numbers."""
    gen = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=gen, dtype=t.dtype)).sum() for t in tensors)


def assert_same_grads(reference, module, tensors_ref=(), tensors_new=(), rtol=1e-10, atol=1e-12):
    """Every parameter's gradient of `module` equals `reference`'s (same names, same order), and each of
    `tensors_new` has the gradient of its partner in `tensors_ref` (inputs and initial states)."""
    named = zip(reference.named_parameters(), module.named_parameters(), strict=True)
    for (name, p_ref), (name_new, p_new) in named:
        assert name == name_new
        assert_close(p_new.grad, p_ref.grad, rtol=rtol, atol=atol, msg=lambda m, n=name: f"grad of {n}: {m}")
    for a, b in zip(tensors_new, tensors_ref, strict=True):
        assert_close(a.grad, b.grad, rtol=rtol, atol=atol)


@pytest.fixture(autouse=True)
def _restore_denormal_mode():
    """No test may leak a changed flush-denormal setting into the next one."""
    before = rnnlab.engine.denormals_flushed()
    yield
    torch.set_flush_denormal(before)


@pytest.fixture(autouse=True)
def _restore_thread_count():
    """No test may leak a changed PyTorch thread count (an in-process `rnnlab train --threads 1` sets it) into
    the next one: the engine's choices of path depend on it."""
    before = torch.get_num_threads()
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


def on_both_loops(module, x, loss_fn, monkeypatch) -> list[list]:
    """Forward and backward of `module` on `x` with the compiled time loop, then with the Python one
    (RNNLAB_ENGINE=auto / python), recording on; for each: [output, *parameter gradients, per-sample ‖∂L/∂h_t‖,
    and ‖∂L/∂c_t‖ when the cell has a cell state]."""
    results = []
    for engine in ("auto", "python"):
        monkeypatch.setenv("RNNLAB_ENGINE", engine)
        module.zero_grad()
        with rnnlab.record_gradients(module, per_sample=True) as rec:
            out, _ = module(x)
            loss_fn(out).backward()
        seen = [rec.last.per_sample] + ([] if rec.last.cell_per_sample is None else [rec.last.cell_per_sample])
        results.append([out.detach(), *(p.grad.clone() for p in module.parameters()), *seen])
    return results
