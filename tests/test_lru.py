"""The LRU (`rnnlab.LRU`, `recurrent/lru_module.py`, `lru_scan.py`, `cells/lru.py`).

Checked in float64 against an independent reference written here from the paper's equations with torch's complex
numbers (forward, every gradient, and ‖∂L/∂x_t‖ per step against `retain_grad` on the reference's complex states,
1e-10), for the parallel scan and the step-by-step loop; `gradcheck` and `gradgradcheck`; the doubling scan against the plain loop;
the closed form of the linear recurrence (the per-step gradient is conj(λ)^k times its value at the last step,
so its norm decays exactly as |λ|^k, and the diagnostics' rate, horizon and Jacobian singular values match);
the ring initialisation; the doors every cell goes through (config and trainer, CLI, inits, monitor); and
the one-line errors. Run: `.venv/bin/pytest tests/test_lru.py`.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import rnnlab
from rnnlab.cli import build_parser, main
from rnnlab.lab.config import make_config
from rnnlab.lab.store import Store
from rnnlab.lab.trainer import build_model, build_task
from rnnlab.recurrent.cells import CELLS
from rnnlab.recurrent.init import SCHEMES
from rnnlab.recurrent.lru_scan import diagonal_scan
from rnnlab.recurrent.modules import Recurrent

F64 = torch.float64
T, B, I, H, N, L = 5, 2, 3, 7, 4, 2  # noqa: E741 - the sizes as the docs name them, deliberately unequal


# ------------------------------------------------------------------------------------------------ the reference


def reference(x, h0, p: dict, num_layers: int):
    """The paper's equations with complex tensors, step by step: x (T, B, I), h0 (L, B, 2N) as [Re; Im], p the
    module's parameters by name. → (output (T, B, H), h_n (L, B, 2N), the complex states of every layer and
    step, each retaining its grad)."""
    u = x @ p["encoder.weight"].t() + p["encoder.bias"]  # linear encoder
    finals, states = [], []
    for k in range(num_layers):
        v = F.layer_norm(u, (u.shape[-1],), p[f"norms.{k}.weight"], p[f"norms.{k}.bias"])
        lam = torch.exp(-torch.exp(p[f"nu_log_l{k}"]) + 1j * torch.exp(p[f"theta_log_l{k}"]))  # (N,)
        b_norm = (p[f"B_re_l{k}"] + 1j * p[f"B_im_l{k}"]) * torch.exp(p[f"gamma_log_l{k}"])[:, None]  # (N, H)
        c = p[f"C_re_l{k}"] + 1j * p[f"C_im_l{k}"]  # (H, N)
        n = lam.shape[0]
        state = torch.complex(h0[k][:, :n], h0[k][:, n:])  # (B, N)
        ys = []
        for t in range(x.shape[0]):
            state = lam * state + v[t].to(b_norm.dtype) @ b_norm.t()  # x_k = Λ x_{k−1} + γ ⊙ B u_k
            state.retain_grad()
            states.append(state)
            ys.append((state @ c.t()).real + p[f"D_l{k}"] * v[t])  # y_k = Re(C x_k) + D ⊙ u_k
        y = torch.stack(ys)
        w1, w2 = (F.gelu(y) @ p[f"glus.{k}.weight"].t() + p[f"glus.{k}.bias"]).chunk(2, dim=-1)
        u = u + w1 * torch.sigmoid(w2)  # GLU, residual
        finals.append(torch.cat([state.real, state.imag], dim=-1))
    return u, torch.stack(finals), states


def _module(scan: bool, **options) -> rnnlab.LRU:
    torch.manual_seed(0)
    return rnnlab.LRU(I, H, num_layers=L, complex_size=N, dtype=F64, scan=scan, **options)


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "loop"])
def test_forward_gradients_and_recorded_norms_equal_the_papers_equations(scan):
    module = _module(scan, r_min=0.4, r_max=0.99)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(L, B, 2 * N, dtype=F64, generator=gen, requires_grad=True)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)
    w_hn = torch.randn(L, B, 2 * N, dtype=F64, generator=gen)

    with rnnlab.record_gradients(module, per_sample=True) as recorder:
        output, h_n = module(x, h0)
        ((output * w_out).sum() + (h_n * w_hn).sum()).backward()
    params = {name: p.detach().clone().requires_grad_() for name, p in module.named_parameters()}
    x_ref, h0_ref = x.detach().clone().requires_grad_(), h0.detach().clone().requires_grad_()
    out_ref, hn_ref, states = reference(x_ref, h0_ref, params, L)
    ((out_ref * w_out).sum() + (hn_ref * w_hn).sum()).backward()

    close = {"rtol": 1e-10, "atol": 1e-10}
    torch.testing.assert_close(output, out_ref, **close)
    torch.testing.assert_close(h_n, hn_ref, **close)
    torch.testing.assert_close(x.grad, x_ref.grad, **close)
    torch.testing.assert_close(h0.grad, h0_ref.grad, **close)
    for name, p in module.named_parameters():
        torch.testing.assert_close(p.grad, params[name].grad, **close, msg=f"gradient of {name}")
    expected = torch.stack([s.grad.abs().pow(2).sum(-1).sqrt() for s in states]).view(L, T, B)  # ‖∂L/∂x_t‖
    torch.testing.assert_close(recorder.last.per_sample, expected, **close)
    torch.testing.assert_close(recorder.norms, expected.mean(-1), **close)


def test_gradcheck_through_the_scan_and_the_parametrisation():
    module = rnnlab.LRU(2, 3, complex_size=2, dtype=F64, r_min=0.5, r_max=0.95)
    names = ["nu_log_l0", "theta_log_l0", "gamma_log_l0", "B_im_l0", "C_re_l0"]
    params = dict(module.named_parameters())
    x = torch.randn(6, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=F64, requires_grad=True)

    def run(x, h0, *chosen):
        out, h_n = functional_call(module, {**params, **dict(zip(names, chosen, strict=True))}, (x, h0))
        return out, h_n

    chosen = [params[n].detach().clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(run, (x, h0, *chosen))


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "loop"])
def test_gradgradcheck_the_backward_is_differentiable(scan):
    module = rnnlab.LRU(2, 3, complex_size=2, dtype=F64, r_min=0.5, r_max=0.95, scan=scan)
    params = dict(module.named_parameters())
    x = torch.randn(5, 2, 2, dtype=F64, requires_grad=True)
    h0 = torch.randn(1, 2, 4, dtype=F64, requires_grad=True)
    nu, theta = (params[n].detach().clone().requires_grad_() for n in ("nu_log_l0", "theta_log_l0"))

    def run(x, h0, nu, theta):
        return functional_call(module, {**params, "nu_log_l0": nu, "theta_log_l0": theta}, (x, h0))

    assert torch.autograd.gradgradcheck(run, (x, h0, nu, theta))


# ------------------------------------------------------------------------------------------------ the scan


@pytest.mark.parametrize("steps", [1, 2, 3, 7, 64, 100])
def test_the_doubling_scan_equals_the_recurrence_it_parallelises(steps):
    gen = torch.Generator().manual_seed(steps)
    modulus = torch.tensor([0.0, 1e-3, 0.5, 0.9, 0.999, 1.0], dtype=F64)  # from no memory to a rotation
    lam = torch.polar(modulus, torch.rand(6, dtype=F64, generator=gen) * 2 * math.pi)
    b = torch.complex(torch.randn(steps, 3, 6, dtype=F64, generator=gen), torch.randn(steps, 3, 6, dtype=F64, generator=gen))  # fmt: skip
    expected, state = [], torch.zeros(3, 6, dtype=b.dtype)
    for t in range(steps):
        state = lam * state + b[t]
        expected.append(state)
    torch.testing.assert_close(diagonal_scan(lam, b), torch.stack(expected), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("scan", "runs_scan"), [(None, False), (True, True), (False, False)])
def test_by_default_the_recurrence_runs_step_by_step_on_a_cpu(monkeypatch, scan, runs_scan):
    """On a CPU the loop is the faster (benchmarks/results/lru.txt), so scan=None runs it there."""
    import rnnlab.recurrent.lru_module as lru_module

    seen = []
    original = lru_module.run_recurrence
    monkeypatch.setattr(lru_module, "run_recurrence", lambda *a, scan, **k: seen.append(scan) or original(*a, scan=scan, **k))  # fmt: skip
    module = rnnlab.LRU(2, 4, num_layers=2, scan=scan)
    module(torch.randn(5, 3, 2))
    assert seen == [runs_scan, runs_scan]
    assert module.extra_repr().endswith("max_phase=6.28" if scan is None else f"max_phase=6.28, scan={scan}")


def test_the_float32_scan_is_as_accurate_as_the_float32_loop_at_t_4096():
    torch.manual_seed(0)
    scan32 = rnnlab.LRU(4, 8, complex_size=16, r_min=0.9, r_max=0.999, scan=True)
    loop32 = rnnlab.LRU(4, 8, complex_size=16, r_min=0.9, r_max=0.999, scan=False)
    loop64 = rnnlab.LRU(4, 8, complex_size=16, r_min=0.9, r_max=0.999, dtype=F64, scan=False)
    loop32.load_state_dict(scan32.state_dict())
    loop64.load_state_dict({k: v.double() for k, v in scan32.state_dict().items()})
    x = torch.randn(4096, 2, 4)
    with torch.no_grad():
        _, reference_state = loop64(x.double())

        def error(module):  # the final state's largest error, relative to its largest entry
            return float((module(x)[1].double() - reference_state).abs().max() / reference_state.abs().max())

        # Measured 6.4e-6 (scan) against 9.3e-6 (loop): the doubling scan adds no error of its own.
        assert error(scan32) < 1.5 * error(loop32) and error(scan32) < 2e-5


@pytest.mark.parametrize("batch_first", [False, True])
def test_batch_first_and_unbatched_input_give_the_time_major_numbers(batch_first):
    module = _module(True, batch_first=batch_first)
    x = torch.randn(T, B, I, dtype=F64)
    time_major, hn = rnnlab.LRU.forward(_module(True), x)
    out, hn_bf = module(x.transpose(0, 1) if batch_first else x)
    torch.testing.assert_close(out.transpose(0, 1) if batch_first else out, time_major, rtol=0, atol=0)
    torch.testing.assert_close(hn_bf, hn, rtol=0, atol=0)
    single, hn_single = module(x[:, 0])
    torch.testing.assert_close(single, time_major[:, 0], rtol=1e-14, atol=1e-14)
    torch.testing.assert_close(hn_single, hn[:, 0], rtol=1e-14, atol=1e-14)


# ------------------------------------------------------------------------------------------------ the closed form


def test_the_per_step_gradient_decays_exactly_as_the_modulus_of_lambda_to_the_lag():
    r, steps, threshold = 0.9, 100, 1e-3  # one ring radius: every |λ_j| = 0.9
    torch.manual_seed(0)
    module = rnnlab.LRU(2, 6, complex_size=5, r_min=r, r_max=r, dtype=F64)
    x = torch.zeros(steps, 3, 2, dtype=F64)
    x[0] = torch.randn(3, 2, dtype=F64)  # input at step 0 only: x_k = λ^k x_0 (up to the encoder's bias)
    lam = module.eigenvalues()[0]
    torch.testing.assert_close(lam.abs(), torch.full((5,), r, dtype=F64), rtol=1e-14, atol=0)

    with rnnlab.record_gradients(module, keep_vectors=True) as recorder:
        output, _ = module(x)
        output[-1].sum().backward()  # a loss on the last output only
    g = recorder.last.vectors[0]  # (T, B, 2N) ∂L/∂x_t as [Re; Im]
    g = torch.complex(g[..., :5], g[..., 5:])
    lags = torch.arange(steps - 1, -1, -1, dtype=F64)[:, None, None]
    # ∂L/∂x_t = conj(λ)^{T−1−t} ⊙ ∂L/∂x_{T−1}: phases too, not only norms
    torch.testing.assert_close(g, lam.conj() ** lags * g[-1], rtol=1e-12, atol=1e-14)

    flow = rnnlab.gradient_flow(module, x)
    profile = flow.profile()
    torch.testing.assert_close(profile / profile[0], r ** torch.arange(steps, dtype=F64), rtol=1e-12, atol=0)
    fit = flow.decay_rate()
    assert fit.rate == pytest.approx(r, rel=1e-12) and fit.r2 == pytest.approx(1.0, abs=1e-12)
    closed_form = math.floor(math.log(threshold) / math.log(r))  # the largest k with r^k ≥ threshold: 65
    assert flow.horizon_at(threshold) == closed_form == 65
    spectral = rnnlab.jacobian_norms(module, x[:, :1]).singular_values[0, :, 0]  # (T, k) of ∂x_T/∂x_t, real form
    expected = (r ** torch.arange(steps - 1, -1, -1, dtype=F64))[:, None].expand(steps, 5)
    torch.testing.assert_close(spectral, expected, rtol=1e-12, atol=1e-14)  # |λ|^{T−1−t}, each mode twice


def test_with_a_spread_of_moduli_the_norm_is_the_closed_form_per_mode():
    torch.manual_seed(1)
    module = rnnlab.LRU(2, 6, complex_size=5, r_min=0.5, r_max=0.99, dtype=F64)
    x = torch.randn(40, 2, 2, dtype=F64)
    with rnnlab.record_gradients(module, keep_vectors=True, per_sample=True) as recorder:
        module(x)[0][-1].sum().backward()
    g_last = recorder.last.vectors[0, -1]  # (B, 2N)
    g_last = torch.complex(g_last[:, :5], g_last[:, 5:])
    modulus = module.eigenvalues()[0].abs()
    lags = torch.arange(39, -1, -1, dtype=F64)[:, None, None]
    expected = ((modulus**lags) * g_last.abs()).pow(2).sum(-1).sqrt()  # √(Σ_j |λ_j|^{2k} |g_j|²)
    torch.testing.assert_close(recorder.last.per_sample[0], expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("r", "closed_form"), [(0.5, 9), (0.8, 30), (0.9, 65), (0.95, 134), (0.99, 687), (0.999, 6904)]
)
def test_the_horizon_against_the_modulus_is_the_closed_form_up_to_t_8000(r, closed_form):
    assert closed_form == math.floor(math.log(1e-3) / math.log(r))  # the largest lag k with r^k ≥ 10⁻³
    module = rnnlab.LRU(2, 4, complex_size=4, r_min=r, r_max=r, dtype=F64)
    x = torch.zeros(8000, 1, 2, dtype=F64)
    x[0] = 1.0
    assert rnnlab.gradient_flow(module, x).horizon == closed_form


def test_on_a_ring_the_horizon_lies_between_the_closed_forms_of_its_smallest_and_largest_modulus():
    # ‖∂L/∂x_{T−1−k}‖² = Σ_j |λ_j|^{2k} |g_j|², so its ratio to lag 0 lies between min|λ|^k and max|λ|^k.
    torch.manual_seed(0)
    module = rnnlab.LRU(2, 64, r_min=0.9, r_max=0.999, max_phase=math.pi / 10, dtype=F64)
    modulus = module.eigenvalues()[0].abs()
    x = torch.zeros(8000, 1, 2, dtype=F64)
    x[0] = 1.0
    horizon = rnnlab.gradient_flow(module, x).horizon
    low, high = (math.floor(math.log(1e-3) / math.log(float(m))) for m in (modulus.min(), modulus.max()))
    assert low <= horizon <= high and low < high
    assert horizon < 0.8 * high, "the slowest mode carries only part of the gradient, so the bound is not reached"


# ------------------------------------------------------------------------------------------------ the ring


@pytest.mark.parametrize(
    ("r_min", "r_max", "max_phase"), [(0.0, 1.0, 6.28), (0.9, 0.999, math.pi / 10), (0.5, 0.5, 1.0)]
)
def test_the_ring_initialisation_puts_lambda_on_the_ring(r_min, r_max, max_phase):
    torch.manual_seed(0)  # the draw must not depend on which tests ran before
    module = rnnlab.LRU(3, 8, num_layers=2, complex_size=2000, r_min=r_min, r_max=r_max, max_phase=max_phase, dtype=F64)  # fmt: skip
    lam = module.eigenvalues()  # (L, N)
    modulus, phase = lam.abs(), lam.angle() % (2 * math.pi)
    assert modulus.min() >= r_min - 1e-12 and modulus.max() <= r_max + 1e-12
    assert phase.max() <= max_phase + 1e-12
    if r_min < r_max:  # uniform on the ring's area: |λ|² ~ U(r_min², r_max²), mean (r_min² + r_max²) / 2
        assert (modulus**2).mean() == pytest.approx((r_min**2 + r_max**2) / 2, abs=0.02 * (r_max**2 - r_min**2) + 1e-9)
    gamma = torch.exp(module.gamma_log_l1)
    # γ = √(1 − |λ|²); near |λ| = 1 the subtraction loses digits (|λ| itself carries a rounding of exp(−exp ν)),
    # which reached a relative 1.04e-12 in one draw of 2000: 1e-10 leaves room and still fails any real slip.
    torch.testing.assert_close(gamma, (1 - modulus[1] ** 2).sqrt(), rtol=1e-10, atol=0)
    assert module.B_re_l0.std().item() == pytest.approx(1 / math.sqrt(2 * 8), rel=0.05)
    assert module.C_im_l0.std().item() == pytest.approx(1 / math.sqrt(2000), rel=0.05)


def test_lru_ring_is_an_init_scheme_with_the_papers_options():
    module = rnnlab.LRU(3, 4, complex_size=50)
    rnnlab.init.apply(module, "lru_ring", seed=3, r_min=0.9, r_max=0.999, max_phase=0.3)
    modulus = module.eigenvalues().abs()
    assert modulus.min() >= 0.9 - 1e-6 and modulus.max() <= 0.999 + 1e-6 and module.eigenvalues().angle().max() <= 0.3 + 1e-6  # fmt: skip
    again = rnnlab.init.apply(rnnlab.LRU(3, 4, complex_size=50), "lru_ring", seed=3, r_min=0.9, r_max=0.999, max_phase=0.3)  # fmt: skip
    torch.testing.assert_close(again.nu_log_l0, module.nu_log_l0, rtol=0, atol=0)  # the seed decides the draw
    with pytest.raises(ValueError, match="init option 'u_max' is not used by 'lru_ring'"):
        rnnlab.init.apply(module, "lru_ring", u_max=1.0)


# ------------------------------------------------------------------------------------------------ the doors


def test_config_cell_lru_trains_through_the_trainer(tmp_path):
    with pytest.raises(ValueError, match="init 'orthogonal' does not apply to a lru module"):
        make_config({"cell": "lru", "init": "orthogonal", "task": "adding", "seq_len": 8})
    options = {"r_min": 0.9, "r_max": 0.999}
    ring = make_config({"cell": "lru", "init": "lru_ring", "init_options": options, "task": "adding", "seq_len": 8})
    model = build_model(ring, build_task(ring))
    modulus = model.rnn.eigenvalues().abs()
    assert modulus.min() >= 0.9 - 1e-6 and modulus.max() <= 0.999 + 1e-6, "the config's ring reaches the module"
    tiny = ["--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "3", "--eval-every", "3", "--no-progress"]
    assert main(["train", "--cell", "lru", "--init", "lru_ring", *tiny, "--store", str(tmp_path / "runs.db")]) == 0
    runs = Store(tmp_path / "runs.db").runs()
    assert len(runs) == 1 and runs[0].config["cell"] == "lru" and runs[0].config["init"] == "lru_ring"
    assert runs[0].status == "completed" and runs[0].steps == 3 and math.isfinite(runs[0].final_loss)


def test_every_door_takes_the_lru(capsys):
    module = rnnlab.make_recurrent("lru", I, H, 2, batch_first=True, dropout=0.1)
    assert type(module) is rnnlab.LRU and module.cell is CELLS["lru"] and module.dropout == 0.1
    assert build_parser().parse_args(["train", "--cell", "lru"]).cell == "lru"
    assert SCHEMES["lru_ring"].cells == {"lru"} and "lru" not in SCHEMES["orthogonal"].cells
    assert main(["inits"]) == 0 and "lru_ring" in capsys.readouterr().out
    assert main(["diagnose", "--models", "lru:lru_ring,gru", "--seq-len", "30", "--hidden", "8", "--batch", "2"]) == 0
    assert "lru:lru_ring" in capsys.readouterr().out
    radius = rnnlab.spectral_radius(module)
    torch.testing.assert_close(radius[:, 0], module.eigenvalues().abs().amax(-1))


def test_the_monitor_records_every_layer_and_warns_with_the_lru_advice():
    torch.manual_seed(0)
    module = rnnlab.LRU(2, 4, num_layers=2, r_min=0.0, r_max=0.3)  # |λ| ≤ 0.3: a short horizon
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1)
    with pytest.warns(rnnlab.recurrent.monitor.HorizonWarning, match="r_min = 0.9, r_max = 0.999"):
        monitor.model(torch.randn(100, 3, 2))[0][-1].sum().backward()
        assert len(monitor.history) == 2 and monitor.history[-1].horizon < 25


def test_a_saved_lru_loads_with_weights_only(tmp_path):
    module = rnnlab.LRU(I, H, complex_size=N, r_min=0.5)
    torch.save(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert type(loaded) is rnnlab.LRU and loaded.cell is CELLS["lru"] and loaded.r_min == 0.5
    x = torch.randn(T, B, I)
    torch.testing.assert_close(loaded(x)[0], module(x)[0], rtol=0, atol=0)


def test_the_lru_benchmark_writes_one_row_per_length(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import bench_lru

    out = tmp_path / "lru.txt"
    argv = ["--lengths", "6,9", "--batch", "2", "--input-size", "3", "--hidden", "4", "--rounds", "1"]
    assert bench_lru.main([*argv, "--loop-max", "6", "--out", str(out)]) == 0
    rows = out.read_text().splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["6", "9"]
    assert rows[0].split()[2] != "—" and rows[1].split()[2] == "—", "the loop is timed up to --loop-max only"


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: rnnlab.LRU(3, 4, r_min=0.9, r_max=0.5), ValueError, r"LRU: the ring needs 0 ≤ r_min ≤ r_max ≤ 1"),
        (lambda: rnnlab.LRU(3, 4, r_max=1.5), ValueError, "r_max=1.5"),
        (lambda: rnnlab.LRU(3, 4, r_min=1.0), ValueError, "r_min < 1"),
        (lambda: rnnlab.LRU(3, 4, max_phase=0), ValueError, "LRU: max_phase must be > 0, got 0"),
        (lambda: rnnlab.LRU(3, 4, r_min="0.1"), ValueError, "LRU: r_min must be a finite number, got '0.1'"),
        (lambda: rnnlab.LRU(3, 4, complex_size=0), ValueError, "LRU: complex_size must be a positive integer"),
        (lambda: rnnlab.LRU(3, 4, bidirectional=True), ValueError, "bidirectional=True is not supported"),
        (lambda: rnnlab.LRU(3, 4, truncate=5), ValueError, "LRU: truncate is not supported"),
        (lambda: rnnlab.LRU(3, 4, scan=1), TypeError, "LRU: scan must be True, False or None"),
        (lambda: rnnlab.LRU(3, 4, dropout=1.0), ValueError, r"LRU: dropout must be a number in \[0, 1\)"),
        (lambda: rnnlab.LRU(3, 0), ValueError, "LRU: hidden_size must be a positive integer, got 0"),
        (lambda: rnnlab.LRU(3, 4)(torch.randn(5, 2, 4)), ValueError, "input has 4 features per step, expected input_size=3"),
        (lambda: rnnlab.LRU(3, 4)(torch.full((5, 2, 3), math.nan)), ValueError, "LRU: input contains 30 NaN"),
        (lambda: rnnlab.LRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 4)), ValueError,
         r"LRU: hx has shape \(1, 2, 4\), expected \(1, 2, 8\) \(num_layers, batch, 2·complex_size\)"),
        (lambda: rnnlab.LRU(3, 4)(torch.randn(5, 2, 3), torch.zeros(1, 2, 8, dtype=F64)), ValueError,
         "LRU: hx is torch.float64 on cpu, expected torch.float32"),
        (lambda: rnnlab.LRU(3, 4).half()(torch.randn(5, 2, 3).half()), TypeError,
         "LRU: computes in float32 or float64, its parameters are torch.float16"),
        (lambda: rnnlab.LRU(3, 4).to_torch(), ValueError, "cell 'lru' has no torch.nn equivalent"),
        (lambda: Recurrent("lru", 3, 4), ValueError, "cell 'lru' runs only inside rnnlab.LRU"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_errors(build, error, message):
    with pytest.raises(error, match=message) as caught:
        build()
    assert "\n" not in str(caught.value)


def test_input_normal_is_refused_for_the_lru_which_has_no_weight_ih():
    with pytest.raises(ValueError, match=r"init 'input_normal' does not apply to a lru module"):
        rnnlab.init.apply(rnnlab.LRU(3, 8), "input_normal", seed=0)
