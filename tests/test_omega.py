"""Pascanu's Ω regulariser (`rnnlab.omega`): its value and its gradient with respect to W_hh against a reference
written from the paper's eq. 9–10 with plain torch ops in float64 (a step-by-step RNN, retain_grad on the states,
the backward step's vector–Jacobian product by autograd); Ω = 0 where every step preserves the norm; the trainer's
`regularizer: omega`; configs without it unchanged; one-line errors.
Run: `.venv/bin/pytest tests/test_omega.py`.
"""

from __future__ import annotations

import math

import pytest
import torch

import rnnlab
from rnnlab.lab.clip import clip_gradients
from rnnlab.lab.config import ConfigError, RunConfig, make_config
from rnnlab.lab.store import Store
from rnnlab.lab.trainer import Trainer, build_model, build_task

T, B, IN, H = 6, 3, 4, 5  # deliberately unequal sizes (IN: input features)
PHI = {"tanh": torch.tanh, "relu": torch.relu, "linear": lambda z: z}


def _module(nonlinearity: str, seed: int = 0, scale: float = 1.0) -> rnnlab.RNN:
    torch.manual_seed(seed)
    rnn = rnnlab.RNN(IN, H, nonlinearity=nonlinearity, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(scale)
    return rnn


def _inputs(seed: int = 1):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, IN, generator=gen, dtype=torch.float64)
    readout = torch.randn(T, B, H, generator=gen, dtype=torch.float64)
    return x, readout


def _loss(states, readout):
    """A loss at every step (so every ∂L/∂h_t differs from the back-propagated part alone); states (T, B, H)."""
    return (states * readout).sum() + 0.5 * states[-1].square().sum()


def _rnnlab_omega(rnn, x, loss_fn, squared=False):
    """rnnlab's Ω as a user computes it, and W_hh's gradient from Ω alone."""
    with rnnlab.record_gradients(rnn, keep_vectors=True) as rec:
        output, _ = rnn(x)  # (B, T, H)
        loss_fn(output.transpose(0, 1)).backward()
    rnn.zero_grad(set_to_none=True)
    reg = rnnlab.omega(rnn, rec.last, output, squared=squared)
    reg.backward()
    return reg, rnn.weight_hh_l0.grad, rnn


def _reference_omega(rnn, x, loss_fn, nonlinearity, squared=False):
    """Ω from scratch: the RNN step by step, ∂L/∂h_{k+1} by retain_grad, the backward step's product by autograd.

    The paper's eq. 10 holds ∂L/∂h_{k+1} and the states constant; here the step is re-linearised at the recorded
    point, h ↦ φ(p_k + (h − h_k) W_hhᵀ), whose Jacobian at h_k is the step's own and whose dependence on W_hh
    through φ′ vanishes there, so autograd's double backward gives exactly the held-constant gradient.
    """
    phi = PHI[nonlinearity]
    w_ih, b_ih, b_hh = (p.detach() for p in (rnn.weight_ih_l0, rnn.bias_ih_l0, rnn.bias_hh_l0))
    w_hh = rnn.weight_hh_l0.detach().clone().requires_grad_()
    xs = x.transpose(0, 1)  # (T, B, I)
    h = torch.zeros(B, H, dtype=torch.float64)
    states, pres = [], []
    for t in range(T):
        pre = xs[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        h = phi(pre)
        h.retain_grad()
        states.append(h)
        pres.append(pre.detach())
    loss_fn(torch.stack(states)).backward()
    previous = [torch.zeros(B, H, dtype=torch.float64)] + [s.detach() for s in states[:-1]]
    w_hh.grad = None
    terms = []
    for k in range(T):
        g = states[k].grad.detach()  # ∂L/∂h_{k+1}, all paths, (B, H)
        h_k = previous[k].clone().requires_grad_()
        stepped = phi(pres[k] + (h_k - previous[k]) @ w_hh.T)
        (back,) = torch.autograd.grad(stepped, h_k, g, create_graph=True)  # g · ∂h_{k+1}/∂h_k
        for b in range(B):
            g_norm = g[b].norm()
            if g_norm < 1e-10:
                continue
            ratio = back[b].norm() ** 2 / g_norm**2 if squared else back[b].norm() / g_norm
            terms.append((ratio - 1) ** 2)
    value = torch.stack(terms).sum() / len(terms)
    value.backward()
    return value.detach(), w_hh.grad


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "linear"])
@pytest.mark.parametrize("squared", [False, True])
def test_omega_and_its_gradient_match_the_reference(nonlinearity, squared):
    x, readout = _inputs()
    rnn = _module(nonlinearity, scale=1.5)
    reg, grad, _ = _rnnlab_omega(rnn, x, lambda s: _loss(s, readout), squared)
    ref, ref_grad = _reference_omega(rnn, x, lambda s: _loss(s, readout), nonlinearity, squared)
    assert reg.dtype == torch.float64 and reg.dim() == 0
    assert float(ref) > 1e-3, "a non-trivial Ω, so the comparison means something"
    torch.testing.assert_close(reg.detach(), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("squared", [False, True])
def test_omega_for_indrnn_matches_the_reference_with_u_element_wise(squared):
    """IndRNN's step Jacobian is diag(ReLU′ ⊙ u): Ω and its gradient (on u) against autograd from scratch."""
    x, readout = _inputs()
    torch.manual_seed(0)
    rnn = rnnlab.IndRNN(IN, H, batch_first=True, dtype=torch.float64, recurrent_max_abs=None)
    with torch.no_grad():
        rnn.weight_hh_l0.uniform_(-1.5, 1.5)
    loss_fn = lambda s: _loss(s, readout)  # noqa: E731
    reg, grad, _ = _rnnlab_omega(rnn, x, loss_fn, squared)
    w_ih, b_ih = rnn.weight_ih_l0.detach(), rnn.bias_ih_l0.detach()
    u = rnn.weight_hh_l0.detach().clone().requires_grad_()
    h, states, pres = torch.zeros(B, H, dtype=torch.float64), [], []
    for t in range(T):
        pre = x[:, t] @ w_ih.T + b_ih + u * h
        h = torch.relu(pre)
        h.retain_grad()
        states.append(h)
        pres.append(pre.detach())
    loss_fn(torch.stack(states)).backward()
    previous = [torch.zeros(B, H, dtype=torch.float64)] + [s.detach() for s in states[:-1]]
    terms = []
    for k in range(T):
        g = states[k].grad.detach()
        h_k = previous[k].clone().requires_grad_()
        (back,) = torch.autograd.grad(torch.relu(pres[k] + (h_k - previous[k]) * u), h_k, g, create_graph=True)
        for b in range(B):
            if g[b].norm() >= 1e-10:
                ratio = back[b].norm() ** 2 / g[b].norm() ** 2 if squared else back[b].norm() / g[b].norm()
                terms.append((ratio - 1) ** 2)
    ref = torch.stack(terms).sum() / len(terms)
    u.grad = None
    ref.backward()
    assert float(ref.detach()) > 1e-3, "a non-trivial Ω, so the comparison means something"
    torch.testing.assert_close(reg.detach(), ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, u.grad, rtol=1e-10, atol=1e-12)


def _reference_stack(rnn, x, loss_fn, phi, elementwise: bool):
    """Ω of a stacked, possibly bidirectional RNN (or IndRNN, `elementwise`) from scratch: every layer and
    direction step by step (the reverse one from t = T−1 down), retain_grad on every state, one term per layer,
    direction, step and sample from that layer's own ∂L/∂h and W_hh (re-linearised as in `_reference_omega`),
    their mean; and each W_hh's gradient from Ω alone."""
    params = {name: p.detach() for name, p in rnn.named_parameters()}
    w = {name: p.clone().requires_grad_() for name, p in params.items() if name.startswith("weight_hh")}
    layer_input, steps = x.transpose(0, 1), []  # (T, B, I); per layer and direction: (name, states, pres, previous)
    for layer in range(rnn.num_layers):
        outputs = []
        for direction in range(rnn.num_directions):
            suffix = f"l{layer}" + ("_reverse" if direction else "")
            w_ih, w_hh = params[f"weight_ih_{suffix}"], w[f"weight_hh_{suffix}"]
            bias = params[f"bias_ih_{suffix}"] + (0.0 if elementwise else params[f"bias_hh_{suffix}"])
            h = torch.zeros(B, H, dtype=torch.float64)
            states, pres, previous = [None] * T, [None] * T, [None] * T
            for t in range(T) if direction == 0 else range(T - 1, -1, -1):
                previous[t] = h.detach()
                pre = layer_input[t] @ w_ih.T + bias + (h * w_hh if elementwise else h @ w_hh.T)
                h = phi(pre)
                h.retain_grad()
                states[t], pres[t] = h, pre.detach()
            steps.append((f"weight_hh_{suffix}", states, pres, previous))
            outputs.append(torch.stack(states))
        layer_input = torch.cat(outputs, dim=-1)  # (T, B, D·H)
    loss_fn(layer_input).backward()
    for weight in w.values():
        weight.grad = None
    terms = []
    for name, states, pres, previous in steps:
        for t in range(T):
            g, h_k = states[t].grad.detach(), previous[t].clone().requires_grad_()
            moved = (h_k - previous[t]) * w[name] if elementwise else (h_k - previous[t]) @ w[name].T
            (back,) = torch.autograd.grad(phi(pres[t] + moved), h_k, g, create_graph=True)
            terms += [(back[b].norm() / g[b].norm() - 1) ** 2 for b in range(B) if g[b].norm() >= 1e-10]
    value = torch.stack(terms).sum() / len(terms)
    value.backward()
    return value.detach(), {name: weight.grad for name, weight in w.items()}


@pytest.mark.parametrize(
    ("cell", "layers", "bidirectional"),
    [("tanh", 2, False), ("tanh", 1, True), ("relu", 2, True), ("indrnn", 3, False), ("indrnn", 2, True)],
)
def test_omega_for_stacked_and_bidirectional_modules_matches_the_reference(cell, layers, bidirectional):
    """Every layer's and direction's W_hh gets its own terms, from the ∂L/∂h_t and h_t the record keeps."""
    torch.manual_seed(0)
    options = {"num_layers": layers, "bidirectional": bidirectional, "batch_first": True, "dtype": torch.float64}
    if cell == "indrnn":
        rnn = rnnlab.IndRNN(IN, H, recurrent_max_abs=None, **options)
    else:
        rnn = rnnlab.RNN(IN, H, nonlinearity=cell, **options)
    with torch.no_grad():
        for name, weight in rnn.named_parameters():
            if name.startswith("weight_hh"):
                weight.uniform_(-1.5, 1.5) if cell == "indrnn" else weight.mul_(1.5)
    x, _ = _inputs()
    readout = torch.randn(T, B, rnn.num_directions * H, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    loss_fn = lambda out: (out * readout).sum() + 0.5 * out[-1].square().sum()  # noqa: E731  out: (T, B, D·H)
    with rnnlab.record_gradients(rnn, keep_vectors=True) as rec:
        output, _ = rnn(x)
        loss_fn(output.transpose(0, 1)).backward()
    rnn.zero_grad(set_to_none=True)
    reg = rnnlab.omega(rnn, rec)
    reg.backward()
    phi = torch.relu if cell in ("relu", "indrnn") else torch.tanh
    ref, ref_grads = _reference_stack(rnn, x, loss_fn, phi, elementwise=cell == "indrnn")
    assert float(ref) > 1e-3 and len(ref_grads) == layers * rnn.num_directions
    torch.testing.assert_close(reg.detach(), ref, rtol=1e-10, atol=1e-12)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(getattr(rnn, name).grad, grad, rtol=1e-10, atol=1e-12, msg=name)


def test_a_record_of_another_module_is_refused():
    one, two = rnnlab.RNN(IN, H), rnnlab.RNN(IN, H, num_layers=2)
    with rnnlab.record_gradients(two, keep_vectors=True) as rec:
        output, _ = two(torch.randn(T, B, IN))
        output.sum().backward()
    with pytest.raises(
        ValueError,
        match=r"the record is of a module with 2 layer\(s\) and 1 direction\(s\), not of this one \(1 and 1\)",
    ):
        rnnlab.omega(one, rec)


def test_the_gradient_reaches_the_recurrent_weight_only():
    x, readout = _inputs()
    _, grad, rnn = _rnnlab_omega(_module("tanh"), x, lambda s: _loss(s, readout))
    assert grad is not None and float(grad.abs().max()) > 0
    assert all(p.grad is None for name, p in rnn.named_parameters() if name != "weight_hh_l0")


def test_steps_the_gradient_does_not_reach_are_left_out():
    """A loss on h_2 only: ∂L/∂h_t = 0 for t > 2, and those steps are not terms (RNN.py's `bound`)."""
    x, _ = _inputs()
    rnn = _module("tanh", scale=1.5)
    loss_fn = lambda s: s[1].square().sum()  # noqa: E731
    reg, grad, _ = _rnnlab_omega(rnn, x, loss_fn)
    ref, ref_grad = _reference_omega(rnn, x, loss_fn, "tanh")
    torch.testing.assert_close(reg.detach(), ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_no_gradient_at_all_gives_zero_not_nan():
    x, _ = _inputs()
    reg, grad, _ = _rnnlab_omega(_module("tanh"), x, lambda s: 0.0 * s.sum())
    assert float(reg.detach()) == 0.0 and torch.equal(grad, torch.zeros_like(grad))


def test_omega_is_zero_for_a_norm_preserving_recurrence():
    """A linear RNN with orthogonal W_hh maps every gradient to one of the same norm: each term is 0."""
    x, readout = _inputs()
    rnn = _module("linear")
    with torch.no_grad():
        q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
        rnn.weight_hh_l0.copy_(q)
    reg, grad, _ = _rnnlab_omega(rnn, x, lambda s: _loss(s, readout))
    assert float(reg.detach()) < 1e-24 and float(grad.abs().max()) < 1e-12
    # …and the same RNN with W_hh shrunk vanishes the gradient: Ω > 0, its gradient pushes W_hh to grow.
    with torch.no_grad():
        rnn.weight_hh_l0.mul_(0.5)
    reg, grad, _ = _rnnlab_omega(rnn, x, lambda s: _loss(s, readout))
    assert float(reg.detach()) > 0.05 and float((grad * rnn.weight_hh_l0.detach()).sum()) < 0


def test_batch_first_false_and_unbatched_inputs():
    x, readout = _inputs()
    rnn = _module("tanh")
    reg, _, _ = _rnnlab_omega(rnn, x, lambda s: _loss(s, readout))
    time_major = rnnlab.RNN(IN, H, dtype=torch.float64)
    time_major.load_state_dict(rnn.state_dict())
    with rnnlab.record_gradients(time_major, keep_vectors=True) as rec:
        output, _ = time_major(x.transpose(0, 1))  # (T, B, H)
        _loss(output, readout).backward()
    torch.testing.assert_close(rnnlab.omega(time_major, rec, output), reg.detach(), rtol=1e-12, atol=0)
    with rnnlab.record_gradients(time_major, keep_vectors=True) as rec:
        output, _ = time_major(x[0])  # (T, I) → (T, H): sample 0 unbatched
        _loss(output[:, None], readout[:, :1]).backward()
    with rnnlab.record_gradients(time_major, keep_vectors=True) as rec_batch:
        output_batch, _ = time_major(x[:1].transpose(0, 1))  # (T, 1, H): the same sample as a batch of one
        _loss(output_batch, readout[:, :1]).backward()
    single = rnnlab.omega(time_major, rec, output)
    torch.testing.assert_close(single, rnnlab.omega(time_major, rec_batch, output_batch), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: rnnlab.LSTM(IN, H),
            r"omega supports the cells indrnn, rnn_linear, rnn_relu, rnn_tanh; got cell 'lstm'",
        ),
        (lambda: rnnlab.GRU(IN, H), r"got cell 'gru'"),
        (lambda: rnnlab.RNN(IN, H, num_layers=2), r"states \(the output\) are the top layer's only; for num_layers=2"),
        (lambda: rnnlab.RNN(IN, H, bidirectional=True), r"bidirectional=True leave them out"),
        (lambda: rnnlab.RNN(IN, H, truncate=2), r"truncate=2"),
    ],
)
def test_unsupported_modules_are_refused_in_one_line(make, message):
    module = make()
    with rnnlab.record_gradients(module, keep_vectors=True) as rec:
        output, _ = module(torch.randn(T, B, IN))
        output.sum().backward()
    with pytest.raises(ValueError, match=message) as error:
        rnnlab.omega(module, rec, output)
    assert "\n" not in str(error.value)


def test_bad_records_and_states_are_refused():
    rnn = rnnlab.RNN(IN, H)
    x = torch.randn(T, B, IN)
    with rnnlab.record_gradients(rnn) as rec:
        output, _ = rnn(x)
        output.sum().backward()
    with pytest.raises(ValueError, match=r"keep_vectors=True"):
        rnnlab.omega(rnn, rec, output)
    with rnnlab.record_gradients(rnn, keep_vectors=True) as rec:
        output, _ = rnn(x)
        output.sum().backward()
    with pytest.raises(ValueError, match=r"states must be the output \(T, B, H\) .* got shape \(5, 3, 5\)"):
        rnnlab.omega(rnn, rec, output[1:])
    with pytest.raises(TypeError, match=r"module must be an rnnlab RNN or IndRNN, got RNN"):
        rnnlab.omega(torch.nn.RNN(IN, H), rec, output)
    with pytest.raises(TypeError, match=r"record must be a BackwardRecord"):
        rnnlab.omega(rnn, rec.norms, output)
    with pytest.raises(RuntimeError, match=r"no gradients recorded yet"):
        rnnlab.omega(rnn, rnnlab.GradientRecorder(keep_vectors=True), output)


# ------------------------------------------------------------------------------------------------ configs, trainer

OMEGA_RUN = {
    "task": "adding",
    "seq_len": 12,
    "cell": "rnn_tanh",
    "hidden_size": 8,
    "batch_size": 4,
    "steps": 4,
    "eval_every": 2,
    "optimizer": "sgd",
    "lr": 0.01,
    "clip": "global_norm",
    "clip_threshold": 1.0,
    "stop_when_solved": False,
}


def test_configs_without_a_regularizer_keep_their_hash():
    assert RunConfig().hash() == "0ca3b76a2c84eae2", "the default config's hash, as every store knows it"
    plain = dict(OMEGA_RUN)
    assert make_config({**plain, "regularizer": "none"}).hash() == make_config(plain).hash()
    assert "regularizer" not in make_config(plain).canonical() and "omega_weight" not in make_config(plain).canonical()
    with_omega = make_config({**plain, "regularizer": "omega", "omega_weight": 2.0})
    assert with_omega.hash() != make_config(plain).hash()
    assert with_omega.hash() != make_config({**plain, "regularizer": "omega", "omega_weight": 1.0}).hash()
    assert with_omega.label() == "rnn_tanh clip global_norm 1 omega 2"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"cell": "lstm"},
            r"regularizer 'omega' supports the cells indrnn, rnn_linear, rnn_relu, rnn_tanh; got cell 'lstm'",
        ),
        ({"truncate": 5}, r"drop truncate"),
        ({"task": "text", "seq_len": 20}, r"applies to sequence tasks, not the stream task 'text'"),
        ({"omega_weight": None}, r"needs omega_weight ≥ 0"),
        ({"omega_weight": -1.0}, r"omega_weight: .*greater than or equal to 0"),
        ({"regularizer": "none"}, r"omega_weight applies to regularizer 'omega'"),
        ({"regularizer": "l2"}, r"regularizer: Input should be 'none' or 'omega'"),
        ({"regularizer": "none", "omega_weight": None, "omega_form": "squared"}, r"omega_form applies to regularizer"),
        ({"omega_form": "cube"}, r"omega_form: Input should be 'norm' or 'squared'"),
    ],
)
def test_bad_regularizer_configs_are_one_line_errors(change, message):
    with pytest.raises(ConfigError, match=message) as error:
        make_config({**OMEGA_RUN, "regularizer": "omega", "omega_weight": 2.0, **change})
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("cell", "layers"), [("rnn_tanh", 1), ("indrnn", 1), ("rnn_tanh", 2)])
def test_the_trainer_applies_omega_as_a_hand_written_loop_does_and_logs_it(tmp_path, cell, layers):
    """One update of the trainer against the docstring's loop: record, loss backward, weight·Ω backward, clip,
    step — the same parameters to the last bit; then a short run logs Ω at each evaluation and in the store."""
    run = {**OMEGA_RUN, "cell": cell, "num_layers": layers, "regularizer": "omega", "omega_weight": 2.0}
    config = make_config({**run, "steps": 1})
    trainer = Trainer(config)
    trainer.run()
    task = build_task(config)
    model = build_model(config, task)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
    x, y = task.sample(config.batch_size, torch.Generator().manual_seed(config.seed + 1))
    with rnnlab.record_gradients(model.rnn, keep_vectors=True) as rec:
        output, _ = model.rnn(model.encode(x))
        task.loss(model.read(output), y).backward()
    reg = rnnlab.omega(model.rnn, rec.last, output if layers == 1 else None)
    (2.0 * reg).backward()
    clip_gradients(model.parameters(), "global_norm", 1.0)
    optimizer.step()
    for (name, mine), theirs in zip(model.named_parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(mine, theirs), name
    assert trainer.result.evaluations[-1].omega == pytest.approx(float(reg.detach()), rel=1e-12)

    result = Trainer(make_config(run)).run()
    omegas = [e.omega for e in result.evaluations]
    assert math.isnan(omegas[0]) and all(math.isfinite(v) and v > 0 for v in omegas[1:]) and len(omegas) == 3
    with Store(tmp_path / "runs.db") as store:
        run_id = store.record_run("omega", config.canonical(), config.hash(), {}, result.to_dict())
        logged = store.metrics(run_id, "window_omega")
    assert [(step, value) for step, _, value in logged] == [
        (0, None),  # no update before the first evaluation: undefined, as the other window metrics
        (2, pytest.approx(omegas[1])),
        (4, pytest.approx(omegas[2])),
    ]


def test_the_trainer_takes_rnn_py_s_squared_ratio_when_told():
    """omega_form: squared logs Ω as rnnlab.omega(..., squared=True) gives it for the same batch and weights (the
    official RNN.py's ratio of squared norms), under its own hash and label; the default form is the paper's."""
    measured = {**OMEGA_RUN, "regularizer": "omega", "omega_weight": 0.0, "steps": 1}
    squared, plain = make_config({**measured, "omega_form": "squared"}), make_config(measured)
    assert squared.hash() != plain.hash() and "omega_form" not in plain.canonical()
    assert squared.label().endswith("omega 0 squared") and plain.label().endswith("omega 0")
    trainer = Trainer(squared)
    trainer.run()
    task = build_task(squared)
    model = build_model(squared, task)
    x, y = task.sample(squared.batch_size, torch.Generator().manual_seed(squared.seed + 1))
    with rnnlab.record_gradients(model.rnn, keep_vectors=True) as rec:
        output, _ = model.rnn(model.encode(x))
        task.loss(model.read(output), y).backward()
    by_hand = float(rnnlab.omega(model.rnn, rec.last, output, squared=True).detach())
    assert trainer.result.evaluations[-1].omega == pytest.approx(by_hand, rel=1e-12)
    assert by_hand != pytest.approx(float(rnnlab.omega(model.rnn, rec.last, output).detach()), rel=1e-3)


def test_omega_weight_zero_measures_and_trains_exactly_as_no_regularizer():
    """Weight 0 records Ω but adds nothing: the same weights, bit for bit, as the run without a regulariser —
    the regulariser's path leaves the loss's own gradient untouched."""
    plain = Trainer(make_config(OMEGA_RUN))
    plain.run()
    measured = Trainer(make_config({**OMEGA_RUN, "regularizer": "omega", "omega_weight": 0.0}))
    measured.run()
    for a, b in zip(plain.model.parameters(), measured.model.parameters(), strict=True):
        assert torch.equal(a, b)
    assert all(e.omega is None for e in plain.result.evaluations)
    assert measured.result.evaluations[-1].omega > 0
    weighted = Trainer(make_config({**OMEGA_RUN, "regularizer": "omega", "omega_weight": 2.0}))
    weighted.run()
    assert not torch.equal(weighted.model.rnn.weight_hh_l0, plain.model.rnn.weight_hh_l0)


def test_the_trainer_refuses_omega_for_a_model_it_cannot_read():
    config = make_config({**OMEGA_RUN, "regularizer": "omega", "omega_weight": 1.0})
    with pytest.raises(TypeError, match=r"regularizer 'omega' needs a SequenceModel .* got Linear"):
        Trainer(config, model=torch.nn.Linear(2, 2))


def test_the_unweighted_loss_is_what_the_trainer_reports():
    """The logged training loss is the task's loss, not loss + α·Ω (RNN.py reports the cost alone too)."""
    config = make_config({**OMEGA_RUN, "regularizer": "omega", "omega_weight": 2.0, "steps": 1, "eval_every": 1})
    trainer = Trainer(config)
    trainer.run()
    task = build_task(config)
    model = build_model(config, task)
    x, y = task.sample(config.batch_size, torch.Generator().manual_seed(config.seed + 1))
    assert trainer.result.evaluations[-1].train_loss == pytest.approx(
        float(task.loss(model(x)[0], y).detach()), rel=1e-12
    )


def test_the_command_line_trains_with_omega_and_shows_it(tmp_path, capsys):
    from rnnlab.cli import main

    store = ["--store", str(tmp_path / "s.db")]
    argv = ["train", "--task", "adding", "--seq-len", "8", "--cell", "rnn_tanh", "--hidden", "6", "--steps", "4"]
    argv += ["--eval-every", "2", "--clip-norm", "1", "--set", "regularizer=omega", "--set", "omega_weight=2"]
    assert main([*argv, "--no-progress", *store]) == 0
    assert "Pascanu's Ω, weight 2" in capsys.readouterr().out
    assert main(["runs", "show", "1", *store]) == 0
    shown = capsys.readouterr().out
    rows = [line for line in shown.splitlines() if line.startswith("│    2 │")]
    assert rows and rows[0].count("│") == 12, "the Ω column sits between clip rate and the horizons"
