"""The rest of torch.nn's RNN/LSTM/GRU contract: bidirectional layers, PackedSequence, empty batches,
`dropout=1`, half precision, torch.nn's argument checks and error types, `flatten_parameters`.

Parity is checked against torch.nn in float64 with random weights at small unequal sizes (T=5, B=3, I=3,
H=4), on outputs, final states and every gradient; the recorded per-step norms against autograd with
`retain_grad` on every state of an independent unrolled reference built from torch.nn cells; plus gradcheck
and gradgradcheck. Run: `.venv/bin/pytest tests/test_drop_in.py`.
"""

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.testing import assert_close

import rnnlab
from rnnlab import diagnostics
from rnnlab.recurrent.validation import RecurrentDtypeError, RecurrentInputError
from tests.conftest import CELL_KINDS, assert_same_grads, make_pair, weighted_loss

F64 = {"rtol": 1e-10, "atol": 1e-12}
T, B, I, H = 5, 3, 3, 4  # noqa: E741 - the sizes as the docs name them
LENGTHS = torch.tensor([3, 5, 1])  # unsorted on purpose: one sequence of each length


def _finals(result):
    return result if isinstance(result, tuple) else (result,)


def _states(cell, rows, batch=B, seed=3):
    gen = torch.Generator().manual_seed(seed)
    states = [
        torch.randn(rows, batch, H, generator=gen, dtype=torch.float64) for _ in range(2 if cell == "lstm" else 1)
    ]
    return states


def _as_hx(cell, states):
    return tuple(states) if cell == "lstm" else states[0]


# ------------------------------------------------------------------------------------------------ bidirectional


@pytest.mark.parametrize("cell", list(CELL_KINDS))
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("batch_first", [False, True])
def test_bidirectional_matches_torch_nn_float64(cell, layers, batch_first):
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=layers, batch_first=batch_first,
                                  bidirectional=True)  # fmt: skip
    assert list(module.state_dict()) == list(reference.state_dict())
    assert module._flat_weights_names == reference._flat_weights_names
    gen = torch.Generator().manual_seed(7)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=gen, dtype=torch.float64)
    states = _states(cell, 2 * layers)
    results = []
    for m in (reference, module):
        leaves = [x.clone().requires_grad_()] + [s.clone().requires_grad_() for s in states]
        out, final = m(leaves[0], _as_hx(cell, leaves[1:]))
        weighted_loss(out, *_finals(final)).backward()
        results.append((out, _finals(final), leaves))
    (out_ref, finals_ref, leaves_ref), (out_new, finals_new, leaves_new) = results
    assert out_new.shape == out_ref.shape == ((B, T, 2 * H) if batch_first else (T, B, 2 * H))
    assert_close(out_new, out_ref, **F64)
    for a, b in zip(finals_new, finals_ref, strict=True):
        assert a.shape == (2 * layers, B, H)
        assert_close(a, b, **F64)
    assert_same_grads(reference, module, leaves_ref, leaves_new)


@pytest.mark.parametrize("cell", ["rnn_tanh", "lstm", "gru"])
def test_bidirectional_unbatched_and_to_torch_round_trip(cell):
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    x = torch.randn(T, I, dtype=torch.float64)
    out_ref, final_ref = reference(x)
    out_new, final_new = module(x)
    assert_close(out_new, out_ref, **F64)
    assert_close(_finals(final_new)[0], _finals(final_ref)[0], **F64)
    back = rnnlab.convert_back(module)
    assert type(back) is type(reference) and back.bidirectional
    for a, b in zip(back.state_dict().values(), reference.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def _functional(module):
    """module as a function of (input, *parameters), for gradcheck."""
    names = list(dict(module.named_parameters()))

    def run(x, *params):
        with torch.nn.utils.stateless._reparametrize_module(module, dict(zip(names, params, strict=True))):
            out, final = module(x)
        return (out, *_finals(final))

    return run


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_bidirectional_gradcheck_and_gradgradcheck(cell):
    _, module = make_pair(cell, input_size=2, hidden_size=3, num_layers=2, bidirectional=True, spread=0.5)
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    inputs = (x, *module.parameters())
    assert gradcheck(_functional(module), inputs, eps=1e-6, atol=1e-6)
    assert gradgradcheck(_functional(module), inputs, eps=1e-6, atol=1e-6)


def test_the_unidirectional_module_keeps_the_one_call_fast_path(monkeypatch):
    """Only bidirectional, packed and dropout=1 forwards are split; everything else is one engine call."""
    from rnnlab.recurrent import modules

    calls = []
    real = modules.run_stack
    # The dispatcher hands run_stack to the split paths too, so this one patch sees every engine call.
    monkeypatch.setattr(modules, "run_stack", lambda spec, *a: calls.append(spec.num_layers) or real(spec, *a))
    rnnlab.LSTM(I, H, num_layers=3)(torch.randn(T, B, I))
    assert calls == [3]
    calls.clear()
    rnnlab.LSTM(I, H, num_layers=3, bidirectional=True)(torch.randn(T, B, I))
    assert calls == [1] * 6


# ------------------------------------------------------------------------------------------------ packed


@pytest.mark.parametrize("cell", list(CELL_KINDS))
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_packed_sequence_matches_torch_nn_float64(cell, bidirectional, enforce_sorted):
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional)
    lengths = LENGTHS.sort(descending=True).values if enforce_sorted else LENGTHS
    padded = torch.randn(T, B, I, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    states = _states(cell, 2 * (2 if bidirectional else 1))
    results = []
    for m in (reference, module):
        leaves = [padded.clone().requires_grad_()] + [s.clone().requires_grad_() for s in states]
        packed = pack_padded_sequence(leaves[0], lengths, enforce_sorted=enforce_sorted)
        out, final = m(packed, _as_hx(cell, leaves[1:]))
        assert isinstance(out, nn.utils.rnn.PackedSequence)
        weighted_loss(out.data, *_finals(final)).backward()
        results.append((out, _finals(final), leaves))
    (out_ref, finals_ref, leaves_ref), (out_new, finals_new, leaves_new) = results
    assert torch.equal(out_new.batch_sizes, out_ref.batch_sizes)
    for a, b in (
        (out_new.sorted_indices, out_ref.sorted_indices),
        (out_new.unsorted_indices, out_ref.unsorted_indices),
    ):
        assert (a is None and b is None) or torch.equal(a, b)
    assert_close(out_new.data, out_ref.data, **F64)
    for a, b in zip(finals_new, finals_ref, strict=True):
        assert_close(a, b, **F64)
    assert_same_grads(reference, module, leaves_ref, leaves_new)


def test_packed_h_n_is_each_sequences_own_last_state_not_the_padded_one():
    """The bug a padded batch would hide: h_n of a short sequence is its state at its own last step."""
    _, module = make_pair("lstm", input_size=I, hidden_size=H)
    padded = torch.randn(T, B, I, dtype=torch.float64)
    _, (h_n, c_n) = module(pack_padded_sequence(padded, LENGTHS, enforce_sorted=False))
    for b, length in enumerate(LENGTHS.tolist()):
        _, (h_alone, c_alone) = module(padded[:length, b : b + 1])
        assert_close(h_n[:, b : b + 1], h_alone, **F64)
        assert_close(c_n[:, b : b + 1], c_alone, **F64)
    _, (h_padded, _) = module(padded)
    assert not torch.allclose(h_padded[:, 0], h_n[:, 0])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_packed_gradcheck_and_gradgradcheck(cell):
    _, module = make_pair(cell, input_size=2, hidden_size=3, bidirectional=True, spread=0.5)
    lengths = torch.tensor([2, 4, 3])
    names = list(dict(module.named_parameters()))

    def run(padded, *params):
        with torch.nn.utils.stateless._reparametrize_module(module, dict(zip(names, params, strict=True))):
            out, final = module(pack_padded_sequence(padded, lengths, enforce_sorted=False))
        return (pad_packed_sequence(out)[0], *_finals(final))

    x = torch.randn(4, 3, 2, dtype=torch.float64, requires_grad=True)
    inputs = (x, *module.parameters())
    assert gradcheck(run, inputs, eps=1e-6, atol=1e-6)
    assert gradgradcheck(run, inputs, eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------ recording


def _torch_cell(module, layer, suffix):
    """A torch.nn cell sharing layer `layer` / direction `suffix` of a torch.nn module's parameters."""
    inputs = module.input_size if layer == 0 else module.hidden_size * (2 if module.bidirectional else 1)
    if isinstance(module, nn.LSTM):
        cell = nn.LSTMCell(inputs, module.hidden_size, dtype=torch.float64)
    elif isinstance(module, nn.GRU):
        cell = nn.GRUCell(inputs, module.hidden_size, dtype=torch.float64)
    else:
        cell = nn.RNNCell(inputs, module.hidden_size, nonlinearity=module.nonlinearity, dtype=torch.float64)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        delattr(cell, name)
        setattr(cell, name, getattr(module, f"{name}_l{layer}{suffix}"))
    return cell


def _unrolled_states(module, x, lengths):
    """Each sequence alone over its own length, step by step with torch.nn cells and retain_grad on every state:
    returns (outputs per sequence (ℓ, D·H), states[b][d][l][t] with t in the original time order)."""
    directions = 2 if module.bidirectional else 1
    is_lstm = isinstance(module, nn.LSTM)
    outputs, states = [], []
    for b, length in enumerate(lengths.tolist()):
        layer_input = x[:length, b : b + 1]  # (ℓ, 1, I)
        per_direction = [[None] * module.num_layers for _ in range(directions)]
        for layer in range(module.num_layers):
            outs = []
            for d, suffix in enumerate(("", "_reverse")[:directions]):
                cell = _torch_cell(module, layer, suffix)
                h = torch.zeros(1, module.hidden_size, dtype=torch.float64)
                c = torch.zeros_like(h)
                hs = [None] * length
                order = range(length) if d == 0 else range(length - 1, -1, -1)
                for t in order:
                    if is_lstm:
                        h, c = cell(layer_input[t], (h, c))
                    else:
                        h = cell(layer_input[t], h)
                    h.retain_grad()
                    hs[t] = h
                per_direction[d][layer] = hs
                outs.append(torch.stack(hs))  # (ℓ, 1, H) in original order
            layer_input = torch.cat(outs, dim=-1)
        outputs.append(layer_input[:, 0])
        states.append(per_direction)
    return outputs, states


@pytest.mark.parametrize("cell", list(CELL_KINDS))
@pytest.mark.parametrize("packed", [False, True])
def test_recording_covers_both_directions_and_each_sequences_own_length(cell, packed):
    """Recorded ‖∂L/∂h_t‖ per direction, sequence and step against autograd with retain_grad; the reverse
    direction indexed by the original time step; steps past a sequence's end recorded as exactly 0."""
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    lengths = LENGTHS if packed else torch.full((B,), T)
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    weights = torch.randn(T, B, 2 * H, generator=torch.Generator().manual_seed(8), dtype=torch.float64)

    outputs, states = _unrolled_states(reference, x, lengths)
    sum(
        (out * weights[: len(out), b]).sum() for b, out in enumerate(outputs)
    ).backward()  # a loss on every existing step of every sequence

    with rnnlab.record_gradients(module, per_sample=True) as recorder:
        if packed:
            out, _ = module(pack_padded_sequence(x, lengths, enforce_sorted=False))
            out = pad_packed_sequence(out)[0]
        else:
            out, _ = module(x)
        (out * weights).sum().backward()
    assert len(recorder.records) == 1
    record = recorder.last
    assert record.direction == "forward" and record.reverse.direction == "reverse"
    for d, rec in enumerate((record, record.reverse)):
        expected = torch.zeros(2, T, B, dtype=torch.float64)
        for b, length in enumerate(lengths.tolist()):
            for layer in range(2):
                for t in range(length):
                    expected[layer, t, b] = states[b][d][layer][t].grad.norm()
        assert_close(rec.per_sample, expected, **F64)
        present = (torch.arange(T)[:, None] < lengths[None, :]).double()  # (T, B)
        assert_close(rec.norms, (expected * present).sum(-1) / present.sum(-1), **F64)
    if packed:
        assert torch.equal(record.lengths, lengths)


def test_recording_a_loss_on_the_first_layer_only_records_zeros_above():
    module = rnnlab.GRU(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    with rnnlab.record_gradients(module) as recorder:
        _, h_n = module(torch.randn(T, B, I, dtype=torch.float64))
        h_n[0].sum().backward()  # layer 0, forward direction's final state: nothing reaches layer 1
    record = recorder.last
    assert (record.norms[0] > 0).all() and (record.norms[1] == 0).all()
    assert (record.reverse.norms == 0).all()


def test_gradient_flow_and_spectral_radius_per_direction():
    torch.manual_seed(0)
    reference = nn.LSTM(I, H, num_layers=2, bidirectional=True, dtype=torch.float64)
    flow = diagnostics.gradient_flow(reference, torch.randn(12, B, I, dtype=torch.float64))
    assert flow.reverse is not None and flow.reverse.direction == "reverse"
    # The default loss projects each direction's own last output on a unit vector: lag 0 has norm exactly 1.
    assert_close(flow.profile()[0], torch.tensor(1.0, dtype=torch.float64), **F64)
    assert_close(flow.reverse.profile()[0], torch.tensor(1.0, dtype=torch.float64), **F64)
    assert_close(flow.reverse.profile(), flow.reverse.norms[-1], rtol=0, atol=0)  # lag = t for reverse
    assert flow.reverse.horizon > 0 and flow.reverse.decay_rate().rate < 1

    radius = diagnostics.spectral_radius(reference)
    assert radius.shape == (2, 2, 4)
    w = reference.weight_hh_l1_reverse.detach()[H : 2 * H]  # layer 1, reverse, forget-gate block
    assert_close(radius[1, 1, 1], torch.linalg.eigvals(w).abs().max(), **F64)
    w = reference.weight_hh_l0.detach()[:H]
    assert_close(radius[0, 0, 0], torch.linalg.eigvals(w).abs().max(), **F64)


def test_gradient_flow_on_packed_input_is_a_clear_error():
    packed = pack_padded_sequence(torch.randn(T, B, I), LENGTHS, enforce_sorted=False)
    with pytest.raises(TypeError, match="gradient_flow: PackedSequence input is not supported"):
        diagnostics.gradient_flow(rnnlab.LSTM(I, H), packed)


def test_jacobian_norms_of_a_bidirectional_module_is_a_clear_error():
    with pytest.raises(NotImplementedError, match="jacobian_norms: bidirectional modules are not supported"):
        diagnostics.jacobian_norms(rnnlab.GRU(I, H, bidirectional=True), torch.randn(T, B, I))


# ------------------------------------------------------------------------------------------------ small parity


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_dropout_one_gives_torch_nn_zeros_between_layers(cell):
    """dropout=1 in training zeroes every layer's output before the next: deterministic, so comparable."""
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=3, dropout=1.0)
    reference.train(), module.train()
    x = torch.randn(T, B, I, dtype=torch.float64)
    results = []
    for m in (reference, module):
        leaf = x.clone().requires_grad_()
        out, final = m(leaf)
        weighted_loss(out, *_finals(final)).backward()
        results.append((out, _finals(final), [leaf]))
    (out_ref, finals_ref, leaves_ref), (out_new, finals_new, leaves_new) = results
    assert torch.isfinite(out_new).all()
    assert_close(out_new, out_ref, **F64)
    for a, b in zip(finals_new, finals_ref, strict=True):
        assert_close(a, b, **F64)
    assert_same_grads(reference, module, leaves_ref, leaves_new)


@pytest.mark.parametrize("cell", list(CELL_KINDS))
@pytest.mark.parametrize(("batch_first", "bidirectional"), [(False, False), (True, False), (False, True)])
def test_an_empty_batch_returns_what_torch_nn_returns(cell, batch_first, bidirectional):
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=2, batch_first=batch_first,
                                  bidirectional=bidirectional)  # fmt: skip
    shape = (0, T, I) if batch_first else (T, 0, I)
    results = []
    for m in (reference, module):
        leaf = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        out, final = m(leaf)
        (out.sum() + sum(f.sum() for f in _finals(final))).backward()
        results.append((out, _finals(final), leaf, [p.grad for p in m.parameters()]))
    (out_ref, finals_ref, x_ref, grads_ref), (out_new, finals_new, x_new, grads_new) = results
    assert out_new.shape == out_ref.shape
    assert [f.shape for f in finals_new] == [f.shape for f in finals_ref]
    assert x_new.grad.shape == x_ref.grad.shape
    for a, b in zip(grads_new, grads_ref, strict=True):
        assert_close(a, b, rtol=0, atol=0)  # zeros of every parameter's shape, as torch.nn


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_an_empty_unbatched_sequence_is_a_runtime_error_as_in_torch_nn(cell):
    reference, module = make_pair(cell, input_size=I, hidden_size=H)
    for m in (reference, module):
        with pytest.raises(RuntimeError):
            m(torch.zeros(0, I, dtype=torch.float64))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_half_precision_against_torch_nn_in_the_same_dtype(cell, dtype):
    """float16/bfloat16 modules compute in float32: torch.nn's numbers to half-precision tolerance, the float64
    numbers rounded once; the parameters' gradients arrive in their own dtype."""
    reference64, _ = make_pair(cell, input_size=I, hidden_size=7, num_layers=2, spread=None)
    low = CELL_KINDS[cell][0](I, 7, num_layers=2, dtype=dtype, **CELL_KINDS[cell][2])
    low.load_state_dict({k: v.to(dtype) for k, v in reference64.state_dict().items()})
    reference64.load_state_dict({k: v.double() for k, v in low.state_dict().items()})  # the rounded weights
    module = rnnlab.from_torch(low)
    x = torch.randn(20, 4, I, generator=torch.Generator().manual_seed(2)).to(dtype)
    results = {}
    for name, m, xi in (("torch", low, x), ("rnnlab", module, x), ("float64", reference64, x.double())):
        leaf = xi.clone().requires_grad_()
        out, _ = m(leaf)
        out.float().pow(2).sum().backward() if out.dtype != torch.float64 else out.pow(2).sum().backward()
        results[name] = (out, m.weight_hh_l0.grad, leaf.grad)
    out, grad, x_grad = results["rnnlab"]
    assert out.dtype == dtype and grad.dtype == dtype and x_grad.dtype == dtype
    tol = {"rtol": 2e-2, "atol": 5e-3} if dtype == torch.float16 else {"rtol": 8e-2, "atol": 3e-2}
    assert_close(out, results["torch"][0], **tol)
    assert_close(grad.float(), results["torch"][1].float(), **tol)
    # The whole stack runs in float32 on the rounded weights and inputs, so the output is the float64 output
    # rounded once (≤ half a unit in the last place); the gradients start from that rounded output, so their
    # error is one rounding relative to each gradient's magnitude. torch.nn rounds at every step instead.
    eps = torch.finfo(dtype).eps
    for got, exact in zip(results["rnnlab"], results["float64"], strict=True):
        got, exact = got.detach().double(), exact.detach().double()
        assert_close(got, exact, rtol=eps, atol=eps * float(exact.abs().max()))


def test_flatten_parameters_and_flat_weights_as_torch_nn():
    reference, module = make_pair("lstm", input_size=I, hidden_size=H, num_layers=2, bias=False, bidirectional=True)
    assert module.flatten_parameters() is None
    assert module._flat_weights_names == reference._flat_weights_names
    assert [tuple(w.shape) for w in module._flat_weights] == [tuple(w.shape) for w in reference._flat_weights]
    assert all(w is getattr(module, n) for w, n in zip(module._flat_weights, module._flat_weights_names, strict=True))
    assert [[tuple(w.shape) for w in g] for g in module.all_weights] == [
        [tuple(w.shape) for w in g] for g in reference.all_weights
    ]


CONSTRUCTION = [
    ({"bias": 1}, TypeError),
    ({"bias": "True"}, TypeError),
    ({"batch_first": 0}, TypeError),
    ({"hidden_size": 2.0}, TypeError),
    ({"input_size": 2.5}, TypeError),
    ({"hidden_size": 0}, ValueError),
    ({"input_size": -1}, ValueError),
    ({"num_layers": 0}, ValueError),
    ({"num_layers": 1.5}, TypeError),
    ({"dropout": 1.5}, ValueError),
    ({"dropout": True}, ValueError),
]


@pytest.mark.parametrize(("kwargs", "error"), CONSTRUCTION)
@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_construction_errors_have_torch_nn_types(kind, kwargs, error):
    args = {"input_size": 3, "hidden_size": 4, **kwargs}
    for cls in (getattr(nn, kind), getattr(rnnlab, kind)):
        with pytest.raises(error):
            cls(**args)


FORWARD_ERRORS = [
    # (input, hx, torch.nn's error, rnnlab's earlier error): rnnlab's class is both
    (torch.randn(T, B, I + 1), None, RuntimeError, ValueError),
    (torch.randn(T, B, I), torch.zeros(1, B + 1, H), RuntimeError, ValueError),
    (torch.randn(T, B, I), torch.zeros(1, H), RuntimeError, ValueError),
    (torch.randn(0, B, I), None, RuntimeError, ValueError),
    (torch.randn(T, B, I, dtype=torch.float64), None, ValueError, TypeError),
    (torch.randn(T, B, I, 1), None, ValueError, ValueError),
]


@pytest.mark.parametrize(("x", "hx", "torch_error", "old_error"), FORWARD_ERRORS)
def test_forward_errors_have_torch_nn_types_and_keep_the_old_ones(x, hx, torch_error, old_error):
    torch.manual_seed(0)
    reference, module = nn.GRU(I, H), rnnlab.GRU(I, H)
    with pytest.raises(torch_error):
        reference(x, hx)
    with pytest.raises(torch_error) as caught:
        module(x, hx)
    assert isinstance(caught.value, old_error)
    assert isinstance(caught.value, RecurrentInputError | RecurrentDtypeError | ValueError)
