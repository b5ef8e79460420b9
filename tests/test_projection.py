"""LSTM with `proj_size` (h_t = (o ⊙ tanh c_t) W_hrᵀ), against torch.nn.LSTM(proj_size=…) and autograd.

Float64 parity with torch.nn at small unequal sizes (T=5, B=3, I=3, H=5, P=2) on outputs, final states and
every gradient — one and two layers, both directions, batch-first, without biases, PackedSequence; gradcheck
and gradgradcheck; higher-order gradients against torch.nn's; the recorded ‖∂L/∂h_t‖ and ‖∂L/∂c_t‖ against
`retain_grad` on an unrolled reference written from torch ops (itself checked against torch.nn); in-place
edits detected; whole-model conversion; initialisation and diagnostics on the projected state.
Run: `.venv/bin/pytest tests/test_projection.py`.
"""

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.nn.utils.rnn import pack_padded_sequence
from torch.testing import assert_close

import rnnlab
from rnnlab import diagnostics
from tests.conftest import make_pair, weighted_loss

F64 = {"rtol": 1e-10, "atol": 1e-12}
T, B, I, H, P = 5, 3, 3, 5, 2  # noqa: E741 - the sizes as the docs name them


def _pair(layers=1, **kwargs):
    return make_pair("lstm", input_size=I, hidden_size=H, num_layers=layers, proj_size=P, **kwargs)


def _states(rows, batch=B, seed=3):
    gen = torch.Generator().manual_seed(seed)
    h0 = torch.randn(rows, batch, P, generator=gen, dtype=torch.float64)
    c0 = torch.randn(rows, batch, H, generator=gen, dtype=torch.float64)
    return [h0, c0]


def _run_both(reference, module, x, states, packed_lengths=None):
    results = []
    for m in (reference, module):
        leaves = [x.clone().requires_grad_()] + [s.clone().requires_grad_() for s in states]
        inp = leaves[0]
        if packed_lengths is not None:
            inp = pack_padded_sequence(inp, packed_lengths, enforce_sorted=False)
        out, (h_n, c_n) = m(inp, (leaves[1], leaves[2]))
        data = out.data if packed_lengths is not None else out
        weighted_loss(data, h_n, c_n).backward()
        results.append((data, h_n, c_n, leaves))
    return results


def _assert_same(results, reference, module):
    (out_r, h_r, c_r, leaves_r), (out_m, h_m, c_m, leaves_m) = results
    assert out_m.shape == out_r.shape
    for a, b in ((out_m, out_r), (h_m, h_r), (c_m, c_r)):
        assert_close(a, b, **F64)
    for (name, p_ref), (name_new, p_new) in zip(reference.named_parameters(), module.named_parameters(), strict=True):
        assert name == name_new
        assert_close(p_new.grad, p_ref.grad, **F64, msg=lambda m, n=name: f"grad of {n}: {m}")
    for a, b in zip(leaves_m, leaves_r, strict=True):
        assert_close(a.grad, b.grad, **F64)


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_nn_float64(layers, bidirectional, batch_first, bias):
    reference, module = _pair(layers, bidirectional=bidirectional, batch_first=batch_first, bias=bias)
    assert list(module.state_dict()) == list(reference.state_dict())
    assert module._flat_weights_names == reference._flat_weights_names
    assert [p.shape for p in module._flat_weights] == [p.shape for p in reference._flat_weights]
    directions = 2 if bidirectional else 1
    gen = torch.Generator().manual_seed(7)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=gen, dtype=torch.float64)
    results = _run_both(reference, module, x, _states(layers * directions))
    assert results[1][0].shape == ((B, T, directions * P) if batch_first else (T, B, directions * P))
    assert results[1][1].shape == (layers * directions, B, P) and results[1][2].shape == (layers * directions, B, H)
    _assert_same(results, reference, module)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_packed_sequence_matches_torch_nn_float64(bidirectional):
    reference, module = _pair(2, bidirectional=bidirectional)
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    results = _run_both(reference, module, x, _states(2 * (2 if bidirectional else 1)), torch.tensor([3, 5, 1]))
    _assert_same(results, reference, module)


def test_unbatched_defaults_and_a_bad_state_as_torch_nn():
    reference, module = _pair(2)
    x = torch.randn(T, I, dtype=torch.float64)
    out_r, (h_r, c_r) = reference(x)
    out_m, (h_m, c_m) = module(x)
    assert out_m.shape == (T, P) and h_m.shape == (2, P) and c_m.shape == (2, H)
    for a, b in ((out_m, out_r), (h_m, h_r), (c_m, c_r)):
        assert_close(a, b, **F64)
    wrong = (torch.zeros(2, B, H, dtype=torch.float64), torch.zeros(2, B, H, dtype=torch.float64))
    for m in (reference, module):  # h0 must have proj_size features, not hidden_size
        with pytest.raises(RuntimeError):
            m(torch.randn(T, B, I, dtype=torch.float64), wrong)
    with pytest.raises(RuntimeError, match=r"h0 has shape \(2, 3, 5\), expected \(2, 3, 2\).*proj_size"):
        module(torch.randn(T, B, I, dtype=torch.float64), wrong)


def _functional(module, lengths=None):
    names = list(dict(module.named_parameters()))

    def run(x, h0, c0, *params):
        inp = x if lengths is None else pack_padded_sequence(x, lengths, enforce_sorted=False)
        with torch.nn.utils.stateless._reparametrize_module(module, dict(zip(names, params, strict=True))):
            out, (h_n, c_n) = module(inp, (h0, c0))
        return (out if lengths is None else out.data, h_n, c_n)

    return run


@pytest.mark.parametrize(
    ("layers", "bidirectional", "lengths"), [(2, False, None), (1, True, None), (1, True, torch.tensor([2, 4, 3]))]
)
def test_gradcheck_and_gradgradcheck(layers, bidirectional, lengths):
    _, module = make_pair("lstm", input_size=2, hidden_size=3, num_layers=layers, proj_size=2,
                          bidirectional=bidirectional, spread=0.5)  # fmt: skip
    rows = layers * (2 if bidirectional else 1)
    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(rows, 3, 2, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(rows, 3, 3, dtype=torch.float64, requires_grad=True)
    inputs = (x, h0, c0, *module.parameters())
    assert gradcheck(_functional(module, lengths), inputs, eps=1e-6, atol=1e-6)
    assert gradgradcheck(_functional(module, lengths), inputs, eps=1e-6, atol=1e-6)


def test_a_gradient_penalty_gives_torch_nn_s_parameter_gradients():
    """create_graph=True through the projected stack: (loss + ‖∂loss/∂x‖²).backward() as torch.nn computes it."""
    reference, module = _pair(2)
    x = torch.randn(T, B, I, dtype=torch.float64)
    for m in (reference, module):
        xi = x.clone().requires_grad_()
        out, (h_n, _) = m(xi)
        loss = weighted_loss(out, h_n)
        (dx,) = torch.autograd.grad(loss, xi, create_graph=True)
        assert dx.requires_grad, "the derivative must itself be differentiable"
        (loss + dx.pow(2).sum()).backward()
    for p_ref, p_new in zip(reference.parameters(), module.parameters(), strict=True):
        assert_close(p_new.grad, p_ref.grad, **F64)


def test_an_in_place_edit_before_the_backward_is_an_error_as_in_torch_nn():
    for m in _pair(1):
        out, _ = m(torch.randn(T, B, I, dtype=torch.float64))
        with torch.no_grad():
            m.weight_hr_l0.mul_(2)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            out.sum().backward()


def _unrolled_reference(module: nn.LSTM, x: torch.Tensor):
    """The projected LSTM step by step from torch ops (not rnnlab's cells), every h_t and c_t kept with
    retain_grad: x (T, B, I) → (output (T, B, P), per layer [h_t], [c_t])."""
    layer_input, hs_all, cs_all = x, [], []
    for k in range(module.num_layers):
        w_ih, w_hh = getattr(module, f"weight_ih_l{k}"), getattr(module, f"weight_hh_l{k}")
        b = getattr(module, f"bias_ih_l{k}") + getattr(module, f"bias_hh_l{k}")
        w_hr = getattr(module, f"weight_hr_l{k}")
        h, c = x.new_zeros(x.shape[1], module.proj_size), x.new_zeros(x.shape[1], module.hidden_size)
        hs, cs = [], []
        for t in range(x.shape[0]):
            i, f, g, o = (layer_input[t] @ w_ih.t() + h @ w_hh.t() + b).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = (torch.sigmoid(o) * torch.tanh(c)) @ w_hr.t()
            h.retain_grad()
            c.retain_grad()
            hs.append(h)
            cs.append(c)
        hs_all.append(hs)
        cs_all.append(cs)
        layer_input = torch.stack(hs)
    return layer_input, hs_all, cs_all


def test_recorded_norms_equal_retain_grad_on_every_state_with_a_loss_on_every_step():
    reference, module = _pair(2)
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out_ref, hs, cs = _unrolled_reference(reference, x)
    assert_close(out_ref, reference(x)[0], **F64)  # the reference itself is torch.nn's projected LSTM
    weighted_loss(out_ref).backward()
    with rnnlab.record_gradients(module, per_sample=True, keep_vectors=True) as rec:
        out, _ = module(x)
        weighted_loss(out).backward()
    record = rec.last
    expected_h = torch.stack([torch.stack([h.grad.norm(dim=-1) for h in layer]) for layer in hs])  # (L, T, B)
    expected_c = torch.stack([torch.stack([c.grad.norm(dim=-1) for c in layer]) for layer in cs])
    assert_close(record.per_sample, expected_h, **F64)
    assert_close(record.cell_per_sample, expected_c, **F64)
    assert_close(record.vectors, torch.stack([torch.stack([h.grad for h in layer]) for layer in hs]), **F64)
    assert record.norms.shape == (2, T)


def test_recording_a_projected_bidirectional_module_covers_both_directions():
    _, module = _pair(1, bidirectional=True)
    with rnnlab.record_gradients(module) as rec:
        out, _ = module(torch.randn(T, B, I, dtype=torch.float64))
        out[-1, :, :P].sum().backward()  # the forward direction's last output only
    assert rec.last.norms[0, -1] > 0 and rec.last.reverse is not None
    assert torch.all(rec.last.reverse.norms == 0), "the loss does not reach the reverse direction"


def test_convert_a_whole_model_and_back_with_the_same_numbers_and_keys():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("lstm", nn.LSTM(I, H, num_layers=2, proj_size=P, batch_first=True, dtype=torch.float64))
    x = torch.randn(B, T, I, dtype=torch.float64)
    before, keys = model(x)[0], list(model.state_dict())
    rnnlab.convert(model)
    assert isinstance(model.lstm, rnnlab.LSTM) and model.lstm.proj_size == P
    assert list(model.state_dict()) == keys
    assert_close(model(x)[0], before, **F64)
    rnnlab.convert_back(model)
    assert type(model.lstm) is nn.LSTM and model.lstm.proj_size == P
    assert_close(model(x)[0], before, **F64)


def test_init_schemes_set_the_projection_and_leave_it_where_they_say():
    module = rnnlab.LSTM(4, 64, proj_size=16)
    before = module.weight_hr_l0.detach().clone()
    rnnlab.init.orthogonal(module)  # weight_hh only
    assert torch.equal(module.weight_hr_l0, before)
    rnnlab.init.xavier_uniform(module, generator=torch.Generator().manual_seed(0))  # every tensor
    bound = (6 / (64 + 16)) ** 0.5
    assert not torch.equal(module.weight_hr_l0, before)
    assert module.weight_hr_l0.abs().max() <= bound
    rnnlab.init.apply(module, "chrono", t_max=100, seed=0)
    assert torch.all(module.bias_ih_l0[64:128] > 0)


def test_diagnostics_on_the_projected_state():
    _, module = _pair(2)
    flow = diagnostics.gradient_flow(module, torch.randn(20, B, I, dtype=torch.float64))
    assert flow.norms.shape == (2, 20) and flow.profile()[0].item() == pytest.approx(1.0, rel=1e-10)
    radius = diagnostics.spectral_radius(module)
    w_i = module.weight_hh_l1.detach().chunk(4)[0] @ module.weight_hr_l1.detach()  # (H, P)·(P, H)
    assert radius.shape == (2, 4)
    assert radius[1, 0].item() == pytest.approx(torch.linalg.eigvals(w_i).abs().max().item(), rel=1e-12)
    # jacobian_norms: ∂h_T/∂h_t of the projected state (c_t held, as the recorded partial derivative) against
    # autograd's Jacobian of h_T as a function of the state after the first step.
    _, single = _pair(1)
    x = torch.randn(4, 1, I, dtype=torch.float64)
    jac = diagnostics.jacobian_norms(single, x)
    _, (h1, c1) = single(x[:1])

    def h_last_from(h_start):
        return single(x[1:], (h_start.view(1, 1, P), c1.detach()))[1][0].view(P)

    full = torch.autograd.functional.jacobian(h_last_from, h1.detach().view(P))  # (P, P)
    assert_close(jac.singular_values[0, 0, 0], torch.linalg.svdvals(full), **F64)


def test_truncation_with_a_projection_is_a_clear_error():
    module = rnnlab.LSTM(I, H, proj_size=P, truncate=2)
    with pytest.raises(NotImplementedError, match="truncate is not supported for an LSTM with proj_size"):
        module(torch.randn(T, B, I))


def test_dropout_one_and_an_empty_batch_as_torch_nn():
    reference, module = _pair(2, dropout=1.0)
    reference.train()
    module.train()
    x = torch.randn(T, B, I, dtype=torch.float64)
    assert_close(module(x)[0], reference(x)[0], **F64)  # layer 1 sees zeros: both give the same
    empty = torch.randn(T, 0, I, dtype=torch.float64)
    out_r, (h_r, c_r) = reference(empty)
    out_m, (h_m, c_m) = module(empty)
    assert out_m.shape == out_r.shape and h_m.shape == h_r.shape and c_m.shape == c_r.shape
