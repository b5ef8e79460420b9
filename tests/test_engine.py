"""The explicit BPTT engine against independent references, in float64:

- autograd through torch.nn cells (`tests.reference.unrolled`) for losses on the last step and on every
  step, 1–3 layers, batch_first both ways, with and without initial state, and with dropout masks;
- `torch.autograd.gradcheck` on tiny sizes;
- recorded ‖∂L/∂h_t‖ (and ‖∂L/∂c_t‖) against `retain_grad` on every h_t; recording changes no gradient;
- truncation against a reference that re-runs each loss term from a detached state;
- denormal flushing restores the caller's setting.
Run: `.venv/bin/pytest tests/test_engine.py`.
"""

import itertools

import pytest
import torch
from torch.testing import assert_close

import rnnlab
from rnnlab.engine import denormals_flushed
from rnnlab.recurrent.engine import StackSpec, run_stack
from tests.conftest import CELL_KINDS, make_pair, on_both_loops
from tests.reference import unrolled

F64 = {"rtol": 1e-10, "atol": 1e-12}


def _loss_weights(steps, batch, hidden, every_step, seed=3):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(steps, batch, hidden, generator=gen, dtype=torch.float64)
    if not every_step:
        w[:-1] = 0  # loss on the last step only
    return w


@pytest.mark.parametrize(
    ("cell", "layers", "batch_first", "given_state", "every_step"),
    list(itertools.product(CELL_KINDS, (1, 2, 3), (False, True), (False, True), (False, True))),
)
def test_engine_matches_unrolled_autograd(cell, layers, batch_first, given_state, every_step):
    reference, module = make_pair(cell, num_layers=layers, batch_first=batch_first)
    steps, batch = 6, 3
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(steps, batch, 3, generator=gen, dtype=torch.float64)
    states = [
        torch.randn(layers, batch, 7, generator=gen, dtype=torch.float64) for _ in range(2 if cell == "lstm" else 1)
    ]
    w = _loss_weights(steps, batch, 7, every_step)

    x_ref = x.clone().requires_grad_()
    s_ref = [s.clone().requires_grad_() for s in states] if given_state else None
    hx_ref = None if s_ref is None else (tuple(s_ref) if cell == "lstm" else s_ref[0])
    out_ref, _, _ = unrolled(reference, x_ref, hx_ref)
    (out_ref * w).sum().backward()

    x_new = x.clone().requires_grad_()
    s_new = [s.clone().requires_grad_() for s in states] if given_state else None
    hx_new = None if s_new is None else (tuple(s_new) if cell == "lstm" else s_new[0])
    with rnnlab.record_gradients(module):
        out_new, _ = module(x_new.transpose(0, 1) if batch_first else x_new, hx_new)
    out_new = out_new.transpose(0, 1) if batch_first else out_new
    (out_new * w).sum().backward()

    assert_close(out_new, out_ref, **F64)
    for p_ref, p_new in zip(reference.parameters(), module.parameters(), strict=True):
        assert_close(p_new.grad, p_ref.grad, **F64)
    assert_close(x_new.grad, x_ref.grad, **F64)
    if given_state:
        for a, b in zip(s_new, s_ref, strict=True):
            assert_close(a.grad, b.grad, **F64)


@pytest.mark.parametrize("cell", [*CELL_KINDS, "rnn_linear"])
def test_gradcheck_tiny(cell):
    # Full BPTT only: truncation deliberately differs from the true derivative (tested against its reference).
    truncate = None
    torch.manual_seed(0)
    if cell == "rnn_linear":
        module = rnnlab.RNN(2, 3, num_layers=2, nonlinearity="linear", dtype=torch.float64, truncate=truncate)
    else:
        module = CELL_KINDS[cell][1](2, 3, num_layers=2, dtype=torch.float64, truncate=truncate, **CELL_KINDS[cell][2])
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)
    params = list(module.parameters())
    spec = StackSpec(cell=module.cell, num_layers=2, bias=True, truncate=truncate)

    def f(x, h0, c0, *weights):
        out, hn, cn = run_stack(spec, x, h0, c0 if module.cell.has_cell_state else None, list(weights))
        return (out, hn) if cn is None else (out, hn, cn)

    assert torch.autograd.gradcheck(f, (x, h0, c0, *params), eps=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------------ recording


@pytest.mark.parametrize("cell", list(CELL_KINDS))
@pytest.mark.parametrize("layers", [1, 3])
def test_recorded_norms_match_retain_grad(cell, layers):
    reference, module = make_pair(cell, num_layers=layers)
    steps, batch = 7, 4
    x = torch.randn(steps, batch, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    w = _loss_weights(steps, batch, 7, every_step=True)

    out_ref, hs, cs = unrolled(reference, x)
    (out_ref * w).sum().backward()
    expected = torch.stack([torch.stack([h.grad.norm(dim=-1) for h in layer]) for layer in hs])  # (L, T, B)

    with rnnlab.record_gradients(module, per_sample=True) as rec:
        out, _ = module(x)
        (out * w).sum().backward()
    assert_close(rec.last.per_sample, expected, **F64)
    assert_close(rec.norms, expected.mean(-1), **F64)
    if cell == "lstm":
        expected_c = torch.stack([torch.stack([c.grad.norm(dim=-1) for c in layer]) for layer in cs])
        assert_close(rec.last.cell_per_sample, expected_c, **F64)
        assert_close(rec.cell_norms, expected_c.mean(-1), **F64)
    else:
        assert rec.cell_norms is None


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_recording_changes_no_gradient(cell):
    _, module = make_pair(cell, num_layers=2)
    x = torch.randn(9, 3, 3, dtype=torch.float64)
    out, _ = module(x)
    out.pow(2).sum().backward()
    plain = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    with rnnlab.record_gradients(module) as rec:
        out, _ = module(x)
        out.pow(2).sum().backward()
    for a, p in zip(plain, module.parameters(), strict=True):
        assert torch.equal(a, p.grad)
    assert len(rec.records) == 1 and rec.norms.shape == (2, 9)


def test_recording_in_a_model_names_modules_and_detaches_afterwards():
    model = torch.nn.ModuleDict({"encoder": rnnlab.GRU(3, 5), "decoder": rnnlab.LSTM(5, 4)})
    x = torch.randn(6, 2, 3)
    with rnnlab.record_gradients(model) as rec:
        h, _ = model["encoder"](x)
        y, _ = model["decoder"](h)
        y.sum().backward()
    assert sorted(r.module for r in rec.records) == ["decoder", "encoder"]
    model["encoder"](x)[0].sum().backward()
    assert len(rec.records) == 2, "forwards after the block are not recorded"
    with pytest.raises(TypeError, match="contains no rnnlab"), rnnlab.record_gradients(torch.nn.LSTM(2, 3)):
        pass


# ------------------------------------------------------------------------------------------------ truncation


def _truncated_reference(reference, x, h0, k, w_out, w_final):
    """Sum over entry steps s of the loss term at s, each computed from the state at s − k detached, so that
    its gradient reaches steps s − k + 1 … s only. h0 (tuple for LSTM) counts as the state at step −1."""
    is_lstm = isinstance(reference, torch.nn.LSTM)
    steps = x.shape[0]
    with torch.no_grad():  # states along the untruncated trajectory, detached: states[t + 1] is after step t
        _, hs, cs = unrolled(reference, x, h0)
    states = [h0] + [(hs[0][t], cs[0][t]) if is_lstm else hs[0][t] for t in range(steps)]
    states = [
        tuple(s.unsqueeze(0) if s.dim() == 2 else s for s in st)
        if is_lstm
        else (st.unsqueeze(0) if st.dim() == 2 else st)
        for st in states
    ]
    total = 0
    for s in range(steps):
        start = s - k  # the state after step `start` is detached
        if start < -1:
            start_state, first = h0, 0  # the whole chain from h0 is within reach
        else:
            st = states[start + 1]
            start_state = tuple(t.detach() for t in st) if is_lstm else st.detach()
            first = start + 1
        out, final = reference(x[first : s + 1], start_state)
        total = total + (out[-1] * w_out[s]).sum()
        if s == steps - 1:
            finals = final if is_lstm else (final,)
            total = total + sum((f * wf).sum() for f, wf in zip(finals, w_final, strict=False))
    return total


@pytest.mark.parametrize("cell", list(CELL_KINDS))
@pytest.mark.parametrize("k", [1, 3, 7, 8])
def test_truncation_matches_detached_reference(cell, k):
    steps, batch = 7, 2
    reference, module = make_pair(cell)
    module.truncate = k
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(steps, batch, 3, generator=gen, dtype=torch.float64)
    n_states = 2 if cell == "lstm" else 1
    h0 = [torch.randn(1, batch, 7, generator=gen, dtype=torch.float64) for _ in range(n_states)]
    w_out = torch.randn(steps, batch, 7, generator=gen, dtype=torch.float64)
    w_final = [torch.randn(1, batch, 7, generator=gen, dtype=torch.float64) for _ in range(n_states)]

    x_ref = x.clone().requires_grad_()
    h_ref = [h.clone().requires_grad_() for h in h0]
    hx_ref = tuple(h_ref) if cell == "lstm" else h_ref[0]
    _truncated_reference(reference, x_ref, hx_ref, k, w_out, w_final).backward()

    x_new = x.clone().requires_grad_()
    h_new = [h.clone().requires_grad_() for h in h0]
    out, final = module(x_new, tuple(h_new) if cell == "lstm" else h_new[0])
    finals = final if cell == "lstm" else (final,)
    loss = (out * w_out).sum() + sum((f * wf).sum() for f, wf in zip(finals, w_final, strict=True))
    loss.backward()

    for p_ref, p_new in zip(reference.parameters(), module.parameters(), strict=True):
        assert_close(p_new.grad, p_ref.grad, **F64)
    assert_close(x_new.grad, x_ref.grad, **F64)
    for a, b in zip(h_new, h_ref, strict=True):
        # With k small enough no loss term reaches h0: autograd leaves its grad None, the engine gives zeros.
        assert_close(a.grad, torch.zeros_like(a) if b.grad is None else b.grad, **F64)


def test_truncation_cuts_the_recorded_profile_exactly():
    module = rnnlab.LSTM(2, 8, truncate=5, dtype=torch.float64)
    x = torch.randn(12, 3, 2, dtype=torch.float64)
    with rnnlab.record_gradients(module) as rec:
        out, _ = module(x)
        out[-1].sum().backward()
    norms = rec.norms[0]
    assert (norms[-5:] > 0).all() and (norms[:-5] == 0).all()


# ------------------------------------------------------------------------------------------------ dropout


def test_dropout_masks_match_reference_with_the_same_rng():
    reference, module = make_pair("gru", num_layers=3, dropout=0.4)
    module.train()
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    torch.manual_seed(123)
    out, _ = module(x)
    # The engine draws one mask per layer output (below the top) right after that layer: do the same,
    # with single-layer copies built before seeding (their constructors draw from the RNG too).
    singles = []
    for layer in range(2):
        single = torch.nn.GRU(3 if layer == 0 else 7, 7, dtype=torch.float64)
        layer_state = {
            k.replace(f"_l{layer}", "_l0"): v for k, v in reference.state_dict().items() if k.endswith(f"_l{layer}")
        }
        single.load_state_dict(layer_state)
        singles.append(single)
    torch.manual_seed(123)
    masks = []
    with torch.no_grad():
        layer_in = x
        for single in singles:
            layer_out, _ = single(layer_in)
            masks.append(torch.empty_like(layer_out).bernoulli_(0.6).div_(0.6))
            layer_in = layer_out * masks[-1]
    x_ref = x.clone().requires_grad_()
    out_ref, _, _ = unrolled(reference, x_ref, dropout_masks=masks)
    assert_close(out, out_ref, **F64)
    w = torch.randn_like(out)
    x_new = x.clone().requires_grad_()
    torch.manual_seed(123)
    (module(x_new)[0] * w).sum().backward()
    (out_ref * w).sum().backward()
    for p_ref, p_new in zip(reference.parameters(), module.parameters(), strict=True):
        assert_close(p_new.grad, p_ref.grad, **F64)
    assert_close(x_new.grad, x_ref.grad, **F64)


# ------------------------------------------------------------------------------------------------ denormals


@pytest.mark.parametrize("before", [False, True])
def test_denormal_setting_is_restored_after_forward_and_backward(before):
    torch.set_flush_denormal(before)
    assert denormals_flushed() is before
    module = rnnlab.LSTM(2, 4)
    out, _ = module(torch.randn(5, 2, 2))
    assert denormals_flushed() is before
    out.sum().backward()
    assert denormals_flushed() is before


@pytest.mark.parametrize("engine", ["auto", "python"])
def test_the_denormal_reading_agrees_with_what_the_cpu_does(engine, monkeypatch):
    """The compiled engine reads the control register; the Python loop probes arithmetic. Both must say what
    a denormal actually does: survive multiplication by one, or become zero."""
    monkeypatch.setenv("RNNLAB_ENGINE", engine)
    probe = torch.tensor([1e-40], dtype=torch.float32)
    for flush in (True, False):
        torch.set_flush_denormal(flush)
        assert denormals_flushed() is ((probe * 1.0).item() == 0.0) is flush


def test_engine_flushes_denormals_inside_and_can_be_told_not_to():
    seen = []

    class Spy(rnnlab.recurrent.cells.VanillaCell):
        def step(self, *args):
            seen.append(denormals_flushed())
            return super().step(*args)

    torch.set_flush_denormal(False)
    x, h0 = torch.randn(3, 1, 2), torch.zeros(1, 1, 4)
    weights = [torch.randn(4, 2), torch.randn(4, 4)]
    run_stack(StackSpec(cell=Spy("tanh"), num_layers=1, bias=False), x, h0, None, weights)
    run_stack(StackSpec(cell=Spy("tanh"), num_layers=1, bias=False, flush=False), x, h0, None, weights)
    assert seen == [True] * 3 + [False] * 3


@pytest.mark.parametrize("before", [False, True])
def test_every_pool_thread_flushes_inside_the_engine_and_follows_the_caller_after(before):
    """torch.set_flush_denormal sets the calling thread only, but the GEMMs run on the OpenMP pool too (where a
    denormal weight-gradient product was 170× slower): inside the engine every pool thread flushes, and after it
    the pool has the caller's setting again."""
    ext = rnnlab.recurrent.native.extension()
    if ext is None:
        pytest.skip("the compiled engine is not in use here")
    seen = []

    class Spy(rnnlab.GradientRecorder):
        def add_backward(self, module, records):  # called inside the engine's backward
            seen.append(tuple(ext.pool_denormals_flushed()))
            super().add_backward(module, records)

    torch.set_flush_denormal(before)
    ext.set_pool_denormals(before)
    module = rnnlab.LSTM(2, 4)
    recorder = Spy()
    module._recording = (recorder, "lstm")
    out, _ = module(torch.randn(5, 2, 2))
    out.sum().backward()
    flushing, team = seen[0]
    assert team >= 1 and flushing == team, "every pool thread flushes inside the engine"
    flushing, team = ext.pool_denormals_flushed()
    assert flushing == (team if before else 0), "after it, the pool follows the caller's setting"
    assert denormals_flushed() is before
    ext.set_pool_denormals(False)


def test_the_compiled_engine_is_built_where_a_compiler_exists():
    import shutil

    from rnnlab.recurrent import native

    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler here: the engine runs its Python time loop")
    if native.engine_choice() == "python":
        pytest.skip("RNNLAB_ENGINE=python forces the Python time loop")
    assert native.backend() == "cpp"


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_compiled_and_python_loops_agree(cell, monkeypatch):
    """The fast path against its slow reference, recording included (float64)."""
    _, module = make_pair(cell, num_layers=2)
    x = torch.randn(8, 3, 3, dtype=torch.float64)
    weights = torch.linspace(-1, 1, 7, dtype=torch.float64)
    compiled, python = on_both_loops(module, x, lambda out: (out * weights).sum(), monkeypatch)
    # output, 8 parameter gradients (2 layers), ‖∂L/∂h_t‖, and ‖∂L/∂c_t‖ for the LSTM
    assert len(compiled) == len(python) == 1 + 8 + 1 + (cell == "lstm")
    for a, b in zip(compiled, python, strict=True):
        assert_close(a, b, **F64)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh"])
def test_tensors_off_the_cpu_take_the_python_loop(cell):
    """The compiled loop reads CPU memory; tensors on any other device (CUDA on a GPU machine; here the
    storage-less 'meta' device stands in for it) must run the Python loop, forward and backward."""
    from rnnlab.recurrent.cells import get_cell

    spec_cell = get_cell(cell)
    gh = spec_cell.gates * 4
    x = torch.randn(5, 2, 3, device="meta", requires_grad=True)
    h0 = torch.zeros(1, 2, 4, device="meta")
    c0 = torch.zeros(1, 2, 4, device="meta") if spec_cell.has_cell_state else None
    shapes = [(gh, 3), (gh, 4), (gh,), (gh,)]
    weights = [torch.randn(*s, device="meta", requires_grad=True) for s in shapes]
    out, hn, _ = run_stack(StackSpec(cell=spec_cell, num_layers=1, bias=True), x, h0, c0, weights)
    out.sum().backward()
    assert out.shape == (5, 2, 4) and out.device.type == "meta" and hn.shape == (1, 2, 4)
    assert x.grad.shape == x.shape and [w.grad.shape for w in weights] == [w.shape for w in weights]
