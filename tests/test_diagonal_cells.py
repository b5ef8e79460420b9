"""The element-wise cells — IndRNN, minGRU, minLSTM (`cells/diagonal.py`, `rnnlab.IndRNN/MinGRU/MinLSTM`).

Checked in float64 against an independent reference written here from the papers' equations with plain torch
ops (forward, every gradient, and ‖∂L/∂h_t‖ per step against `retain_grad` on the reference's states, 1e-10),
`gradcheck` and `gradgradcheck` through the engine, truncated BPTT against re-running each loss term from a
detached state, the closed form of a constant diagonal recurrence (the per-step gradient decays exactly as
a^k: the diagnostics' rate and horizon match it), IndRNN's |u| constraint against the authors' training loop,
the doors every table cell goes through (config, CLI, init schemes, diagnose), and the one-line errors.
Run: `.venv/bin/pytest tests/test_diagonal_cells.py`.
"""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import Tensor
from torch.func import functional_call
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence

import rnnlab
from rnnlab.cli import build_parser, main
from rnnlab.lab.config import make_config
from rnnlab.recurrent.cells import CELLS, Recurrence
from rnnlab.recurrent.init import SCHEMES
from rnnlab.recurrent.scan import chunked_scan
from tests.reference import truncated_reference_grads

F64 = torch.float64
T, B, I, H, L = 5, 2, 3, 7, 2  # noqa: E741 - the sizes as the docs name them, deliberately unequal

#: The cells of `cells/diagonal.py` by table name: (module class, the options the name implies).
CELL_MODULES = {
    "indrnn": (rnnlab.IndRNN, {}),
    "mingru": (rnnlab.MinGRU, {}),
    "minlstm": (rnnlab.MinLSTM, {}),
    "minlstm_unnormalized": (rnnlab.MinLSTM, {"normalize": False}),
}
#: What the numerical tests run: (module class, options, the reference's name for the equations). minGRU and
#: minLSTM run the parallel scan by default (`scan.py`); `scan=False` runs the step-by-step loop.
CASES = {
    "indrnn": (rnnlab.IndRNN, {}, "indrnn"),
    "mingru-scan": (rnnlab.MinGRU, {}, "mingru"),
    "mingru-loop": (rnnlab.MinGRU, {"scan": False}, "mingru"),
    "minlstm-scan": (rnnlab.MinLSTM, {}, "minlstm"),
    "minlstm-loop": (rnnlab.MinLSTM, {"scan": False}, "minlstm"),
    "minlstm_unnormalized-scan": (rnnlab.MinLSTM, {"normalize": False}, "minlstm_raw"),
    "minlstm_unnormalized-loop": (rnnlab.MinLSTM, {"normalize": False, "scan": False}, "minlstm_raw"),
}


# ------------------------------------------------------------------------------------------------ the reference


def g_paper(k):
    """Feng et al.'s g: k + 1/2 for k >= 0, sigmoid(k) below."""
    return torch.where(k >= 0, k + 0.5, torch.sigmoid(k))


def reference(kind: str, x, h0, params: dict, num_layers: int):
    """The papers' equations, step by step with plain torch ops: x (T, B, I), h0 (L, B, H) → (output (T, B, H),
    h_n (L, B, H), states[layer][t] with retain_grad)."""
    layer_input, h_n, states = x, [], []
    for layer in range(num_layers):
        w = params[f"weight_ih_l{layer}"]
        b = params.get(f"bias_ih_l{layer}")
        h, outs = h0[layer], []
        for t in range(x.shape[0]):
            k = layer_input[t] @ w.T + (0 if b is None else b)
            if kind == "indrnn":  # h_t = ReLU(W x_t + u ⊙ h_{t−1} + b)
                h = torch.relu(k + params[f"weight_hh_l{layer}"] * h)
            elif kind == "mingru":  # h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ g(k_h)
                k_h, k_z = k.chunk(2, dim=-1)
                z = torch.sigmoid(k_z)
                h = (1 - z) * h + z * g_paper(k_h)
            else:  # minLSTM: h_t = f′ ⊙ h_{t−1} + i′ ⊙ g(k_h), f′, i′ normalised by f + i (or not)
                k_h, k_f, k_i = k.chunk(3, dim=-1)
                f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
                if kind == "minlstm":
                    f, i = f / (f + i), i / (f + i)
                h = f * h + i * g_paper(k_h)
            if h.requires_grad:
                h.retain_grad()
            outs.append(h)
        states.append(outs)
        h_n.append(h)
        layer_input = torch.stack(outs)
    return layer_input, torch.stack(h_n), states


def _module(name: str, **kwargs):
    cls, options, _ = CASES[name]
    torch.manual_seed(0)
    return cls(I, H, num_layers=L, dtype=F64, **{**options, **kwargs})


def _leaves(module):
    return {n: p.detach().clone().requires_grad_() for n, p in module.named_parameters()}


# ------------------------------------------------------------------------------------------------ the table


def test_the_cells_are_rows_of_the_table_and_only_indrnn_has_a_kernel():
    for name in CELL_MODULES:
        kernel = CELLS[name].native_kind
        assert (kernel == 5) if name == "indrnn" else kernel is None, "minGRU/minLSTM: the scan or the Python loop"
    assert CELLS["indrnn"].recurrence is Recurrence.DIAGONAL
    assert CELLS["mingru"].recurrence is CELLS["minlstm"].recurrence is Recurrence.NONE
    shapes = {n: tuple(p.shape) for n, p in rnnlab.IndRNN(I, H).named_parameters()}
    assert shapes == {"weight_ih_l0": (H, I), "weight_hh_l0": (H,), "bias_ih_l0": (H,)}
    shapes = {n: tuple(p.shape) for n, p in rnnlab.MinLSTM(I, H, bias=False).named_parameters()}
    assert shapes == {"weight_ih_l0": (3 * H, I)}


# ------------------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("bias", [True, False])
def test_forward_gradients_and_recorded_norms_equal_the_papers_equations(name, bias):
    module = _module(name, bias=bias)
    kind = CASES[name][2]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    h0 = torch.randn(L, B, H, dtype=F64, generator=gen)
    w_out, w_h = torch.randn(T, B, H, dtype=F64, generator=gen), torch.randn(L, B, H, dtype=F64, generator=gen)

    x1, h01 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    with rnnlab.record_gradients(module) as rec:
        out, h_n = module(x1, h01)
        ((out * w_out).sum() + (h_n * w_h).sum()).backward()

    params = _leaves(module)
    x2, h02 = x.clone().requires_grad_(), h0.clone().requires_grad_()
    ref_out, ref_hn, states = reference(kind, x2, h02, params, L)
    ((ref_out * w_out).sum() + (ref_hn * w_h).sum()).backward()

    close = {"rtol": 1e-10, "atol": 1e-12}
    torch.testing.assert_close(out, ref_out, **close)
    torch.testing.assert_close(h_n, ref_hn, **close)
    torch.testing.assert_close(x1.grad, x2.grad, **close)
    torch.testing.assert_close(h01.grad, h02.grad, **close)
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, params[n].grad, **close, msg=lambda m, n=n: f"{n}: {m}")
    ref_norms = torch.stack([torch.stack([s.grad.norm(dim=-1).mean() for s in layer]) for layer in states])
    torch.testing.assert_close(rec.norms, ref_norms, **close)


def _engine_function(name: str):
    """The module as a function of (x, h0, *weights), for gradcheck: T=3, B=2, I=2, H=2, one layer (two
    layers: the parity test above)."""
    module = CASES[name][0](2, 2, dtype=F64, **CASES[name][1])
    names = [n for n, _ in module.named_parameters()]
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    h0 = torch.randn(1, 2, 2, dtype=F64, generator=gen, requires_grad=True)
    weights = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def run(x, h0, *ws):
        return functional_call(module, dict(zip(names, ws, strict=True)), (x, h0))

    return run, (x, h0, *weights)


@pytest.mark.parametrize("name", ["mingru-scan", "mingru-loop", "minlstm-scan", "minlstm-loop"])
def test_the_candidate_takes_the_right_branch_of_g_at_its_kink(name):
    """g′ jumps from σ′(0) = ¼ to 1 at k = 0; at k = −1e-20, σ(k) rounds to ½ = g(0), so only k itself (not
    g's value) tells the backward which side it is on."""
    module = _module(name)
    with torch.no_grad():
        for layer in range(L):
            getattr(module, f"weight_ih_l{layer}")[:H] = 0.0
            getattr(module, f"bias_ih_l{layer}")[:H] = -1e-20
    x = torch.randn(T, B, I, dtype=F64, generator=torch.Generator().manual_seed(11))
    module(x)[0].sum().backward()
    params = _leaves(module)
    reference(CASES[name][2], x, torch.zeros(L, B, H, dtype=F64), params, L)[0].sum().backward()
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, params[n].grad, rtol=1e-10, atol=1e-12, msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_through_the_engine(name):
    run, inputs = _engine_function(name)
    assert torch.autograd.gradcheck(run, inputs)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_gradgradcheck_through_the_engine(name):
    run, inputs = _engine_function(name)
    assert torch.autograd.gradgradcheck(run, inputs), "create_graph=True re-runs the step under autograd"


@pytest.mark.parametrize("name", list(CASES))
def test_truncated_backward_equals_each_loss_term_rerun_from_a_detached_state(name):
    k = 2
    cls, options, kind = CASES[name]
    torch.manual_seed(0)
    module = cls(I, H, dtype=F64, truncate=k, **options)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(T, B, I, dtype=F64, generator=gen)
    w_out = torch.randn(T, B, H, dtype=F64, generator=gen)
    out, _ = module(x)
    (out * w_out).sum().backward()

    # ∂L_s/∂h_t is kept for s − t < k only: term s sees steps s−k+1 … s, from the detached state before them.
    params = _leaves(module)
    zeros = torch.zeros(1, B, H, dtype=F64)
    with torch.no_grad():
        _, _, states = reference(kind, x, zeros, params, 1)
    total = truncated_reference_grads(
        lambda x_part, h: reference(kind, x_part, h, params, 1)[0],
        lambda t: states[0][t - 1][None] if t > 0 else zeros,
        x, w_out, k, params,
    )  # fmt: skip
    for n, p in module.named_parameters():
        torch.testing.assert_close(p.grad, total[n], rtol=1e-10, atol=1e-12, msg=lambda m, n=n: f"{n}: {m}")


@pytest.mark.parametrize("name", list(CELL_MODULES))
def test_packed_bidirectional_input_equals_each_sequence_alone(name):
    """The split paths (`split_forward.py`) take the element-wise cells' parameter lists as they are."""
    cls, options = CELL_MODULES[name]
    torch.manual_seed(0)
    module = cls(I, H, num_layers=2, bidirectional=True, dtype=F64, **options)
    gen = torch.Generator().manual_seed(10)
    seqs = [torch.randn(n, I, dtype=F64, generator=gen) for n in (5, 3, 4)]
    out, h_n = module(pack_sequence(seqs, enforce_sorted=False))
    padded, _ = pad_packed_sequence(out)  # (T, B, 2H)
    for i, seq in enumerate(seqs):
        alone, h_alone = module(seq[:, None])
        torch.testing.assert_close(padded[: len(seq), i], alone[:, 0], rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(h_n[:, i], h_alone[:, 0], rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------------------------ closed form


def _constant_mingru(a: float, scan: bool = True) -> rnnlab.MinGRU:
    """A minGRU whose gate is the constant z = 1 − a (its z block of weight_ih zero, its bias logit(1 − a)):
    h_t = a·h_{t−1} + (1 − a)·g(k_h), so ∂h_t/∂h_{t−k} = a^k·I exactly."""
    module = rnnlab.MinGRU(2, 6, dtype=F64, scan=scan)
    with torch.no_grad():
        module.weight_ih_l0[6:] = 0.0
        module.bias_ih_l0[6:] = math.log((1 - a) / a)
    return module


def _constant_indrnn(a: float) -> rnnlab.IndRNN:
    """An IndRNN with u = a·1 whose units never switch off (no input weight, bias 1: the pre-activation
    1 + a·h stays positive), so ∂h_t/∂h_{t−k} = a^k·I exactly."""
    module = rnnlab.IndRNN(2, 6, dtype=F64)
    with torch.no_grad():
        module.weight_ih_l0.zero_()
        module.weight_hh_l0.fill_(a)
        module.bias_ih_l0.fill_(1.0)
    return module


@pytest.mark.parametrize(
    "build",
    [_constant_mingru, partial(_constant_mingru, scan=False), _constant_indrnn],
    ids=["mingru-scan", "mingru-loop", "indrnn"],
)
def test_a_constant_diagonal_recurrence_decays_exactly_as_a_to_the_lag(build):
    a, steps = 0.9, 100
    module = build(a)
    x = torch.randn(steps, 4, 2, dtype=F64, generator=torch.Generator().manual_seed(4))  # (T, B, I)
    flow = rnnlab.gradient_flow(module, x)  # the default loss: a unit vector on the last output → 1 at lag 0
    lags = torch.arange(steps, dtype=F64)
    torch.testing.assert_close(flow.profile(), a**lags, rtol=1e-10, atol=0)
    fit = flow.decay_rate()
    assert fit.rate == pytest.approx(a, rel=1e-10) and fit.r2 == pytest.approx(1.0, abs=1e-10)
    assert flow.horizon == math.floor(math.log(1e-3) / math.log(a)) == 65
    jac = rnnlab.jacobian_norms(module, x[:20])  # ‖∂h_T/∂h_t‖₂ = a^(T−1−t)
    torch.testing.assert_close(jac.spectral[0], (a ** torch.arange(19, -1, -1, dtype=F64)), rtol=1e-10, atol=0)


# ------------------------------------------------------------------------------------------------ the scan


def _recurrence(a: Tensor, b: Tensor, h: Tensor) -> Tensor:
    """The reference: h_t = a_t ⊙ h_{t−1} + b_t, one step at a time."""
    states = []
    for t in range(b.shape[0]):
        h = a[t] * h + b[t]
        states.append(h)
    return torch.stack(states)


@pytest.mark.parametrize(("steps", "chunk"), [(1, None), (2, None), (30, None), (30, 7), (30, 1), (30, 30), (49, None), (50, None)])  # fmt: skip
def test_the_chunked_scan_equals_the_recurrence_it_parallelises(steps, chunk):
    """Signed inputs (the backward's case), an initial state, chunks that do and do not divide T (30 = 4 × 7 + 2)."""
    gen = torch.Generator().manual_seed(steps)
    a = torch.rand(steps, 3, 4, dtype=F64, generator=gen)
    b = torch.randn(steps, 3, 4, dtype=F64, generator=gen)
    h0 = torch.randn(3, 4, dtype=F64, generator=gen)
    torch.testing.assert_close(chunked_scan(a, b, h0, chunk=chunk), _recurrence(a, b, h0), rtol=1e-12, atol=1e-14)
    zero = torch.zeros(3, 4, dtype=F64)
    torch.testing.assert_close(chunked_scan(a, b, chunk=chunk), _recurrence(a, b, zero), rtol=1e-12, atol=1e-14)
    strided = chunked_scan(a.transpose(1, 2).contiguous().transpose(1, 2), b.transpose(1, 2).contiguous().transpose(1, 2), h0, chunk=chunk)  # fmt: skip
    torch.testing.assert_close(strided, _recurrence(a, b, h0), rtol=1e-12, atol=1e-14)  # inputs that are not contiguous


def test_the_float32_scan_is_as_accurate_as_the_float32_loop_at_t_4096():
    """The chunked scan multiplies and adds what the loop does, so its float32 error is the loop's order
    (the log-space scan it replaced was 3.5e-4 at this length, scanned whole)."""
    torch.manual_seed(0)
    exact = rnnlab.MinGRU(32, 64, dtype=F64, scan=False)
    fast, loop = rnnlab.MinGRU(32, 64), rnnlab.MinGRU(32, 64, scan=False)
    for module in (fast, loop):
        module.load_state_dict({k: v.float() for k, v in exact.state_dict().items()})
    x = torch.randn(4096, 4, 32, dtype=F64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        reference_ = exact(x)[0]
        errors = [((m(x.float())[0].double() - reference_).abs() / reference_.abs().clamp(min=1e-3)).max() for m in (fast, loop)]  # fmt: skip
    assert errors[0] < 1e-5 and errors[0] < 10 * errors[1], errors


@pytest.mark.parametrize("name", ["mingru", "minlstm", "minlstm_unnormalized"])
def test_the_scan_equals_the_loop_over_a_long_sequence(name):
    """Forward, every gradient and the recorded ‖∂L/∂h_t‖ of the scan against the step-by-step loop (the
    reference), T = 300, initial states of both signs, float64."""
    cls, options = CELL_MODULES[name]
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(300, B, I, dtype=F64, generator=gen)
    h0 = torch.randn(L, B, H, dtype=F64, generator=gen)
    w_out = torch.randn(300, B, H, dtype=F64, generator=gen)
    seen = []
    for scan in (True, False):
        torch.manual_seed(0)
        module = cls(I, H, num_layers=L, dtype=F64, scan=scan, **options)
        x1, h01 = x.clone().requires_grad_(), h0.clone().requires_grad_()
        with rnnlab.record_gradients(module) as rec:
            out, h_n = module(x1, h01)
            ((out * w_out).sum() + h_n.sum()).backward()
        seen.append([out, h_n, x1.grad, h01.grad, rec.norms, *(p.grad for p in module.parameters())])
    for ours, reference_ in zip(*seen, strict=True):
        torch.testing.assert_close(ours, reference_, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------ IndRNN's kernel


@pytest.mark.parametrize(("dtype", "tol"), [(F64, {"rtol": 1e-12, "atol": 1e-12}), (torch.float32, {"rtol": 1e-5, "atol": 1e-6})])  # fmt: skip
def test_indrnn_s_compiled_kernel_equals_the_python_loop(monkeypatch, dtype, tol):
    """IndRNN's compiled kernel (`_ext/kernels/rnn.cpp`, the ReLU RNN's with u ⊙ h_{t−1}) against `IndRNNCell.step`
    / `step_backward` (the Python loop): outputs, every gradient, the recorded per-sample ‖∂L/∂h_t‖, for a
    two-layer stack with units that switch off (u of both signs, a bias of −0.3) and H = 13, which is not a
    multiple of the vector width."""
    from rnnlab.recurrent import native
    from tests.conftest import on_both_loops

    ext = native.extension()
    if ext is None:
        pytest.skip("the compiled engine is not in use here")
    calls = []
    original = native.extension  # None under RNNLAB_ENGINE=python, which the second loop sets
    monkeypatch.setattr(native, "extension", lambda: None if original() is None else _Counting(original(), calls))
    torch.manual_seed(0)
    module = rnnlab.IndRNN(3, 13, num_layers=2, dtype=dtype, recurrent_max_abs=None)
    with torch.no_grad():
        module.weight_hh_l0.uniform_(-1.2, 1.2)
        module.bias_ih_l0.fill_(-0.3)
    x = torch.randn(40, 4, 3, dtype=dtype, generator=torch.Generator().manual_seed(1))
    weights = torch.randn(40, 4, 13, dtype=dtype, generator=torch.Generator().manual_seed(2))
    compiled, python = on_both_loops(module, x, lambda out: (out * weights).sum(), monkeypatch)
    assert calls.count(5) == 4, "two layers, forward and backward, through the kernel (native_kind 5)"
    assert 0 < (compiled[0] == 0).float().mean() < 0.9, "some units are off: ReLU′ is exercised"
    for a, b in zip(compiled, python, strict=True):
        torch.testing.assert_close(a, b, **tol)


class _Counting:
    """The compiled extension, with the cell kind of each forward and backward call written down."""

    def __init__(self, ext, calls: list):
        self._ext, self._calls = ext, calls

    def forward(self, kind, *args):
        self._calls.append(kind)
        return self._ext.forward(kind, *args)

    def backward(self, kind, *args):
        self._calls.append(kind)
        return self._ext.backward(kind, *args)

    def __getattr__(self, name):
        return getattr(self._ext, name)


# ------------------------------------------------------------------------------------------------ IndRNN's bound


def test_indrnn_clamps_u_before_every_forward_as_the_authors_training_loop():
    bound, lr, steps = 0.5, 2.0, 4
    module = rnnlab.IndRNN(I, H, dtype=F64, recurrent_max_abs=bound, recurrent_init_max=bound)
    params = _leaves(module)
    gen = torch.Generator().manual_seed(5)
    batches = [(torch.randn(T, B, I, dtype=F64, generator=gen), torch.randn(T, B, H, dtype=F64, generator=gen))]
    batches *= steps
    ours = torch.optim.SGD(module.parameters(), lr=lr)
    theirs = torch.optim.SGD(params.values(), lr=lr)
    went_outside = False
    for x, target in batches:
        with torch.no_grad():  # the authors' loop: clip_weight(model, U_bound) before model(inputs)
            went_outside |= bool(params["weight_hh_l0"].abs().max() > bound)
            params["weight_hh_l0"].clamp_(-bound, bound)
        ref_out, _, _ = reference("indrnn", x, torch.zeros(1, B, H, dtype=F64), params, 1)
        ((ref_out - target) ** 2).sum().backward()
        theirs.step()
        theirs.zero_grad()

        out, _ = module(x)
        assert module.weight_hh_l0.abs().max() <= bound, "the forward computed with a bounded u"
        ((out - target) ** 2).sum().backward()
        ours.step()
        ours.zero_grad()
        for n, p in module.named_parameters():
            torch.testing.assert_close(p.detach(), params[n].detach(), rtol=1e-10, atol=1e-12)
    assert went_outside, "the optimiser pushed u past the bound, so the clamp was exercised"
    assert rnnlab.IndRNN.magnitude_bound(2.0, 100) == pytest.approx(2.0 ** (1 / 100))


def test_a_pending_backward_survives_a_second_forward_within_the_bound():
    module = rnnlab.IndRNN(I, H)
    x = torch.randn(T, B, I)
    first, _ = module(x)
    second, _ = module(x)  # u inside the bound: nothing is written, the first graph stays valid
    (first.sum() + second.sum()).backward()
    assert module.weight_hh_l0.grad is not None


# ------------------------------------------------------------------------------------------------ the doors


def test_rnnlab_train_trains_a_new_cell(tmp_path):
    tiny = ["--task", "adding", "--seq-len", "8", "--hidden", "4", "--steps", "2", "--eval-every", "2", "--no-progress"]
    assert main(["train", "--cell", "indrnn", *tiny, "--store", str(tmp_path / "runs.db")]) == 0


def test_every_door_takes_the_new_cells(capsys):
    for name, (cls, options) in CELL_MODULES.items():
        module = rnnlab.make_recurrent(name, I, H)
        assert type(module) is cls and module.cell is CELLS[name]
        assert all(getattr(module, k) == v for k, v in options.items())
        assert make_config({"cell": name, "task": "adding", "seq_len": 10, "hidden_size": 4, "steps": 1}).cell == name
        assert build_parser().parse_args(["train", "--cell", name]).cell == name
        assert name in SCHEMES["torch_default"].cells and name not in SCHEMES["orthogonal"].cells
    with pytest.raises(ValueError, match="init 'orthogonal' does not apply to a mingru module"):
        make_config({"cell": "mingru", "init": "orthogonal", "task": "adding", "seq_len": 10})
    indrnn = rnnlab.init.apply(rnnlab.IndRNN(I, H), "indrnn_uniform", seed=0, u_max=0.25)
    assert indrnn.weight_hh_l0.min() >= 0 and indrnn.weight_hh_l0.max() <= 0.25
    assert main(["inits"]) == 0 and "indrnn_uniform" in capsys.readouterr().out
    argv = ["diagnose", "--cells", "indrnn,mingru,minlstm", "--seq-len", "30", "--hidden", "8", "--batch", "2"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in ("indrnn", "mingru", "minlstm")) and "—" in table


def test_indrnn_uniform_can_start_the_last_layer_near_one_as_the_adding_script_does():
    """adding.py draws the last layer's u from U((1/MAG)^(1/T), MAG^(1/T)), the others from U(0, MAG^(1/T))."""
    top, low = 2 ** (1 / 1000), 0.5 ** (1 / 1000)
    for bidirectional in (False, True):
        plain = rnnlab.init.apply(rnnlab.IndRNN(I, H, num_layers=3, bidirectional=bidirectional), "indrnn_uniform", seed=0, u_max=top)  # fmt: skip
        near = rnnlab.init.apply(rnnlab.IndRNN(I, H, num_layers=3, bidirectional=bidirectional), "indrnn_uniform", seed=0, u_max=top, last_u_min=low)  # fmt: skip
        for name, tensor in near.named_parameters():
            last = "_l2" in name
            if name.startswith("weight_hh") and last:
                assert low <= tensor.min() < 1.0 < tensor.max() <= top, name
            else:  # the other layers, and every input weight, drawn as without it, in the same order
                torch.testing.assert_close(tensor, dict(plain.named_parameters())[name], rtol=0, atol=0)
        assert (plain.weight_hh_l2 < low).any(), "without it the last layer spans U(0, u_max)"
    with pytest.raises(ValueError, match=r"needs last_u_min < u_max, got 1\.5 and 1\.0"):
        rnnlab.init.apply(rnnlab.IndRNN(I, H), "indrnn_uniform", u_max=1.0, last_u_min=1.5)
    with pytest.raises(ValueError, match="not used by 'lru_ring'"):
        rnnlab.init.apply(rnnlab.LRU(I, H), "lru_ring", last_u_min=0.5)


@pytest.mark.parametrize("name", list(CELL_MODULES))
def test_a_saved_module_loads_with_weights_only(name, tmp_path):
    module = rnnlab.make_recurrent(name, I, H, recurrent_max_abs=0.5) if name == "indrnn" else rnnlab.make_recurrent(name, I, H)  # fmt: skip
    torch.save(module, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert type(loaded) is type(module) and loaded.cell is CELLS[name], "the table's own cell, by name"
    x = torch.randn(T, B, I)
    torch.testing.assert_close(loaded(x)[0], module(x)[0], rtol=0, atol=0)
    assert getattr(loaded, "recurrent_max_abs", None) == getattr(module, "recurrent_max_abs", None)


@pytest.mark.parametrize(("name", "advice"), [("indrnn", "indrnn_uniform"), ("mingru", "gates start half open")])
def test_the_monitor_warns_with_advice_that_applies_to_the_cell(name, advice):
    module = rnnlab.make_recurrent(name, 2, 4)
    if name == "indrnn":
        with torch.no_grad():
            module.weight_hh_l0.fill_(0.1)  # a short horizon
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1)
    with pytest.warns(rnnlab.recurrent.monitor.HorizonWarning, match=advice) as caught:
        monitor.model(torch.randn(100, 3, 2))[0][-1].sum().backward()  # the loss on the last step only
        assert monitor.history[0].horizon < 25  # reading the history turns the record into rows (and warnings)
    assert "orthogonal" not in str(caught[0].message), "orthogonal weights do not apply to an element-wise cell"


def test_monitor_and_spectral_radius():
    module = rnnlab.IndRNN(I, H, num_layers=2, recurrent_init_max=0.5)
    monitor = rnnlab.monitor(torch.nn.Sequential(module), every=1, warn=False)
    monitor.model(torch.randn(T, B, I))[0].sum().backward()
    assert len(monitor.history) == 2, "one row per layer"
    radius = rnnlab.diagnostics.spectral_radius(module)  # diag(u): max |u|
    torch.testing.assert_close(radius[:, 0], torch.stack([module.weight_hh_l0.abs().max(), module.weight_hh_l1.abs().max()]))  # fmt: skip
    assert rnnlab.diagnostics.spectral_radius(rnnlab.MinGRU(I, H)).shape == (1, 0), "no recurrent weight"


# ------------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: rnnlab.IndRNN(3, 4, recurrent_max_abs=-1.0), ValueError,
         r"IndRNN: recurrent_max_abs must be a finite number > 0 or None, got -1\.0"),
        (lambda: rnnlab.IndRNN(3, 4, recurrent_max_abs=float("nan")), ValueError, "recurrent_max_abs must be"),
        (lambda: rnnlab.IndRNN(3, 4, recurrent_init_max=0), ValueError,
         "IndRNN: recurrent_init_max must be a finite number > 0, got 0"),
        (lambda: rnnlab.IndRNN.magnitude_bound(5.0, 0), ValueError, "seq_len must be a finite number > 0, got 0"),
        (lambda: rnnlab.MinLSTM(3, 4, normalize="yes"), TypeError, "MinLSTM: normalize must be True or False"),
        (lambda: rnnlab.MinLSTM(3, 4, forget_bias="1"), ValueError, "MinLSTM: forget_bias must be a finite number"),
        (lambda: rnnlab.MinLSTM(3, 4, forget_bias=1.0, bias=False), ValueError, "sets a bias, but bias=False"),
        (lambda: rnnlab.MinGRU(3, 4, scan=1), TypeError, "MinGRU: scan must be True or False, got 1"),
        (lambda: rnnlab.MinGRU(3, 0), ValueError, "MinGRU: hidden_size must be a positive integer, got 0"),
        (lambda: rnnlab.MinGRU(3, 4).to_torch(), ValueError, "cell 'mingru' has no torch.nn equivalent"),
        (lambda: rnnlab.make_recurrent("mingr", 3, 4), ValueError, "unknown cell 'mingr'; choose from: .*mingru"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_errors(build, error, message):
    with pytest.raises(error, match=message) as caught:
        build()
    assert "\n" not in str(caught.value)


def test_minlstm_forget_bias_shifts_the_forget_block_only():
    torch.manual_seed(0)
    plain = rnnlab.MinLSTM(I, H)
    torch.manual_seed(0)
    shifted = rnnlab.MinLSTM(I, H, forget_bias=2.0)
    shift = shifted.bias_ih_l0.detach() - plain.bias_ih_l0.detach()
    torch.testing.assert_close(shift, torch.cat([torch.zeros(H), torch.full((H,), 2.0), torch.zeros(H)]))
