"""coRNN — the coupled oscillatory RNN (`cells/oscillator.py`, `rnnlab.CoRNN`).

Checked in float64 against an independent reference written here from the paper's equations (Rusch & Mishra
2021, eq. (3): z updated from the old y, z; then y from the new z) with plain torch ops and separate matrices
W, 𝒲, V: forward, every gradient, and ‖∂L/∂y_t‖ and ‖∂L/∂z_t‖ per step against `retain_grad` on the
reference's states (1e-10); the authors' layout (one i2h Linear on cat(x, z, y)) as a plain copy; `gradcheck`
(and `gradgradcheck`, slow) through the engine; truncated BPTT against re-running each loss term from a
detached state; the spectral radius against the eigenvalues of autograd's Jacobian of one step; the doors every
table cell goes through (trainer, config, CLI, init schemes, diagnose, monitor, saving); the one-line errors.
Run: `.venv/bin/pytest tests/test_cornn.py`.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

import rnnlab
from rnnlab.cli import build_parser, main
from rnnlab.lab.config import make_config
from rnnlab.lab.study import load_study
from rnnlab.lab.trainer import Trainer
from rnnlab.recurrent.cells import CELLS
from rnnlab.recurrent.init import SCHEMES
from tests.reference import truncated_reference_grads

F64 = torch.float64
T, B, I, H, L = 5, 2, 3, 7, 2  # noqa: E741 - the sizes as the docs name them, deliberately unequal

#: (dt, gamma, epsilon): the defaults (the authors' adding script) and their sMNIST script's values.
CONSTANTS = {"adding": (0.06, 66.0, 15.0), "smnist": (0.042, 2.7, 4.7)}


# ------------------------------------------------------------------------------------------------ the reference


def reference(x, y0, z0, params: dict, num_layers: int, dt: float, gamma: float, epsilon: float):
    """The paper's IMEX scheme step by step, x (T, B, I), y0 / z0 (L, B, H) → (output (T, B, H), y_n, z_n
    (L, B, H), ys[layer][t], zs[layer][t] with retain_grad). Per layer: V = weight_ih, [𝒲 | W] = weight_hh."""
    layer_input, y_n, z_n, ys, zs = x, [], [], [], []
    for layer in range(num_layers):
        V = params[f"weight_ih_l{layer}"]
        w_hh = params[f"weight_hh_l{layer}"]
        W_z, W_y = w_hh[:, :H], w_hh[:, H:]  # 𝒲 acts on z, W on y
        b = params.get(f"bias_ih_l{layer}")
        y, z, ys_l, zs_l = y0[layer], z0[layer], [], []
        for t in range(x.shape[0]):
            drive = torch.tanh(y @ W_y.T + z @ W_z.T + layer_input[t] @ V.T + (0 if b is None else b))
            z = z + dt * (drive - gamma * y - epsilon * z)
            y = y + dt * z
            for state in (y, z):
                if state.requires_grad:
                    state.retain_grad()
            ys_l.append(y)
            zs_l.append(z)
        ys.append(ys_l)
        zs.append(zs_l)
        y_n.append(y)
        z_n.append(z)
        layer_input = torch.stack(ys_l)
    return layer_input, torch.stack(y_n), torch.stack(z_n), ys, zs


def _module(constants=CONSTANTS["adding"], **kwargs):
    dt, gamma, epsilon = constants
    torch.manual_seed(0)
    options = {"num_layers": L, "dtype": F64, **kwargs}
    return rnnlab.CoRNN(I, H, dt=dt, gamma=gamma, epsilon=epsilon, **options)


def _leaves(module):
    return {n: p.detach().clone().requires_grad_() for n, p in module.named_parameters()}


# ------------------------------------------------------------------------------------------------ the table


def test_the_cell_is_a_row_of_the_table_with_the_authors_layout():
    cell = CELLS["cornn"]
    assert cell.has_cell_state and cell.native_kind is None and not cell.recurrent_bias
    assert (cell.dt, cell.gamma, cell.epsilon) == CONSTANTS["adding"]
    shapes = {n: tuple(p.shape) for n, p in rnnlab.CoRNN(I, H, num_layers=2).named_parameters()}
    assert shapes == {
        "weight_ih_l0": (H, I), "weight_hh_l0": (H, 2 * H), "bias_ih_l0": (H,),
        "weight_ih_l1": (H, H), "weight_hh_l1": (H, 2 * H), "bias_ih_l1": (H,),
    }  # fmt: skip
    assert rnnlab.CoRNN(I, H).cell is cell, "the defaults: the table's own row"
    own = rnnlab.CoRNN(I, H, dt=0.042, gamma=2.7, epsilon=4.7)
    assert own.cell is not cell and (own.dt, own.gamma, own.epsilon) == CONSTANTS["smnist"]
    assert cell.dt == 0.06, "a module's own constants never touch the table's row"


def test_the_initialisation_is_the_authors_i2h_linear():
    """nn.Linear(I + 2H, H) draws weight and bias U(±1/√(I + 2H)); each layer's fan-in includes its 2H."""
    torch.manual_seed(0)
    module = rnnlab.CoRNN(I, 40, num_layers=2)
    for layer, fan_in in ((0, I + 80), (1, 40 + 80)):
        bound = 1 / math.sqrt(fan_in)
        for kind in ("weight_ih", "weight_hh", "bias_ih"):
            p = getattr(module, f"{kind}_l{layer}").detach()
            assert p.abs().max() <= bound and p.abs().max() > 0.9 * bound, f"{kind}_l{layer}"


# ------------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("constants", list(CONSTANTS))
@pytest.mark.parametrize("bias", [True, False])
def test_forward_gradients_and_recorded_norms_of_y_and_z_equal_the_papers_equations(constants, bias):
    module = _module(CONSTANTS[constants], bias=bias)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    y0, z0 = torch.randn(L, B, H, dtype=F64, generator=gen), torch.randn(L, B, H, dtype=F64, generator=gen)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)
    w_y, w_z = torch.randn(L, B, H, dtype=F64, generator=gen), torch.randn(L, B, H, dtype=F64, generator=gen)

    x1, y01, z01 = (t.clone().requires_grad_() for t in (x, y0, z0))
    with rnnlab.record_gradients(module) as rec:
        out, (y_n, z_n) = module(x1, (y01, z01))
        ((out * w_out).sum() + (y_n * w_y).sum() + (z_n * w_z).sum()).backward()

    params = _leaves(module)
    x2, y02, z02 = (t.clone().requires_grad_() for t in (x, y0, z0))
    ref_out, ref_y, ref_z, ys, zs = reference(x2, y02, z02, params, L, *CONSTANTS[constants])
    ((ref_out * w_out).sum() + (ref_y * w_y).sum() + (ref_z * w_z).sum()).backward()

    close = {"rtol": 1e-10, "atol": 1e-12}
    for got, want in ((out, ref_out), (y_n, ref_y), (z_n, ref_z), (x1.grad, x2.grad), (y01.grad, y02.grad)):
        torch.testing.assert_close(got, want, **close)
    torch.testing.assert_close(z01.grad, z02.grad, **close)
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, params[n].grad, **close, msg=lambda m, n=n: f"{n}: {m}")

    def norms(states):  # (L, T): the batch mean of ‖∂L/∂state_t‖ per step, as the recorder keeps it
        return torch.stack([torch.stack([s.grad.norm(dim=-1).mean() for s in layer]) for layer in states])

    torch.testing.assert_close(rec.last.norms, norms(ys), **close)  # ‖∂L/∂y_t‖
    torch.testing.assert_close(rec.last.cell_norms, norms(zs), **close)  # ‖∂L/∂z_t‖
    assert rec.last.cell_norms[0, 0] > 0


def test_the_authors_i2h_weight_is_the_two_weights_side_by_side():
    """Their cell: one Linear on cat(x, hz, hy); z first, then y. Copying weight_ih and weight_hh side by side
    into it gives the same states."""
    module = _module(num_layers=1)
    i2h = torch.nn.Linear(I + 2 * H, H, dtype=F64)
    with torch.no_grad():
        i2h.weight.copy_(torch.cat([module.weight_ih_l0, module.weight_hh_l0], dim=1))
        i2h.bias.copy_(module.bias_ih_l0)
    dt, gamma, epsilon = CONSTANTS["adding"]
    x = torch.randn(T, B, I, dtype=F64, generator=torch.Generator().manual_seed(4))
    y = z = torch.zeros(B, H, dtype=F64)
    for t in range(T):
        z = z + dt * (torch.tanh(i2h(torch.cat([x[t], z, y], dim=1))) - gamma * y - epsilon * z)
        y = y + dt * z
    out, (y_n, z_n) = module(x)
    torch.testing.assert_close(y_n[0], y, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out[-1], y, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(z_n[0], z, rtol=1e-12, atol=1e-14)


def _engine_function(constants: str):
    """The module as a function of (x, y0, z0, *weights), for gradcheck: T=3, B=2, I=2, H=2, one layer."""
    dt, gamma, epsilon = CONSTANTS[constants]
    module = rnnlab.CoRNN(2, 2, dtype=F64, dt=dt, gamma=gamma, epsilon=epsilon)
    names = [n for n, _ in module.named_parameters()]
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    y0 = torch.randn(1, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    z0 = torch.randn(1, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def run(x, y0, z0, *ws):
        out, (y_n, z_n) = functional_call(module, dict(zip(names, ws, strict=True)), (x, (y0, z0)))
        return out, y_n, z_n

    return run, (x, y0, z0, *weights)


@pytest.mark.parametrize("constants", list(CONSTANTS))
def test_gradcheck_through_the_engine(constants):
    run, inputs = _engine_function(constants)
    assert torch.autograd.gradcheck(run, inputs)


@pytest.mark.slow
def test_gradgradcheck_through_the_engine():
    run, inputs = _engine_function("smnist")
    assert torch.autograd.gradgradcheck(run, inputs), "create_graph=True re-runs the step under autograd"


def test_truncated_backward_equals_each_loss_term_rerun_from_a_detached_state():
    k = 2
    constants = CONSTANTS["smnist"]
    module = _module(constants, num_layers=1, truncate=k)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)
    out, _ = module(x)
    (out * w_out).sum().backward()

    # ∂L_s/∂(y_t, z_t) is kept for s − t < k only: term s sees steps s−k+1 … s, from the detached (y, z) before.
    params = _leaves(module)
    zeros = torch.zeros(1, B, H, dtype=F64)
    with torch.no_grad():
        _, _, _, ys, zs = reference(x, zeros, zeros, params, 1, *constants)

    def before(t):
        return (ys[0][t - 1][None], zs[0][t - 1][None]) if t > 0 else (zeros, zeros)

    def run(x_part, state):
        return reference(x_part, *state, params, 1, *constants)[0]

    total = truncated_reference_grads(run, before, x, w_out, k, params)
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, total[n], rtol=1e-10, atol=1e-12, msg=lambda m, n=n: f"{n}: {m}")


def test_packed_bidirectional_input_equals_each_sequence_alone():
    """The split paths (`split_forward.py`) carry both states, as the LSTM's (h, c)."""
    module = _module(CONSTANTS["smnist"], bidirectional=True)
    gen = torch.Generator().manual_seed(10)
    seqs = [torch.randn(n, I, dtype=F64, generator=gen) for n in (5, 3, 4)]
    out, (y_n, z_n) = module(pack_sequence(seqs, enforce_sorted=False))
    padded, _ = pad_packed_sequence(out)  # (T, B, 2H)
    for i, seq in enumerate(seqs):
        alone, (y_alone, z_alone) = module(seq[:, None])
        torch.testing.assert_close(padded[: len(seq), i], alone[:, 0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(y_n[:, i], y_alone[:, 0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(z_n[:, i], z_alone[:, 0], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------------ diagnostics


@pytest.mark.parametrize("constants", list(CONSTANTS))
def test_spectral_radius_is_that_of_one_steps_jacobian_at_the_origin(constants):
    """tanh′(0) = 1, so at y = z = 0 with zero input and bias the step is linear and its Jacobian on (y, z) is
    the matrix whose radius `spectral_radius` reports."""
    module = _module(CONSTANTS[constants], num_layers=1, bias=False)
    cell = module.cell

    def step(state):  # (2H,) [y, z] → [y_n, z_n]
        y, z, _ = cell.step(torch.zeros(1, H, dtype=F64), state[None, :H], state[None, H:], module.weight_hh_l0, None)
        return torch.cat([y, z], dim=1)[0]

    jacobian = torch.autograd.functional.jacobian(step, torch.zeros(2 * H, dtype=F64))  # (2H, 2H)
    radius = rnnlab.spectral_radius(module)
    assert radius.shape == (1, 1)
    torch.testing.assert_close(radius[0, 0], torch.linalg.eigvals(jacobian).abs().max(), rtol=1e-10, atol=0)


def test_gradient_flow_and_jacobian_norms_read_y():
    module = _module(CONSTANTS["smnist"], num_layers=1)
    x = torch.randn(12, 3, I, dtype=F64, generator=torch.Generator().manual_seed(5))
    flow = rnnlab.gradient_flow(module, x)
    assert flow.norms.shape == (1, 12) and torch.isfinite(flow.norms).all()
    assert module.weight_hh_l0.grad is None, "the diagnostics run on a copy"
    jac = rnnlab.jacobian_norms(module, x)
    torch.testing.assert_close(jac.spectral[0, -1], torch.tensor(1.0, dtype=F64), rtol=1e-12, atol=0)  # ∂y_T/∂y_T


# ------------------------------------------------------------------------------------------------ the doors


def test_a_config_with_cell_cornn_trains_through_the_trainer():
    config = make_config(
        {"cell": "cornn", "init": "default", "task": "adding", "seq_len": 10, "hidden_size": 6,
         "batch_size": 4, "steps": 4, "eval_every": 2, "lr": 0.02}
    )  # fmt: skip
    trainer = Trainer(config)
    before = {n: p.detach().clone() for n, p in trainer.model.rnn.named_parameters()}
    bound = 1 / math.sqrt(2 + 2 * 6)  # the module's own: the i2h Linear's fan-in I + 2H (adding: I = 2)
    assert all(p.abs().max() <= bound for p in before.values())
    result = trainer.run()
    assert result.steps == 4 and [e.step for e in result.evaluations] == [0, 2, 4]
    assert all(math.isfinite(e.loss) and e.flow is not None for e in result.evaluations), "with flow snapshots"
    for n, p in trainer.model.rnn.named_parameters():
        assert not torch.equal(p.detach(), before[n]), f"{n} did not change"


def test_a_study_file_takes_the_cell_against_the_lstm(tmp_path):
    path = tmp_path / "cornn-adding.yaml"
    path.write_text(
        "defaults: {task: adding, seq_len: 20, hidden_size: 16, lr: 0.02}\n"
        "variants:\n  - {name: coRNN, cell: cornn, init: default}\n  - {name: LSTM, cell: lstm}\n"
    )
    cornn, lstm = load_study(path).runs
    assert (cornn.cell, cornn.init, lstm.cell) == ("cornn", "default", "lstm")


def test_rnnlab_train_takes_the_cell(tmp_path):
    tiny = ["--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "2", "--eval-every", "2", "--no-progress"]
    assert main(["train", "--cell", "cornn", *tiny, "--store", str(tmp_path / "runs.db")]) == 0


def test_every_door_takes_the_cell(capsys):
    module = rnnlab.make_recurrent("cornn", I, H)
    assert type(module) is rnnlab.CoRNN and module.cell is CELLS["cornn"]
    assert make_config({"cell": "cornn", "task": "adding", "seq_len": 10, "hidden_size": 4, "steps": 1}).cell == "cornn"
    assert build_parser().parse_args(["train", "--cell", "cornn"]).cell == "cornn"
    assert "cornn" in SCHEMES["default"].cells and "cornn" in SCHEMES["torch_default"].cells
    seeded = [rnnlab.init.apply(rnnlab.CoRNN(I, H), "default", seed=3).weight_hh_l0.detach() for _ in range(2)]
    torch.testing.assert_close(seeded[0], seeded[1], rtol=0, atol=0)  # the module's own draw, seeded
    assert seeded[0].abs().max() <= 1 / math.sqrt(I + 2 * H), "the i2h Linear's bound"
    orthogonal = rnnlab.init.apply(rnnlab.CoRNN(I, H), "orthogonal", seed=0).weight_hh_l0.detach()  # (H, 2H)
    torch.testing.assert_close(orthogonal @ orthogonal.T, torch.eye(H), rtol=0, atol=1e-5)  # orthonormal rows
    assert main(["inits"]) == 0 and "cornn" in capsys.readouterr().out
    assert main(["diagnose", "--cells", "cornn,lstm", "--seq-len", "30", "--hidden", "8", "--batch", "2"]) == 0
    assert "cornn" in capsys.readouterr().out


@pytest.mark.parametrize("constants", list(CONSTANTS))
def test_a_saved_module_loads_with_weights_only(constants, tmp_path):
    dt, gamma, epsilon = CONSTANTS[constants]
    module = rnnlab.CoRNN(I, H, dt=dt, gamma=gamma, epsilon=epsilon)
    torch.save(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert type(loaded) is rnnlab.CoRNN and (loaded.dt, loaded.gamma, loaded.epsilon) == (dt, gamma, epsilon)
    assert (loaded.cell is CELLS["cornn"]) == (constants == "adding"), "the defaults load as the table's row"
    x = torch.randn(T, B, I)
    torch.testing.assert_close(loaded(x)[0], module(x)[0], rtol=0, atol=0)


def test_the_monitor_records_and_warns_with_advice_for_the_cell():
    module = rnnlab.CoRNN(2, 4)  # the adding defaults: ε = 15 damps z hard, so the reach is short
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1)
    with pytest.warns(rnnlab.recurrent.monitor.HorizonWarning, match="epsilon") as caught:
        monitor.model(torch.randn(300, 3, 2))[0][-1].sum().backward()  # the loss on the last step only
        assert len(monitor.history) == 1 and monitor.history[0].horizon < 100
    assert "chrono" not in str(caught[0].message)


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: rnnlab.CoRNN(3, 4, dt=0), r"CoRNN: dt must be a finite number > 0, got 0"),
        (lambda: rnnlab.CoRNN(3, 4, dt=-0.1), r"CoRNN: dt must be a finite number > 0, got -0\.1"),
        (lambda: rnnlab.CoRNN(3, 4, dt=float("inf")), r"CoRNN: dt must be a finite number > 0, got inf"),
        (lambda: rnnlab.CoRNN(3, 4, gamma=-1.0), r"CoRNN: gamma must be a finite number ≥ 0, got -1\.0"),
        (lambda: rnnlab.CoRNN(3, 4, epsilon=float("nan")), r"CoRNN: epsilon must be a finite number ≥ 0, got nan"),
        (lambda: rnnlab.CoRNN(3, 4, epsilon="15"), r"CoRNN: epsilon must be a finite number ≥ 0, got '15'"),
        (lambda: rnnlab.CoRNN(3, 4, dt=True), r"CoRNN: dt must be a finite number > 0, got True"),
        (lambda: rnnlab.CoRNN(3, 0), r"CoRNN: hidden_size must be a positive integer, got 0"),
        (lambda: rnnlab.CoRNN(3, 4).to_torch(), "cell 'cornn' has no torch.nn equivalent"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_errors(build, message):
    with pytest.raises(ValueError, match=message) as caught:
        build()
    assert "\n" not in str(caught.value)


def test_a_single_state_where_the_pair_is_expected_is_an_error():
    with pytest.raises((TypeError, RuntimeError, ValueError)) as caught:
        rnnlab.CoRNN(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4))
    assert "\n" not in str(caught.value)
