"""ExpRNN — the orthogonal cell 'exprnn' (`cells/orthogonal.py`) and `rnnlab.ExpRNN` (`orthogonal_modules.py`).

Checked in float64 against an independent reference written here from the paper's equations with plain torch
ops — exp(A) by scaling and squaring of its Taylor series, not `torch.linalg.matrix_exp`, and modReLU as
sign(z)·ReLU(|z| + b) — on the forward, every gradient (A's included) and ‖∂L/∂h_t‖ per step against
`retain_grad` on the reference's states (1e-10); `gradcheck` through the engine; the step's hand-written backward
(modReLU's bias included) against autograd; truncation against re-running each loss term; W_hh orthogonal to 1e-5
after 1000 optimiser updates while A and W_ih demonstrably change (the pytorch/pytorch#65688 failure mode:
a parametrization that silently stops training); the optimiser's parameter groups; the authors' initialisations;
the doors every table cell goes through (config and trainer, CLI, init schemes, diagnostics, monitor, saving);
and the one-line errors. Run: `.venv/bin/pytest tests/test_exprnn.py`.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call

import rnnlab
from rnnlab.cli import build_parser, main
from rnnlab.lab.config import make_config
from rnnlab.lab.trainer import Trainer
from rnnlab.recurrent.cells import CELLS, Recurrence
from rnnlab.recurrent.init import SCHEMES
from tests.reference import truncated_reference_grads

F64 = torch.float64
T, B, I, H, L = 5, 2, 3, 7, 2  # noqa: E741 - the sizes as the docs name them, deliberately unequal


# ------------------------------------------------------------------------------------------------ the reference


def expm_taylor(a):
    """exp(a) by scaling and squaring: exp(a / 2^s) from 24 Taylor terms, squared s times (float64: ~1e-15)."""
    squarings = max(0, math.ceil(math.log2(max(float(a.detach().abs().sum(0).max()), 1e-30))) + 4)
    scaled = a / 2**squarings
    term = result = torch.eye(a.shape[0], dtype=a.dtype)
    for k in range(1, 25):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def reference(x, h0, params: dict, num_layers: int):
    """The paper's equations, step by step with plain torch ops: x (T, B, I), h0 (L, B, H) → (output (T, B, H),
    h_n (L, B, H), states[layer][t] with retain_grad). z_t = W_ih x_t + exp(A) h_{t−1}, A = U − Uᵀ from the strict
    upper triangle U of the parameter; h_t = sign(z_t) ⊙ ReLU(|z_t| + b) (b = 0 without a bias)."""
    layer_input, h_n, states = x, [], []
    for layer in range(num_layers):
        upper = params[f"skew_weight_hh_l{layer}"].triu(1)
        w_hh = expm_taylor(upper - upper.T)
        w_ih, b = params[f"weight_ih_l{layer}"], params.get(f"bias_hh_l{layer}")
        h, outs = h0[layer], []
        for t in range(x.shape[0]):
            z = layer_input[t] @ w_ih.T + h @ w_hh.T
            h = z if b is None else torch.sign(z) * torch.relu(z.abs() + b)
            if h.requires_grad:
                h.retain_grad()
            outs.append(h)
        states.append(outs)
        h_n.append(h)
        layer_input = torch.stack(outs)
    return layer_input, torch.stack(h_n), states


def _module(**kwargs):
    torch.manual_seed(0)
    module = rnnlab.ExpRNN(I, H, dtype=F64, **{"num_layers": L, **kwargs})
    with torch.no_grad():  # the lower triangle too: the reference must ignore it exactly as the module does
        for name, p in module.named_parameters():
            if name.startswith("skew"):
                p.add_(torch.randn(p.shape, dtype=F64, generator=torch.Generator().manual_seed(1)))
            if name.startswith("bias"):
                p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(2))  # some units switched off
    return module


def _leaves(module):
    return {n: p.detach().clone().requires_grad_() for n, p in module.named_parameters()}


# ------------------------------------------------------------------------------------------------ the table


def test_the_cell_is_a_row_of_the_table_and_the_module_holds_a_not_w_hh():
    cell = CELLS["exprnn"]
    assert cell.recurrence is Recurrence.MATRIX and cell.weight_hh_computed and cell.step_bias
    assert cell.native_kind is None and cell.torch_module is None
    shapes = {n: tuple(p.shape) for n, p in rnnlab.ExpRNN(I, H).named_parameters()}
    assert shapes == {"weight_ih_l0": (H, I), "skew_weight_hh_l0": (H, H), "bias_hh_l0": (H,)}
    assert set(dict(rnnlab.ExpRNN(I, H, bias=False).named_parameters())) == {"weight_ih_l0", "skew_weight_hh_l0"}
    module = rnnlab.make_recurrent("exprnn", I, H)
    assert type(module) is rnnlab.ExpRNN and module.cell is cell
    w_hh = module.weight_hh_l0  # computed, not a parameter
    assert "weight_hh_l0" not in dict(module.named_parameters())
    torch.testing.assert_close(w_hh, torch.linalg.matrix_exp(module.skew_weight_hh_l0.triu(1) - module.skew_weight_hh_l0.triu(1).T))  # fmt: skip


# ------------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("bias", [True, False])
def test_forward_gradients_and_recorded_norms_equal_the_papers_equations(bias):
    module = _module(bias=bias)
    params = _leaves(module)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    h0 = torch.randn(L, B, H, dtype=F64, generator=gen)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)

    x1, h01 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    with rnnlab.record_gradients(module) as rec:
        out, h_n = module(x1, h01)
        ((out * w_out).sum() + (h_n**2).sum()).backward()

    x2, h02 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    ref_out, ref_hn, states = reference(x2, h02, params, L)
    ((ref_out * w_out).sum() + (ref_hn**2).sum()).backward()

    close = {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(out, ref_out, **close)
    torch.testing.assert_close(h_n, ref_hn, **close)
    torch.testing.assert_close(x1.grad, x2.grad, **close)
    torch.testing.assert_close(h01.grad, h02.grad, **close)
    for n, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n
        torch.testing.assert_close(p.grad, params[n].grad, **close, msg=lambda m, n=n: f"{n}: {m}")
    if bias:
        assert (module.bias_hh_l0 < 0).any(), "some units can switch off: both modReLU branches are exercised"
    # ∂L/∂h_t of every step, all paths, against autograd's gradient of the reference's states
    # the record holds the batch mean of ‖∂L/∂h_t‖ per layer and step (L, T)
    expected = torch.stack([torch.stack([h.grad.norm(dim=-1).mean() for h in layer]) for layer in states])
    torch.testing.assert_close(rec.norms.to(F64), expected, **close)


def test_the_step_backward_equals_autograd_through_the_step():
    cell = CELLS["exprnn"]
    gen = torch.Generator().manual_seed(4)
    x_pre, h = torch.randn(B, H, dtype=F64, generator=gen), torch.randn(B, H, dtype=F64, generator=gen)
    upper = torch.randn(H, H, dtype=F64, generator=gen).triu(1)
    w_hh = torch.linalg.matrix_exp(upper - upper.T)
    bias = torch.randn(H, dtype=F64, generator=gen)
    leaves = [t.clone().requires_grad_() for t in (x_pre, h, w_hh, bias)]
    h_new, _, saved = cell.step(leaves[0], leaves[1], None, leaves[2], leaves[3])
    dh = torch.randn(B, H, dtype=F64, generator=gen)
    d_x, d_h, d_w, d_b = torch.autograd.grad(h_new, leaves, dh)
    grads = cell.step_backward(dh, None, saved, h, None)
    torch.testing.assert_close(grads.d_x_pre, d_x, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(cell.previous_state_grad(grads, w_hh), d_h, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(grads.d_h_pre.T @ h, d_w, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(cell.step_bias_grad(grads.d_x_pre[None], saved[None]), d_b, rtol=1e-12, atol=1e-14)
    assert (saved == 0).any() and (saved != 0).any(), "active and switched-off units both present"


def _engine_function(bias: bool):
    module = rnnlab.ExpRNN(3, 4, num_layers=2, bias=bias, dtype=F64)
    names = [n for n, _ in module.named_parameters()]
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 2, 3, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(2, 2, 4, dtype=F64, generator=gen, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in module.parameters()]
    if bias:  # biases away from 0 so that no |z| + b sits within gradcheck's step of the kink
        weights[2].data.copy_(torch.tensor([0.3, -0.4, 0.5, -0.2], dtype=F64))

    def run(x, h0, *ws):
        return functional_call(module, dict(zip(names, ws, strict=True)), (x, h0))

    return run, (x, h0, *weights)


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_through_the_engine(bias):
    run, inputs = _engine_function(bias)
    assert torch.autograd.gradcheck(run, inputs)


@pytest.mark.slow
def test_gradgradcheck_through_the_engine():
    run, inputs = _engine_function(True)
    assert torch.autograd.gradgradcheck(run, inputs), "create_graph=True re-runs the step under autograd"


def test_truncated_backward_equals_each_loss_term_rerun_from_a_detached_state():
    k = 2
    module = _module(num_layers=1, truncate=k)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)
    out, _ = module(x)
    (out * w_out).sum().backward()

    params = _leaves(module)
    zeros = torch.zeros(1, B, H, dtype=F64)
    with torch.no_grad():
        _, _, states = reference(x, zeros, params, 1)
    total = truncated_reference_grads(
        lambda x_part, h: reference(x_part, h, params, 1)[0],
        lambda t: states[0][t - 1][None] if t > 0 else zeros,
        x, w_out, k, params,
    )  # fmt: skip
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, total[n], rtol=1e-10, atol=1e-12, msg=lambda m, n=n: f"{n}: {m}")


def test_a_bidirectional_layer_runs_the_reverse_direction_on_the_flipped_input():
    torch.manual_seed(0)
    module = rnnlab.ExpRNN(I, H, bidirectional=True, dtype=F64)
    x = torch.randn(T, B, I, dtype=F64)
    out, h_n = module(x)
    forward, _, _ = reference(x, torch.zeros(1, B, H, dtype=F64), {k: v for k, v in _leaves(module).items() if "reverse" not in k}, 1)  # fmt: skip
    reverse_params = {k.replace("_reverse", ""): v for k, v in _leaves(module).items() if "reverse" in k}
    backward, _, _ = reference(x.flip(0), torch.zeros(1, B, H, dtype=F64), reverse_params, 1)
    torch.testing.assert_close(out, torch.cat([forward, backward.flip(0)], dim=-1), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h_n, torch.stack([forward[-1], backward[-1]]), rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------ training


def test_w_hh_stays_orthogonal_over_1000_updates_while_a_and_w_ih_train():
    """pytorch/pytorch#65688: a torch parametrization on nn.LSTM's weights can leave them untrained without an
    error. Here A must move, W_ih must move, the loss must fall — and exp(A) must stay orthogonal (float32)."""
    torch.manual_seed(0)
    model = rnnlab.ExpRNN(2, 12, batch_first=True)
    readout = torch.nn.Linear(12, 1)
    params = torch.nn.ModuleList([model, readout])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimiser = torch.optim.RMSprop(rnnlab.ExpRNN.parameter_groups(params, lr=1e-3, orthogonal_lr=1e-3))
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, 2, generator=gen)
    y = x[:, 0, :1] * x[:, 2, 1:]  # a product of two early inputs: needs memory
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 12 × 12 matrices: a thread pool only adds its wake-ups (10× on a loaded machine)
    try:
        for _ in range(1000):
            optimiser.zero_grad()
            out, _ = model(x)
            loss = ((readout(out[:, -1]) - y) ** 2).mean()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
    finally:
        torch.set_num_threads(threads)
    w_hh = model.weight_hh_l0.detach()
    assert (w_hh.T @ w_hh - torch.eye(12)).abs().max() < 1e-5
    assert (w_hh @ w_hh.T - torch.eye(12)).abs().max() < 1e-5
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in model.named_parameters()}
    assert moved["skew_weight_hh_l0"] > 0.05 and moved["weight_ih_l0"] > 0.05 and moved["bias_hh_l0"] > 0.01, moved
    rotated = (w_hh - torch.linalg.matrix_exp(before["skew_weight_hh_l0"].triu(1) - before["skew_weight_hh_l0"].triu(1).T)).abs().max()  # fmt: skip
    assert rotated > 0.05, "W_hh itself changed, not only the unused lower triangle"
    assert sum(losses[-50:]) / 50 < 0.5 * sum(losses[:50]) / 50, "it learned"


def test_parameter_groups_give_a_its_own_learning_rate():
    torch.manual_seed(0)
    model = torch.nn.Sequential(rnnlab.ExpRNN(I, H, num_layers=2), torch.nn.Linear(H, 1))
    groups = rnnlab.ExpRNN.parameter_groups(model, lr=0.1, orthogonal_lr=0.01)
    skew = [p for n, p in model.named_parameters() if "skew" in n]
    assert [g["lr"] for g in groups] == [0.1, 0.01]
    assert len(groups[1]["params"]) == 2 and all(any(p is s for s in skew) for p in groups[1]["params"])
    assert len(groups[0]["params"]) + 2 == len(list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    torch.optim.SGD(groups).step()
    for (name, p), old in zip(model.named_parameters(), before, strict=True):
        torch.testing.assert_close(old - p.detach(), torch.full_like(p, 0.01 if "skew" in name else 0.1))


def test_a_config_with_cell_exprnn_trains_through_the_trainer():
    config = make_config(
        {"cell": "exprnn", "init": "exprnn_henaff", "task": "adding", "seq_len": 8, "hidden_size": 6, "steps": 3,
         "eval_every": 3, "optimizer": "rmsprop", "lr": 1e-2, "orthogonal_lr": 1e-3}
    )  # fmt: skip
    trainer = Trainer(config)
    rnn = trainer.model.rnn
    assert type(rnn) is rnnlab.ExpRNN
    before = {n: p.detach().clone() for n, p in rnn.named_parameters()}
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [1e-2, 1e-3]
    result = trainer.run()
    assert result.evaluations and math.isfinite(result.evaluations[-1].loss)
    for n, p in rnn.named_parameters():
        assert not torch.equal(p.detach(), before[n]), f"{n} did not train"
    assert config.hash() == make_config(config.model_dump()).hash()
    plain = make_config({"cell": "exprnn", "task": "adding", "seq_len": 8})
    assert "orthogonal_lr" not in plain.canonical(), "the key is left out at its default: older hashes stay"


def test_rnnlab_train_trains_exprnn_with_its_own_learning_rate_for_a(tmp_path, capsys):
    store = str(tmp_path / "runs.db")
    tiny = ["--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "2", "--eval-every", "2", "--no-progress"]
    argv = ["train", "--cell", "exprnn", "--init", "exprnn_henaff", "--set", "orthogonal_lr=1e-4", *tiny]
    assert main([*argv, "--store", store]) == 0
    capsys.readouterr()
    assert main(["runs", "show", "1", "--store", store]) == 0
    assert "adam lr 0.001 (A: 0.0001)" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------ initialisation


@pytest.mark.parametrize("skew_init", ["henaff", "cayley"])
def test_the_authors_initialisations(skew_init):
    torch.manual_seed(0)
    module = rnnlab.ExpRNN(40, 64, skew_init=skew_init)
    skew = module.skew_weight_hh_l0.detach()
    angles = skew[torch.arange(0, 64, 2), torch.arange(1, 64, 2)]
    off = skew.clone()
    off[torch.arange(0, 64, 2), torch.arange(1, 64, 2)] = 0
    assert (off == 0).all(), "A holds 2×2 rotation blocks only, in its strict upper triangle"
    if skew_init == "henaff":
        assert angles.abs().max() <= math.pi and angles.min() < -2 and angles.max() > 2
    else:
        assert (angles <= 0).all() and angles.min() >= -1.0
    w_hh = module.weight_hh_l0.detach()
    block = w_hh[:2, :2]
    theta = angles[0]
    torch.testing.assert_close(block, torch.tensor([[theta.cos(), theta.sin()], [-theta.sin(), theta.cos()]]))
    assert module.bias_hh_l0.abs().max() <= 0.01
    assert module.weight_ih_l0.std().item() == pytest.approx(math.sqrt(2 / 40), rel=0.1)  # Kaiming normal, ReLU
    again = rnnlab.init.apply(rnnlab.ExpRNN(40, 64), f"exprnn_{skew_init}", seed=3)
    assert torch.equal(again.skew_weight_hh_l0, rnnlab.init.apply(rnnlab.ExpRNN(40, 64), f"exprnn_{skew_init}", seed=3).skew_weight_hh_l0)  # fmt: skip


# ------------------------------------------------------------------------------------------------ the doors


def test_every_door_takes_the_cell(capsys, tmp_path):
    assert (
        make_config({"cell": "exprnn", "task": "adding", "seq_len": 10, "hidden_size": 4, "steps": 1}).cell == "exprnn"
    )
    assert build_parser().parse_args(["train", "--cell", "exprnn"]).cell == "exprnn"
    assert "exprnn" in SCHEMES["torch_default"].cells and "exprnn" not in SCHEMES["orthogonal"].cells
    with pytest.raises(ValueError, match="init 'orthogonal' does not apply to a exprnn module"):
        make_config({"cell": "exprnn", "init": "orthogonal", "task": "adding", "seq_len": 10})
    with pytest.raises(ValueError, match="init 'exprnn_henaff' does not apply to a lstm module"):
        make_config({"cell": "lstm", "init": "exprnn_henaff", "task": "adding", "seq_len": 10})
    assert main(["inits"]) == 0 and "exprnn_henaff" in capsys.readouterr().out
    sizes = ["--seq-len", "30", "--hidden", "8", "--batch", "2", "--out", str(tmp_path / "d.png")]
    assert main(["diagnose", "--cells", "exprnn", *sizes]) == 0
    assert main(["diagnose", "--models", "exprnn:exprnn_henaff,lstm", *sizes]) == 0
    table = capsys.readouterr().out
    assert "exprnn:exprnn_henaff" in table and "1.00" in table, "spectral radius 1: W_hh is orthogonal"


def test_the_diagnostics_see_the_orthogonal_matrix():
    torch.manual_seed(0)
    module = rnnlab.ExpRNN(I, H, num_layers=2, dtype=F64)
    torch.testing.assert_close(rnnlab.spectral_radius(module), torch.ones(2, 1, dtype=F64))
    x = torch.randn(12, B, I, dtype=F64)
    # ∂h_T/∂h_t of the top layer: products of diag(active) · W_hh, so no singular value is above 1
    sv = rnnlab.jacobian_norms(module, x).singular_values[-1]
    assert sv.max() <= 1 + 1e-10 and sv.max() > 0.5
    flow = rnnlab.gradient_flow(module, x)
    assert flow.norms.shape[:2] == (2, 12)
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1, warn=False)
    monitor.model(torch.randn(T, B, I, dtype=F64))[0].sum().backward()
    assert len(monitor.history) == 2, "one row per layer"


def test_the_monitor_warns_with_advice_that_applies_to_exprnn():
    module = rnnlab.ExpRNN(2, 4)
    with torch.no_grad():
        module.bias_hh_l0.fill_(-5.0)  # every unit switched off unless |z| > 5: the gradient dies at once
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1)
    with pytest.warns(rnnlab.recurrent.monitor.HorizonWarning, match="exprnn_henaff"):
        monitor.model(torch.randn(100, 3, 2))[0][-1].sum().backward()
        assert monitor.history[0].horizon < 25


def test_a_saved_module_loads_with_weights_only(tmp_path):
    module = rnnlab.ExpRNN(I, H, skew_init="cayley")
    torch.save(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert type(loaded) is rnnlab.ExpRNN and loaded.cell is CELLS["exprnn"] and loaded.skew_init == "cayley"
    x = torch.randn(T, B, I)
    torch.testing.assert_close(loaded(x)[0], module(x)[0], rtol=0, atol=0)
    fresh = rnnlab.ExpRNN(I, H)
    fresh.load_state_dict(module.state_dict())
    torch.testing.assert_close(fresh(x)[0], module(x)[0], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_exp_a_and_the_steps_in_float32(dtype):
    torch.manual_seed(0)
    full = rnnlab.ExpRNN(I, H)
    half = rnnlab.ExpRNN(I, H, dtype=dtype)
    half.load_state_dict({k: v.to(dtype) for k, v in full.state_dict().items()})
    full.load_state_dict(half.state_dict())  # the same (rounded) values in both
    x = torch.randn(T, B, I)
    out_half, _ = half(x.to(dtype))
    out_full, _ = full(x.to(dtype).float())
    assert out_half.dtype == dtype
    torch.testing.assert_close(out_half.float(), out_full.to(dtype).float(), rtol=0, atol=0)
    out_half.float().sum().backward()
    assert half.skew_weight_hh_l0.grad.dtype == dtype and half.skew_weight_hh_l0.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: rnnlab.ExpRNN(3, 4, skew_init="haar"), ValueError,
         "ExpRNN: skew_init must be one of 'henaff', 'cayley', got 'haar'"),
        (lambda: rnnlab.ExpRNN(3, 4, skew_init=None), ValueError, "skew_init must be one of"),
        (lambda: rnnlab.ExpRNN(3, 0), ValueError, "ExpRNN: hidden_size must be a positive integer, got 0"),
        (lambda: rnnlab.ExpRNN(3, 4).to_torch(), ValueError, "cell 'exprnn' has no torch.nn equivalent"),
        (lambda: rnnlab.recurrent.orthogonal_modules.orthogonal_matrix(torch.zeros(3, 4)), ValueError,
         r"ExpRNN: A must be a square \(H, H\) matrix, got shape \(3, 4\)"),
        (lambda: rnnlab.ExpRNN(3, 4)(torch.zeros(5, 2, 4)), RuntimeError, "input.size\\(-1\\) must be equal to input_size"),
        (lambda: rnnlab.ExpRNN.parameter_groups(torch.nn.Linear(2, 2), 1e-3, 1e-4), ValueError,
         "ExpRNN.parameter_groups: Linear holds no ExpRNN layer"),
        (lambda: rnnlab.ExpRNN.parameter_groups(rnnlab.ExpRNN(3, 4), 1e-3, 0), ValueError,
         "orthogonal_lr must be a finite number > 0, got 0"),
        (lambda: make_config({"cell": "lstm", "orthogonal_lr": 1e-4, "task": "adding", "seq_len": 10}), ValueError,
         "orthogonal_lr is the learning rate of ExpRNN's A; cell 'lstm' has none"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_errors(build, error, message):
    with pytest.raises(error, match=message) as caught:
        build()
    assert "\n" not in str(caught.value)
