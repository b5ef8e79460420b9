"""Gradient-flow diagnostics: closed forms, an independent Jacobian reference, torch.nn modules, underflow,
and the facts the project is about, measured at fixed seeds. Run: `.venv/bin/pytest tests/test_diagnostics.py`.
"""

import math

import pytest
import torch
from torch.testing import assert_close

import rnnlab
from rnnlab.recurrent import diagnostics, init
from tests.reference import cells_of, unrolled


def _scaled_orthogonal_linear_rnn(lam, hidden=16, steps=60, layers=1):
    """rnn_linear with W_hh = λ·Q (Q orthogonal), zero biases: ∂h_T/∂h_t = (λQ)^(T−1−t) exactly."""
    module = rnnlab.RNN(3, hidden, num_layers=layers, nonlinearity="linear", dtype=torch.float64)
    init.apply(module, "orthogonal", gain=lam, seed=0)
    with torch.no_grad():
        module.bias_ih_l0.zero_()
        module.bias_hh_l0.zero_()
    x = torch.zeros(steps, 4, 3, dtype=torch.float64)
    return module, x


@pytest.mark.parametrize("lam", [0.8, 0.93, 1.05])
def test_closed_form_decay_rate_and_horizon(lam):
    module, x = _scaled_orthogonal_linear_rnn(lam)
    flow = diagnostics.gradient_flow(module, x)
    lags = torch.arange(60, dtype=torch.float64)
    assert_close(flow.profile(), lam**lags, rtol=1e-10, atol=0)
    fit = flow.decay_rate()
    assert fit.rate == pytest.approx(lam, rel=1e-10)
    assert fit.r2 == pytest.approx(1.0, abs=1e-10)
    threshold = 1e-3
    # Largest lag n ≤ T − 1 with λ^n ≥ threshold.
    expected = 59 if lam >= 1 else min(59, math.floor(math.log(threshold) / math.log(lam)))
    assert flow.horizon_at(threshold) == expected


def test_closed_form_jacobian_norms():
    module, x = _scaled_orthogonal_linear_rnn(0.9, hidden=8, steps=20)
    result = diagnostics.jacobian_norms(module, x[:, :2], top_k=8)
    lags = torch.arange(20, dtype=torch.float64)
    assert_close(result.profile(), 0.9**lags, rtol=1e-10, atol=0)
    # All singular values of (λQ)^n equal λ^n.
    expected = (0.9 ** lags.flip(0))[None, :, None, None].expand(1, 20, 2, 8)
    assert_close(result.singular_values, expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_jacobian_norms_against_autograd_jacobian(cell):
    torch.manual_seed(0)
    layers = 2
    module = {"lstm": rnnlab.LSTM, "gru": rnnlab.GRU, "rnn_tanh": rnnlab.RNN}[cell](
        3, 5, num_layers=layers, dtype=torch.float64
    )
    x = torch.randn(6, 1, 3, dtype=torch.float64)
    result = diagnostics.jacobian_norms(module, x, top_k=3)
    reference = module.to_torch()
    _, hs, cs = unrolled(reference, x)
    for layer in range(layers):
        for t in range(6):
            # ∂h_T(top)/∂h_t(layer) by autograd, re-running the network from step t with h_t as the variable.
            jac = torch.autograd.functional.jacobian(
                lambda h_t, layer=layer, t=t: _final_state_from(reference, x, hs, cs, layer, t, h_t),
                hs[layer][t].detach()[0],
            )
            sv = torch.linalg.svdvals(jac)[:3]
            assert_close(result.singular_values[layer, t, 0], sv, rtol=1e-8, atol=1e-12)


def _final_state_from(reference, x, hs, cs, layer, t, h_t):
    """Top-layer final state as a function of layer `layer`'s state after step t (batch of one)."""
    cells = cells_of(reference)
    steps = x.shape[0]
    outputs = [torch.stack([h.detach()[0] for h in hs[k]]) for k in range(len(cells))]  # (T, H) per layer
    for k in range(layer, len(cells)):
        inp = x[:, 0] if k == 0 else outputs[k - 1]
        if k == layer:  # resume this layer after step t, from the variable
            first, h = t + 1, h_t
            c = cs[k][t].detach()[0] if cs is not None else None
            seq = [hs[k][i].detach()[0] for i in range(t)] + [h_t]
        else:  # the layers above re-run from zero on the new inputs
            first, h = 0, torch.zeros_like(h_t)
            c = torch.zeros_like(h_t) if cs is not None else None
            seq = []
        for i in range(first, steps):
            if c is not None:
                h, c = cells[k](inp[i], (h, c))
            else:
                h = cells[k](inp[i], h)
            seq.append(h)
        outputs[k] = torch.stack(seq)
    return outputs[-1][-1]


def test_gradient_flow_on_torch_module_equals_its_copy_and_leaves_it_untouched():
    torch.manual_seed(0)
    user = torch.nn.LSTM(2, 16, num_layers=2, batch_first=True, dropout=0.3)
    user.train()
    before = {k: v.clone() for k, v in user.state_dict().items()}
    x = torch.randn(4, 30, 2)
    flow = diagnostics.gradient_flow(user, x)
    copy_flow = diagnostics.gradient_flow(rnnlab.from_torch(user), x)
    # Equal up to float32 rounding: MKL may pick different GEMM kernels for differently aligned buffers.
    assert_close(flow.norms, copy_flow.norms, rtol=1e-5, atol=1e-12)
    assert flow.norms.shape == (2, 30) and flow.cell_norms.shape == (2, 30)
    assert flow.profile()[0].item() == pytest.approx(1.0, rel=1e-5), "unit projection: norm 1 at lag 0"
    assert user.training, "train/eval flag untouched"
    assert all(p.grad is None for p in user.parameters()), "no .grad written"
    for k, v in user.state_dict().items():
        assert torch.equal(v, before[k])


def test_gradient_flow_from_a_given_initial_state_against_autograd():
    """hx: the flow of a network started from a state of one's own (a model's learned one) — per step and
    sample ‖∂L/∂h_t‖, and ‖∂L/∂c_t‖ (batch mean), equal autograd's on torch.nn's cells run from that state."""
    torch.manual_seed(0)
    module = rnnlab.LSTM(3, 5, num_layers=2, dtype=torch.float64)
    x = torch.randn(6, 4, 3, dtype=torch.float64)
    hx = (torch.randn(2, 4, 5, dtype=torch.float64), torch.randn(2, 4, 5, dtype=torch.float64))
    loss_fn = lambda out: out[-1].pow(2).sum()  # noqa: E731
    flow = diagnostics.gradient_flow(module, x, loss_fn=loss_fn, hx=hx)
    output, hs, cs = unrolled(module.to_torch(), x, tuple(h.clone().requires_grad_() for h in hx))
    loss_fn(output).backward()
    for layer in range(2):
        expected_h = torch.stack([h.grad.norm(dim=-1) for h in hs[layer]])  # (T, B)
        expected_c = torch.stack([c.grad.norm(dim=-1) for c in cs[layer]]).mean(dim=1)  # (T,) batch mean
        assert_close(flow.per_sample[layer], expected_h, rtol=1e-10, atol=1e-14)
        assert_close(flow.cell_norms[layer], expected_c, rtol=1e-10, atol=1e-14)
    zeros = diagnostics.gradient_flow(module, x, loss_fn=loss_fn)
    assert not torch.allclose(zeros.per_sample, flow.per_sample), "the state given is the one used"
    assert all(h.grad is None for h in hx)


def test_gradient_flow_with_a_user_loss_and_unbatched_input():
    module = rnnlab.GRU(2, 8, dtype=torch.float64)
    x = torch.randn(10, 2, dtype=torch.float64)
    flow = diagnostics.gradient_flow(module, x, loss_fn=lambda out: out.pow(2).sum())
    assert flow.norms.shape == (1, 10)
    assert (flow.norms[0, -1] > 0).item()
    with pytest.raises(ValueError, match="scalar"):
        diagnostics.gradient_flow(module, x, loss_fn=lambda out: out)


def test_float32_underflow_gives_finite_rate_and_horizon():
    # A strongly contracting RNN: in float32 the gradient underflows to exactly zero long before T.
    module, _ = _scaled_orthogonal_linear_rnn(0.3, steps=200)
    module = module.float()
    flow = diagnostics.gradient_flow(module, torch.zeros(200, 4, 3))
    assert (flow.profile()[100:] == 0).all(), "the premise: exact zeros at long lags"
    fit = flow.decay_rate()
    assert math.isfinite(fit.rate) and math.isfinite(fit.r2)
    assert fit.rate == pytest.approx(0.3, rel=1e-3)
    assert flow.horizon == math.floor(math.log(1e-3) / math.log(0.3))
    dead = diagnostics.GradientFlow(norms=torch.tensor([[0.0, 0.0, 1.0]]), per_sample=torch.zeros(1, 3, 1))
    assert dead.decay_rate().rate == 0.0 and dead.horizon == 0


def test_float32_norms_do_not_underflow_before_the_gradient_does():
    # 0.5^120 ≈ 7.5e-37 is still a normal float32 (> 1.2e-38), but its square is not: the recorded norm
    # must be computed without squaring in float32.
    module, _ = _scaled_orthogonal_linear_rnn(0.5, steps=130)
    flow = diagnostics.gradient_flow(module.float(), torch.zeros(130, 4, 3))
    assert flow.profile()[120].item() == pytest.approx(0.5**120, rel=1e-3)


def test_spectral_radius_per_gate_block():
    module, _ = _scaled_orthogonal_linear_rnn(0.7)
    assert_close(diagnostics.spectral_radius(module), torch.tensor([[0.7]], dtype=torch.float64), rtol=1e-10, atol=0)
    lstm = rnnlab.LSTM(3, 6, num_layers=2)
    init.apply(lstm, "orthogonal", gain=1.3)
    assert_close(diagnostics.spectral_radius(lstm), torch.full((2, 4), 1.3), rtol=1e-5, atol=0)


def test_jacobian_norms_refuses_large_hidden_sizes():
    with pytest.raises(ValueError, match="above the limit 512"):
        diagnostics.jacobian_norms(rnnlab.RNN(2, 600), torch.randn(3, 1, 2))


# ------------------------------------------------------------------------------------------------ the facts

T, H, B, IN = 200, 64, 32, 2
SEEDS = (0, 1, 2)


def _horizons(cell, spec):
    """Horizons over SEEDS, each from `diagnostics.compare` (the function behind `rnnlab diagnose` and the demo),
    which seeds the module's construction as well as the scheme, so the same seed gives the same number."""
    specs = [diagnostics.ModelSpec(cell, spec)]
    return [
        diagnostics.compare(specs, seq_len=T, hidden_size=H, input_size=IN, batch_size=B, seed=seed)[0].flow.horizon
        for seed in SEEDS
    ]


def _mean_horizon(cell, spec):
    horizons = _horizons(cell, spec)
    return sum(horizons) / len(horizons)


def test_horizons_are_reproducible():
    assert _horizons("lstm", "chrono") == _horizons("lstm", "chrono")


def test_facts_at_fixed_seeds():
    """T=200, H=64, I=2, batch 32, N(0, 1) inputs, threshold 1e-3, mean over 3 seeds (README has the table)."""
    tanh_default = _mean_horizon("rnn_tanh", "torch_default")
    lstm_default = _mean_horizon("lstm", "torch_default")
    forget = _mean_horizon("lstm", "forget_bias")
    chrono = _mean_horizon("lstm", "chrono")
    orthogonal = _mean_horizon("rnn_tanh", "orthogonal")
    # The gate is a capability, not a default: at PyTorch's init the LSTM sees no further than a tanh RNN.
    assert 6 <= lstm_default <= 14 and 6 <= tanh_default <= 16
    assert lstm_default <= tanh_default + 1
    assert 2.2 * lstm_default <= forget <= 4 * lstm_default  # forget bias 1 roughly triples it
    assert 80 <= chrono <= 110
    assert 55 <= orthogonal <= 100


def _render(figure):
    """Draw the figure with the non-interactive Agg canvas (as savefig does), so a broken artist fails here."""
    import io

    from matplotlib.figure import Figure

    assert isinstance(figure, Figure)
    figure.savefig(io.BytesIO(), format="png")


def _horizon_line(ax):
    (line,) = [line for line in ax.get_lines() if line.get_label().startswith("horizon:")]
    return line


def test_flow_plot_marks_the_horizon_of_the_closed_form():
    module, x = _scaled_orthogonal_linear_rnn(0.8)
    flow = diagnostics.gradient_flow(module, x)
    figure = flow.plot(threshold=1e-3)
    _render(figure)
    (ax,) = figure.axes
    assert flow.horizon_at(1e-3) == 30 == flow.horizon  # 0.8^30 ≈ 1.2e-3 ≥ 1e-3 > 0.8^31
    assert list(_horizon_line(ax).get_xdata()) == [30, 30]
    assert ax.get_title() == "layer 0: the gradient against lag (horizon 30 of 59 steps)"
    assert ax.get_yscale() == "log" and ax.get_xlabel().startswith("lag") and "‖∂L/∂h_t‖₂" in ax.get_ylabel()
    assert "×0.800 per step" in ax.get_lines()[0].get_label()


def test_lstm_flow_plot_shows_the_cell_state_too():
    torch.manual_seed(0)
    flow = diagnostics.gradient_flow(torch.nn.LSTM(2, 8, num_layers=2), torch.randn(20, 3, 2))
    figure = flow.plot(layer=0)
    _render(figure)
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
    assert any("‖∂L/∂c_t‖" in label for label in labels) and figure.axes[0].get_title().startswith("layer 0:")


def test_comparison_plots_explain_themselves():
    specs = [diagnostics.ModelSpec.parse(s) for s in ("rnn_tanh", "lstm:chrono")]
    results = diagnostics.compare(specs, seq_len=40, hidden_size=16, batch_size=4)
    single = results[1].plot()
    _render(single)
    assert single.axes[0].get_title().startswith("lstm:chrono: the gradient against lag (spectral radius")
    together = diagnostics.plot_comparison(results)
    _render(together)
    (ax,) = together.axes
    curves = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    for result in results:
        label = f"{result.spec.label} (horizon {result.flow.horizon})"
        assert curves[label][0] == 1.0, "each profile relative to its lag 0, so the threshold line is its horizon"
    assert "horizon threshold (0.001)" in curves
