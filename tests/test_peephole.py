"""The LSTM with an output-gate peephole (`cells/lstm.py` `OutputPeepholeLSTMCell`, cell 'lstm_peephole_out'):
the uRNN paper's LSTM (Arjovsky, Shah & Bengio 2016; amarshah/complex_RNN models.py `LSTM`).

Checked in float64 against an independent reference written here from their code's equations, with plain torch
ops and separate matrices in their layout (x_t W_i, h_{t−1} U_i, c_t V_o): forward, every gradient, and
‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ per step against `retain_grad` on the reference's states (1e-10); with V_o = 0 it is
torch.nn.LSTM; `gradcheck` (and `gradgradcheck`, slow) through the engine; truncated BPTT against re-running each
loss term from a detached state; the compiled kernel against the Python loop (float32 and float64); the init schemes draw V_o as one more block; the doors every table cell goes
through (config with a learned initial state, trainer, CLI, diagnostics).
Run: `.venv/bin/pytest tests/test_peephole.py`.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

import rnnlab
from rnnlab.cli import main
from rnnlab.lab.config import make_config
from rnnlab.lab.trainer import Trainer
from rnnlab.recurrent.cells import CELLS
from tests.reference import truncated_reference_grads

F64 = torch.float64
T, B, I, H, L = 5, 2, 3, 4, 2  # noqa: E741 - the sizes as the docs name them, deliberately unequal
NAME = "lstm_peephole_out"


def reference(x, h0, c0, params: dict, num_layers: int):
    """Their recurrence step by step, x (T, B, I), h0 / c0 (L, B, H) → (output (T, B, H), h_n, c_n (L, B, H),
    hs[layer][t], cs[layer][t] with retain_grad). Their matrices from rnnlab's layout: W_i = weight_ihᵀ's first
    block (I, H), U_i = weight_hhᵀ's, V_o = weight_hh's fifth block transposed; b_i = both biases' block."""
    layer_input, h_n, c_n, hs, cs = x, [], [], [], []
    for layer in range(num_layers):
        w_ih, w_hh = params[f"weight_ih_l{layer}"], params[f"weight_hh_l{layer}"]
        bias = params.get(f"bias_ih_l{layer}")
        if bias is not None:
            bias = bias + params[f"bias_hh_l{layer}"]
        W_i, W_f, W_c, W_o = (w.T for w in w_ih.split(H))
        U_i, U_f, U_c, U_o, V_o = (w.T for w in w_hh.split(H))
        b_i, b_f, b_c, b_o = bias.split(H) if bias is not None else (0, 0, 0, 0)
        h, c, hs_l, cs_l = h0[layer], c0[layer], [], []
        for t in range(x.shape[0]):
            x_t = layer_input[t]
            input_t = torch.sigmoid(x_t @ W_i + h @ U_i + b_i)
            candidate_t = torch.tanh(x_t @ W_c + h @ U_c + b_c)
            forget_t = torch.sigmoid(x_t @ W_f + h @ U_f + b_f)
            c = input_t * candidate_t + forget_t * c
            output_t = torch.sigmoid(x_t @ W_o + h @ U_o + c @ V_o + b_o)
            h = output_t * torch.tanh(c)
            for state in (h, c):
                if state.requires_grad:
                    state.retain_grad()
            hs_l.append(h)
            cs_l.append(c)
        hs.append(hs_l)
        cs.append(cs_l)
        h_n.append(h)
        c_n.append(c)
        layer_input = torch.stack(hs_l)
    return layer_input, torch.stack(h_n), torch.stack(c_n), hs, cs


def _module(**kwargs):
    torch.manual_seed(0)
    return rnnlab.make_recurrent(NAME, I, H, **{"num_layers": L, "dtype": F64, **kwargs})


def _leaves(module):
    return {n: p.detach().clone().requires_grad_() for n, p in module.named_parameters()}


def test_the_cell_is_a_row_of_the_table_with_an_lstms_parameters_and_one_more_block():
    cell = CELLS[NAME]
    assert (cell.gates, cell.has_cell_state, cell.torch_module, cell.native_kind) == (4, True, None, 6)
    shapes = {n: tuple(p.shape) for n, p in _module(num_layers=1).named_parameters()}
    assert shapes == {"weight_ih_l0": (4 * H, I), "weight_hh_l0": (5 * H, H), "bias_ih_l0": (4 * H,),
                      "bias_hh_l0": (4 * H,)}  # fmt: skip


def _counting_kernel_calls(monkeypatch) -> list:
    """The cell kinds the compiled extension is called with from now on (none when it is not in use)."""
    from rnnlab.recurrent import native
    from tests.test_diagonal_cells import _Counting

    calls = []
    original = native.extension  # None under RNNLAB_ENGINE=python
    monkeypatch.setattr(native, "extension", lambda: None if original() is None else _Counting(original(), calls))
    return calls


@pytest.mark.parametrize("engine", ["auto", "python"])
@pytest.mark.parametrize("bias", [True, False])
def test_forward_gradients_and_recorded_norms_equal_the_papers_equations(bias, engine, monkeypatch):
    """Through the compiled kernel (`_ext/kernels/lstm_peephole.cpp`, where the extension runs) and the Python
    loop (`OutputPeepholeLSTMCell.step` / `step_backward`) alike."""
    from rnnlab.recurrent import native

    monkeypatch.setenv("RNNLAB_ENGINE", engine)
    compiled = native.extension() is not None
    if engine == "auto" and not compiled:
        pytest.skip("the compiled engine is not in use here")
    calls = _counting_kernel_calls(monkeypatch)
    module = _module(bias=bias)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    h0, c0 = torch.randn(L, B, H, dtype=F64, generator=gen), torch.randn(L, B, H, dtype=F64, generator=gen)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)
    w_h, w_c = torch.randn(L, B, H, dtype=F64, generator=gen), torch.randn(L, B, H, dtype=F64, generator=gen)

    x1, h01, c01 = (t.clone().requires_grad_() for t in (x, h0, c0))
    with rnnlab.record_gradients(module) as rec:
        out, (h_n, c_n) = module(x1, (h01, c01))
        ((out * w_out).sum() + (h_n * w_h).sum() + (c_n * w_c).sum()).backward()

    params = _leaves(module)
    x2, h02, c02 = (t.clone().requires_grad_() for t in (x, h0, c0))
    ref_out, ref_h, ref_c, hs, cs = reference(x2, h02, c02, params, L)
    ((ref_out * w_out).sum() + (ref_h * w_h).sum() + (ref_c * w_c).sum()).backward()

    close = {"rtol": 1e-10, "atol": 1e-12}
    for got, want in ((out, ref_out), (h_n, ref_h), (c_n, ref_c), (x1.grad, x2.grad), (h01.grad, h02.grad)):
        torch.testing.assert_close(got, want, **close)
    torch.testing.assert_close(c01.grad, c02.grad, **close)
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, params[n].grad, **close, msg=lambda m, n=n: f"{n}: {m}")
    assert module.weight_hh_l0.grad[4 * H :].abs().min() > 0, "V_o trains: every entry has a gradient"

    def norms(states):  # (L, T): the batch mean of ‖∂L/∂state_t‖ per step, as the recorder keeps it
        return torch.stack([torch.stack([s.grad.norm(dim=-1).mean() for s in layer]) for layer in states])

    torch.testing.assert_close(rec.last.norms, norms(hs), **close)  # ‖∂L/∂h_t‖
    torch.testing.assert_close(rec.last.cell_norms, norms(cs), **close)  # ‖∂L/∂c_t‖, the peephole's path included
    assert calls == ([6] * 2 * L if engine == "auto" else []), "each layer's forward and backward by its kernel"


@pytest.mark.parametrize(("dtype", "tol"), [(F64, {"rtol": 1e-12, "atol": 1e-12}), (torch.float32, {"rtol": 1e-5, "atol": 1e-6})])  # fmt: skip
def test_the_compiled_kernel_equals_the_python_loop(monkeypatch, dtype, tol):
    """Outputs, every gradient, the recorded per-sample ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖, for a two-layer stack with
    H = 13 (not a multiple of the vector width) over 40 steps, in float32 (as training runs) and float64."""
    from rnnlab.recurrent import native
    from tests.conftest import on_both_loops

    if native.extension() is None:
        pytest.skip("the compiled engine is not in use here")
    torch.manual_seed(0)
    module = rnnlab.make_recurrent(NAME, 3, 13, num_layers=2, dtype=dtype)
    x = torch.randn(40, 4, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(40, 4, 13, dtype=dtype, generator=torch.Generator().manual_seed(2))
    compiled, python = on_both_loops(module, x, lambda out: (out * weights).sum(), monkeypatch)
    for a, b in zip(compiled, python, strict=True):
        torch.testing.assert_close(a, b, **tol)


def test_with_the_peephole_at_zero_it_is_torch_nn_lstm():
    module = _module()
    with torch.no_grad():
        for layer in range(L):
            getattr(module, f"weight_hh_l{layer}")[4 * H :] = 0
    lstm = torch.nn.LSTM(I, H, num_layers=L, dtype=F64)
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            p.copy_(getattr(module, name)[: p.shape[0]])
    x = torch.randn(T, B, I, dtype=F64, generator=torch.Generator().manual_seed(2))
    out, (h_n, c_n) = module(x)
    want, (want_h, want_c) = lstm(x)
    out.square().sum().backward()
    want.square().sum().backward()
    for got, expected in ((out, want), (h_n, want_h), (c_n, want_c)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    for name, p in lstm.named_parameters():
        torch.testing.assert_close(getattr(module, name).grad[: p.shape[0]], p.grad, rtol=1e-10, atol=1e-12)


def _engine_function():
    """The module as a function of (x, h0, c0, *weights), for gradcheck: T=3, B=2, I=2, H=2, one layer."""
    module = rnnlab.make_recurrent(NAME, 2, 2, dtype=F64)
    names = [n for n, _ in module.named_parameters()]
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(1, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    c0 = torch.randn(1, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def run(x, h0, c0, *ws):
        out, (h_n, c_n) = functional_call(module, dict(zip(names, ws, strict=True)), (x, (h0, c0)))
        return out, h_n, c_n

    return run, (x, h0, c0, *weights)


def test_gradcheck_through_the_engine():
    run, inputs = _engine_function()
    assert torch.autograd.gradcheck(run, inputs)


@pytest.mark.slow
def test_gradgradcheck_through_the_engine():
    run, inputs = _engine_function()
    assert torch.autograd.gradgradcheck(run, inputs), "create_graph=True re-runs the step under autograd"


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_truncated_backward_equals_each_loss_term_rerun_from_a_detached_state(engine, monkeypatch):
    """Truncation walks the Python loop; after a compiled forward it reads V_o from the kernel's saved tensors."""
    monkeypatch.setenv("RNNLAB_ENGINE", engine)
    k = 2
    module = _module(num_layers=1, truncate=k)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)
    out, _ = module(x)
    (out * w_out).sum().backward()

    # ∂L_s/∂(h_t, c_t) is kept for s − t < k only: term s sees steps s−k+1 … s, from the detached (h, c) before.
    params = _leaves(module)
    zeros = torch.zeros(1, B, H, dtype=F64)
    with torch.no_grad():
        _, _, _, hs, cs = reference(x, zeros, zeros, params, 1)
    total = truncated_reference_grads(
        lambda x_part, state: reference(x_part, *state, params, 1)[0],
        lambda t: (hs[0][t - 1][None], cs[0][t - 1][None]) if t > 0 else (zeros, zeros),
        x, w_out, k, params,
    )  # fmt: skip
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, total[n], rtol=1e-10, atol=1e-12, msg=lambda m, n=n: f"{n}: {m}")


def test_init_schemes_draw_the_peephole_as_one_more_block():
    """Their code draws every matrix, V_o included, Glorot-uniform on its own (H, H) shape; the forget bias 1."""
    module = rnnlab.init.apply(rnnlab.make_recurrent(NAME, I, H), "xavier_uniform+forget_bias", seed=0)
    peephole = module.weight_hh_l0.detach()[4 * H :]
    assert 0 < peephole.abs().max() <= (6 / (H + H)) ** 0.5
    torch.testing.assert_close(module.bias_ih_l0[H : 2 * H] + module.bias_hh_l0[H : 2 * H], torch.ones(H))
    orthogonal = rnnlab.init.apply(rnnlab.make_recurrent(NAME, I, H), "orthogonal", seed=0).weight_hh_l0.detach()
    for block in orthogonal.split(H):  # five (H, H) blocks, each orthogonal
        torch.testing.assert_close(block @ block.T, torch.eye(H), rtol=0, atol=1e-5)
    radius = rnnlab.spectral_radius(module)  # of the four gate blocks: the peephole reads c_t, not h_{t−1}
    assert radius.shape[-1] == 4 and torch.isfinite(radius).all()


def test_a_config_with_the_cell_and_a_learned_initial_state_trains_through_the_trainer(tmp_path):
    """The paper's setting: its LSTM, Glorot weights and forget bias 1, h_0 and c_0 learned."""
    config = make_config(
        {"cell": NAME, "init": "xavier_uniform+forget_bias", "initial_state": "learned", "task": "adding",
         "seq_len": 10, "hidden_size": 6, "batch_size": 4, "steps": 4, "eval_every": 2, "optimizer": "rmsprop",
         "lr": 0.001, "alpha": 0.9, "clip": "value", "clip_threshold": 1.0}
    )  # fmt: skip
    trainer = Trainer(config)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = trainer.run()
    assert result.steps == 4 and all(e.flow is not None for e in result.evaluations), "with flow snapshots"
    for n, p in trainer.model.named_parameters():
        assert not torch.equal(p.detach(), before[n]), f"{n} did not change"
    tiny = ["--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "2", "--eval-every", "2", "--no-progress"]
    assert main(["train", "--cell", NAME, *tiny, "--store", str(tmp_path / "runs.db")]) == 0
    assert main(["diagnose", "--cells", f"{NAME},lstm", "--seq-len", "20", "--hidden", "8", "--batch", "2"]) == 0


def test_the_monitor_records_it_and_advises_as_for_an_lstm():
    module = rnnlab.make_recurrent(NAME, 2, 4)  # untrained gates near ½: the gradient halves each step
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1)
    with pytest.warns(rnnlab.recurrent.monitor.HorizonWarning, match="chrono initialisation") as caught:
        monitor.model(torch.randn(300, 3, 2))[0][-1].sum().backward()  # the loss on the last step only
        assert len(monitor.history) == 1 and monitor.history[0].horizon < 100
    assert "as for any LSTM" in str(caught[0].message)


def test_a_saved_module_loads_with_weights_only(tmp_path):
    module = rnnlab.make_recurrent(NAME, I, H)
    torch.save(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert loaded.cell is CELLS[NAME], "the table's own cell, by name"
    x = torch.randn(T, B, I)
    torch.testing.assert_close(loaded(x)[0], module(x)[0], rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"cell .lstm_peephole_out. has no torch\.nn equivalent"):
        module.to_torch()
