"""Each initialisation scheme against its definition: orthogonality, identity, the promised variance
(statistically, with tolerances a wrong formula cannot meet), chrono's range, composition, seeding, and the
errors for schemes that do not apply. Run: `.venv/bin/pytest tests/test_init.py`.
"""

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

import rnnlab
from rnnlab.recurrent import init

H, IN = 256, 64  # large blocks, so sample variances are tight (relative error ~0.5 %)


def _blocks(w, gates):
    return w.detach().chunk(gates, dim=0)


@pytest.mark.parametrize(("module", "gates"), [(rnnlab.RNN(IN, H), 1), (rnnlab.LSTM(IN, H), 4), (rnnlab.GRU(IN, H), 3)])
@pytest.mark.parametrize(
    ("scheme", "variance", "bound"),
    [
        # Per gate block, fan_in = columns, fan_out = H. A whole-matrix fan_out (G·H) would miss by ≥ 2×.
        ("xavier_uniform", lambda fi, fo: 2 / (fi + fo), lambda fi, fo: math.sqrt(6 / (fi + fo))),
        ("xavier_normal", lambda fi, fo: 2 / (fi + fo), None),
        ("he", lambda fi, fo: 2 / fi, None),
        ("torch_default", lambda fi, fo: 1 / (3 * H), lambda fi, fo: 1 / math.sqrt(H)),
    ],
)
def test_variance_matches_the_formula(module, gates, scheme, variance, bound):
    init.apply(module, scheme, seed=0)
    for w in (module.weight_ih_l0, module.weight_hh_l0):
        for block in _blocks(w, gates):
            fan_out, fan_in = block.shape
            expected = variance(fan_in, fan_out)
            # Relative standard error of a variance over n ≥ 16k draws is ≤ 1.2 %; allow 6 %.
            assert block.var().item() == pytest.approx(expected, rel=0.06), (scheme, tuple(block.shape))
            assert abs(block.mean().item()) < 4 * math.sqrt(expected / block.numel())
            if bound is not None:
                assert block.abs().max().item() <= bound(fan_in, fan_out) + 1e-7
    if scheme != "torch_default":
        assert torch.count_nonzero(module.bias_ih_l0) == 0 and torch.count_nonzero(module.bias_hh_l0) == 0


@pytest.mark.parametrize(("module", "gates"), [(rnnlab.RNN(5, 32), 1), (rnnlab.LSTM(5, 32), 4), (rnnlab.GRU(5, 32), 3)])
def test_orthogonal_makes_each_recurrent_gate_block_orthogonal(module, gates):
    before_ih = module.weight_ih_l0.detach().clone()
    init.apply(module, "orthogonal", seed=1)
    for block in _blocks(module.weight_hh_l0, gates):
        assert_close(block.T @ block, torch.eye(32), rtol=0, atol=1e-5)
    assert torch.equal(module.weight_ih_l0, before_ih), "orthogonal must touch weight_hh only"


def test_identity_sets_scaled_identity_and_zero_biases():
    module = rnnlab.RNN(4, 16, num_layers=2, nonlinearity="relu")
    init.apply(module, "identity", scale=0.5)
    for layer in range(2):
        assert torch.equal(getattr(module, f"weight_hh_l{layer}").detach(), 0.5 * torch.eye(16))
        assert torch.count_nonzero(getattr(module, f"bias_ih_l{layer}")) == 0
        assert torch.count_nonzero(getattr(module, f"bias_hh_l{layer}")) == 0


def test_forget_bias_sets_the_summed_forget_bias_to_one():
    module = rnnlab.LSTM(3, 8)
    init.apply(module, "forget_bias")
    total = (module.bias_ih_l0 + module.bias_hh_l0).detach()
    assert torch.equal(total[8:16], torch.ones(8))


def test_chrono_bias_range_and_distribution():
    t_max = 200
    module = rnnlab.LSTM(3, 4096)
    init.apply(module, "chrono", t_max=t_max, seed=0)
    total = (module.bias_ih_l0 + module.bias_hh_l0).detach()
    forget, inp = total[4096:8192], total[:4096]
    assert forget.min() >= 0 and forget.max() <= math.log(t_max - 1) + 1e-6
    assert torch.equal(inp, -forget)
    # exp(forget bias) is U(1, T_max − 1): mean (T_max)/2, checked to ±3 % (standard error ≈ 0.9 %).
    assert forget.exp().mean().item() == pytest.approx(t_max / 2, rel=0.03)


def test_schemes_compose_orthogonal_then_chrono():
    module = rnnlab.LSTM(3, 16)
    init.apply(module, "orthogonal+chrono", t_max=50, seed=0)
    for block in _blocks(module.weight_hh_l0, 4):
        assert_close(block.T @ block, torch.eye(16), rtol=0, atol=1e-5)
    total = (module.bias_ih_l0 + module.bias_hh_l0).detach()
    assert torch.equal(total[:16], -total[16:32])


def test_same_seed_same_weights_and_global_rng_untouched():
    a, b, c = rnnlab.GRU(3, 8), rnnlab.GRU(3, 8), rnnlab.GRU(3, 8)
    state = torch.random.get_rng_state()
    init.apply(a, "xavier_uniform+orthogonal", seed=5)
    init.apply(b, "xavier_uniform+orthogonal", seed=5)
    init.apply(c, "xavier_uniform+orthogonal", seed=6)
    assert torch.equal(state, torch.random.get_rng_state())
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        if pa.abs().sum() > 0:
            assert not torch.equal(pa, pc)


def test_schemes_apply_to_torch_nn_modules_too():
    module = torch.nn.LSTM(3, 8)
    init.apply(module, "orthogonal+forget_bias")
    assert_close(module.weight_hh_l0[:8].T @ module.weight_hh_l0[:8], torch.eye(8), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("module", "spec", "options", "match"),
    [
        (rnnlab.LSTM(3, 4), "identity", {}, r"init 'identity' does not apply to a lstm module"),
        (rnnlab.GRU(3, 4), "chrono", {"t_max": 10}, r"init 'chrono' does not apply to a gru module"),
        (rnnlab.RNN(3, 4), "forget_bias", {}, r"does not apply to a rnn_tanh module"),
        (rnnlab.LSTM(3, 4), "chrono", {}, r"init 'chrono' needs option 't_max'"),
        (rnnlab.LSTM(3, 4), "chrono", {"t_max": 2}, r"needs t_max > 2"),
        (rnnlab.LSTM(3, 4), "orthogonl", {}, r"unknown init 'orthogonl'; choose from: default, torch_default, "),
        (rnnlab.LSTM(3, 4), "orthogonal", {"scale": 2}, r"init option 'scale' is not used by 'orthogonal'"),
        (rnnlab.LSTM(3, 4, bias=False), "forget_bias", {}, r"bias=False"),
    ],
)
def test_errors_for_schemes_that_do_not_apply(module, spec, options, match):
    with pytest.raises(ValueError, match=match):
        init.apply(module, spec, **options)


@pytest.mark.parametrize("name", ["torch_default", "xavier_uniform", "orthogonal", "forget_bias"])
def test_schemes_can_be_called_directly_on_a_module_that_requires_grad(name):
    lstm = rnnlab.LSTM(3, 8)
    getattr(init, name)(lstm)
    assert all(p.requires_grad for p in lstm.parameters())


def test_chrono_called_directly_matches_apply():
    a, b = rnnlab.LSTM(3, 8), rnnlab.LSTM(3, 8)
    init.chrono(a, t_max=100, generator=torch.Generator().manual_seed(0))
    init.apply(b, "chrono", seed=0, t_max=100)
    torch.testing.assert_close(a.bias_ih_l0[:16], b.bias_ih_l0[:16], rtol=0, atol=0)  # input and forget blocks


def test_every_scheme_reaches_the_reverse_direction_of_a_bidirectional_module():
    """A bidirectional module's `_reverse` weights get the scheme too (they were left at torch's default)."""
    lstm = rnnlab.LSTM(3, 16, num_layers=2, bidirectional=True)
    init.apply(lstm, "orthogonal+chrono", t_max=50, seed=0)
    for k in range(2):
        for suffix in ("", "_reverse"):
            for block in getattr(lstm, f"weight_hh_l{k}{suffix}").detach().chunk(4):
                torch.testing.assert_close(block @ block.t(), torch.eye(16), rtol=0, atol=1e-5)
            bias = getattr(lstm, f"bias_ih_l{k}{suffix}").detach()
            assert torch.all(bias[16:32] >= 0) and torch.equal(bias[:16], -bias[16:32])
    rnn = rnnlab.RNN(3, 8, nonlinearity="relu", bidirectional=True)
    init.apply(rnn, "identity", seed=0)
    assert torch.equal(rnn.weight_hh_l0_reverse.detach(), torch.eye(8))
    gru = rnnlab.GRU(3, 8, bidirectional=True)
    init.apply(gru, "xavier_uniform", seed=0)
    assert torch.all(gru.bias_ih_l0_reverse == 0) and torch.all(gru.bias_hh_l0_reverse == 0)


# ------------------------------------------------------------------------ the papers' own initialisations


def test_irnn_as_le_et_al_identity_recurrence_zero_biases_inputs_normal_0_001():
    """identity+input_normal: W_hh exactly I, biases exactly 0, every W_ih (deeper layers and `_reverse`
    too) N(0, 0.001²): sample std to ±3 % (standard error ≈ 0.5 % over ≥ 16k draws), mean within 4 SE."""
    rnn = rnnlab.RNN(IN, H, num_layers=2, nonlinearity="relu", bidirectional=True, dtype=torch.float64)
    init.apply(rnn, "identity+input_normal", seed=0, input_std=0.001)
    for tag in ("l0", "l0_reverse", "l1", "l1_reverse"):
        assert torch.equal(getattr(rnn, f"weight_hh_{tag}").detach(), torch.eye(H, dtype=torch.float64))
        assert torch.count_nonzero(getattr(rnn, f"bias_ih_{tag}")) == 0
        assert torch.count_nonzero(getattr(rnn, f"bias_hh_{tag}")) == 0
        w_ih = getattr(rnn, f"weight_ih_{tag}").detach()  # (H, I) in layer 0, (H, 2H) above
        assert w_ih.std().item() == pytest.approx(0.001, rel=0.03), tag
        assert abs(w_ih.mean().item()) < 4 * 0.001 / math.sqrt(w_ih.numel()), tag


def test_input_normal_sets_weight_ih_only_and_defaults_to_le_et_al():
    lstm = rnnlab.LSTM(IN, H, dtype=torch.float64)
    before = {name: p.detach().clone() for name, p in lstm.named_parameters()}
    init.apply(lstm, "input_normal", seed=0)  # default input_std 0.001, the paper's
    assert lstm.weight_ih_l0.std().item() == pytest.approx(0.001, rel=0.03)
    for name, p in lstm.named_parameters():
        if name != "weight_ih_l0":
            assert torch.equal(p, before[name]), name
    init.apply(lstm, "input_normal", seed=0, input_std=0.25)
    assert lstm.weight_ih_l0.std().item() == pytest.approx(0.25, rel=0.03)


def _nonzeros_per_column(w):
    return (w.detach() != 0).sum(dim=0)


@pytest.mark.parametrize("rho", [0.95, 1.1])
def test_sparse_tanh_as_pascanu_et_al_code(rho):
    """15 non-zeros out of each unit (each column of torch's weight_hh, the transpose of their W_hh's rows),
    spectral radius exactly rho, weight_ih N(0, 0.01²), biases zero."""
    rnn = rnnlab.RNN(IN, H, dtype=torch.float64)
    init.apply(rnn, "sparse_tanh", seed=0, rho=rho)
    w_hh = rnn.weight_hh_l0.detach()
    assert torch.equal(_nonzeros_per_column(w_hh), torch.full((H,), 15))
    fan_in = (w_hh != 0).sum(dim=1)  # rows: a random count with mean 15, so not the sparse axis
    assert fan_in.sum() == 15 * H and fan_in.min() < 15 < fan_in.max()
    radius = torch.linalg.eigvals(w_hh).abs().max().item()
    assert radius == pytest.approx(rho, abs=1e-6)
    w_ih = rnn.weight_ih_l0.detach()
    assert w_ih.std().item() == pytest.approx(0.01, rel=0.03)
    assert abs(w_ih.mean().item()) < 4 * 0.01 / math.sqrt(w_ih.numel())
    assert torch.count_nonzero(rnn.bias_ih_l0) == 0 and torch.count_nonzero(rnn.bias_hh_l0) == 0


def test_sparse_tanh_is_dense_at_or_below_15_units_and_takes_input_std():
    rnn = rnnlab.RNN(3, 12, dtype=torch.float64)
    init.apply(rnn, "sparse_tanh", seed=0, input_std=0.5)
    assert torch.count_nonzero(rnn.weight_hh_l0) == 12 * 12  # their spng[15:] is empty: nothing zeroed
    assert torch.linalg.eigvals(rnn.weight_hh_l0.detach()).abs().max().item() == pytest.approx(0.95, abs=1e-6)
    big = rnnlab.RNN(IN, H, dtype=torch.float64)
    init.apply(big, "sparse_tanh", seed=0, input_std=0.5)
    assert big.weight_ih_l0.std().item() == pytest.approx(0.5, rel=0.03)


def test_sparse_tanh_reaches_every_layer_and_the_reverse_direction():
    rnn = rnnlab.RNN(3, 40, num_layers=2, bidirectional=True, dtype=torch.float64)
    init.apply(rnn, "sparse_tanh", seed=0)
    draws = []
    for tag in ("l0", "l0_reverse", "l1", "l1_reverse"):
        w_hh = getattr(rnn, f"weight_hh_{tag}").detach()
        assert torch.equal(_nonzeros_per_column(w_hh), torch.full((40,), 15)), tag
        assert torch.linalg.eigvals(w_hh).abs().max().item() == pytest.approx(0.95, abs=1e-6), tag
        assert getattr(rnn, f"weight_ih_{tag}").detach().abs().max() < 0.01 * 6, tag  # torch's: U(±0.16)
        assert torch.count_nonzero(getattr(rnn, f"bias_ih_{tag}")) == 0
        assert torch.count_nonzero(getattr(rnn, f"bias_hh_{tag}")) == 0
        draws.append(w_hh)
    assert not any(torch.equal(a, b) for a, b in itertools.combinations(draws, 2))  # each its own draw


@pytest.mark.parametrize("spec", ["sparse_tanh", "identity+input_normal"])
def test_the_papers_schemes_are_seeded_and_leave_the_global_rng_alone(spec):
    nonlinearity = "tanh" if spec == "sparse_tanh" else "relu"
    a, b, c = (rnnlab.RNN(3, 32, nonlinearity=nonlinearity) for _ in range(3))
    state = torch.random.get_rng_state()
    init.apply(a, spec, seed=5)
    init.apply(b, spec, seed=5)
    init.apply(c, spec, seed=6)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a.weight_ih_l0, b.weight_ih_l0) and torch.equal(a.weight_hh_l0, b.weight_hh_l0)
    assert not torch.equal(a.weight_ih_l0, c.weight_ih_l0)
    if spec == "sparse_tanh":
        assert not torch.equal(a.weight_hh_l0 != 0, c.weight_hh_l0 != 0)  # the sparsity pattern is drawn too


def test_sparse_tanh_called_directly_matches_apply_and_works_in_float32():
    a, b = rnnlab.RNN(3, 64), rnnlab.RNN(3, 64)
    init.sparse_tanh(a, generator=torch.Generator().manual_seed(0))
    init.apply(b, "sparse_tanh", seed=0)
    assert torch.equal(a.weight_hh_l0, b.weight_hh_l0) and a.weight_hh_l0.requires_grad
    radius = torch.linalg.eigvals(a.weight_hh_l0.detach().double()).abs().max().item()
    assert radius == pytest.approx(0.95, abs=1e-6)  # float32 rounding moves it by ~1e-7


@pytest.mark.parametrize(
    ("module", "spec", "options", "match"),
    [
        (
            rnnlab.LSTM(3, 4),
            "sparse_tanh",
            {},
            r"^init 'sparse_tanh' does not apply to a lstm module; it applies to: rnn_tanh$",
        ),
        (rnnlab.RNN(3, 4, nonlinearity="relu"), "sparse_tanh", {}, r"does not apply to a rnn_relu module"),
        (rnnlab.RNN(3, 4), "sparse_tanh", {"rho": 0.0}, r"^init 'sparse_tanh' needs rho > 0 \(the spectral radius"),
        (rnnlab.RNN(3, 4), "sparse_tanh", {"rho": math.inf}, r"needs rho > 0"),
        (rnnlab.RNN(3, 4), "sparse_tanh", {"input_std": -1.0}, r"^init 'sparse_tanh' needs input_std > 0"),
        (rnnlab.GRU(3, 4), "input_normal", {"input_std": 0}, r"^init 'input_normal' needs input_std > 0"),
        (rnnlab.RNN(3, 4), "identity", {"input_std": 0.001}, r"init option 'input_std' is not used by 'identity'"),
        (rnnlab.RNN(3, 4), "sparse_tanh", {"scale": 1.0}, r"its options: input_std, rho$"),
    ],
)
def test_errors_of_the_papers_schemes_are_one_line(module, spec, options, match):
    with pytest.raises(ValueError, match=match) as error:
        init.apply(module, spec, **options)
    assert "\n" not in str(error.value)


def test_default_is_torch_default_for_torch_cells_and_the_module_s_own_for_the_others():
    """'default' on an LSTM draws exactly what torch_default draws (stores keep their runs); on IndRNN it is the
    authors' u ~ U(0, 1) with zero bias, seeded, reproducible, and leaves the global RNG alone."""
    a, b = rnnlab.LSTM(3, 8), rnnlab.LSTM(3, 8)
    init.apply(a, "default", seed=4)
    init.apply(b, "torch_default", seed=4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert init.resolve("lstm", "default+chrono") == "torch_default+chrono"
    assert init.resolve("indrnn", "default") == "default"

    first, second, other = (rnnlab.IndRNN(3, 64) for _ in range(3))
    init.apply(first, "torch_default", seed=1)  # u now has negative entries: the own init must overwrite them
    init.apply(first, "default", seed=1)
    init.apply(second, "default", seed=1)
    init.apply(other, "default", seed=2)
    u = first.weight_hh_l0.detach()
    assert float(u.min()) >= 0.0 and float(u.max()) <= 1.0 and float(u.min()) < 0.2 and float(u.max()) > 0.8
    assert torch.count_nonzero(first.bias_ih_l0) == 0
    torch.testing.assert_close(first.weight_hh_l0, second.weight_hh_l0, rtol=0, atol=0)
    assert not torch.equal(first.weight_hh_l0, other.weight_hh_l0)
    before = torch.random.get_rng_state()
    init.apply(first, "default", seed=1)
    assert torch.equal(before, torch.random.get_rng_state()), "the seeded own init must not advance the global RNG"
