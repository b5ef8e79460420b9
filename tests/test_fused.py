"""torch's fused op for the forwards that record nothing (`rnnlab.recurrent.fused`), tested without a GPU.

Two things are checked. The dispatch decision, case by case (recording, the monitor's recorded and unrecorded
steps, truncation, packed, bidirectional, proj_size, dtypes, the linear RNN, empty batches, every
RNNLAB_ENGINE value), by counting the calls of torch's `_VF` ops — never by timing. And the numbers: with the
fused path forced on the CPU (RNNLAB_ENGINE=fused), outputs, final states and every gradient equal torch.nn's
in float64 for each cell, bidirectional, multi-layer, packed (sorted and not), batch_first and unbatched
input, and a create_graph backward. Where CUDA is present (benchmarks/gpu_check.py runs this file there) the
device-parametrised tests run on it too.

Run: `.venv/bin/pytest tests/test_fused.py`.
"""

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.testing import assert_close

import rnnlab
from rnnlab import diagnostics
from rnnlab.recurrent import fused, modules
from tests.conftest import CELL_KINDS, assert_same_grads, make_pair, weighted_loss

F64 = {"rtol": 1e-10, "atol": 1e-12}
T, B, I, H, P = 5, 3, 3, 4, 2  # noqa: E741 - the sizes as the docs name them; P: proj_size
LENGTHS = torch.tensor([3, 5, 1])  # unsorted on purpose
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
OPS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


@pytest.fixture
def fused_calls(monkeypatch):
    """The names of torch's fused ops called (the `torch._VF` functions torch.nn and `fused.py` call), in order."""
    calls = []
    for name in OPS:
        original = getattr(torch._VF, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch._VF, name, spy)
    return calls


@pytest.fixture
def forced(monkeypatch):
    """RNNLAB_ENGINE=fused: every unrecorded eligible forward takes the fused op, on the CPU too."""
    monkeypatch.setenv("RNNLAB_ENGINE", "fused")


def _x(batch=B, steps=T, device="cpu", dtype=torch.float64, seed=2):
    return torch.randn(steps, batch, I, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def _module(cell="lstm", device="cpu", dtype=torch.float64, **kwargs):
    _, module = make_pair(cell, input_size=I, hidden_size=H, dtype=dtype, **kwargs)
    return module.to(device)


# ------------------------------------------------------------------------------------------------ the decision


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("engine", "on_cpu", "on_cuda"), [
    ("auto", False, True), ("fused", True, True), ("python", False, False), ("cpp", False, False),
])  # fmt: skip
def test_each_engine_choice_decides_the_path_of_a_plain_forward(engine, on_cpu, on_cuda, device, fused_calls, monkeypatch):  # fmt: skip
    if engine == "cpp" and rnnlab.recurrent.native._extension_or_none() is None:
        pytest.skip("no compiled engine on this machine")
    monkeypatch.setenv("RNNLAB_ENGINE", engine)
    _module(device=device)(_x(device=device))
    assert fused_calls == (["lstm"] if (on_cuda if device == "cuda" else on_cpu) else [])


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_each_cell_calls_its_own_fused_op(cell, forced, fused_calls):
    _module(cell)(_x())
    assert fused_calls == [cell]


def test_the_linear_rnn_has_no_fused_op_and_takes_the_engine(forced, fused_calls):
    torch.manual_seed(0)
    module = rnnlab.RNN(I, H, nonlinearity="linear", dtype=torch.float64)
    out, _ = module(_x())
    assert fused_calls == [] and out.shape == (T, B, H)


def test_a_recorded_forward_takes_the_engine_and_records(forced, fused_calls):
    module = _module()
    with rnnlab.record_gradients(module) as recorder:
        out, _ = module(_x())
        out[-1].sum().backward()
    assert fused_calls == []
    assert recorder.norms.shape == (1, T) and bool((recorder.norms > 0).all())
    module(_x())  # outside the block: nothing recorded, the fused op again
    assert fused_calls == ["lstm"]


def test_a_truncated_module_takes_the_engine(forced, fused_calls):
    module = _module()
    module.truncate = 2
    module(_x())
    assert fused_calls == []
    module.truncate = None
    module(_x())
    assert fused_calls == ["lstm"]


@pytest.mark.parametrize(("kwargs", "packed"), [
    ({"bidirectional": True}, False), ({"proj_size": P}, False), ({"proj_size": P, "bidirectional": True}, True),
    ({"num_layers": 2, "dropout": 0.5}, False), ({}, True), ({"bidirectional": True}, True),
])  # fmt: skip
def test_bidirectional_projected_multilayer_and_packed_forwards_take_the_fused_op(kwargs, packed, forced, fused_calls):
    module = _module(**kwargs)
    x = _x()
    module(pack_padded_sequence(x, LENGTHS, enforce_sorted=False) if packed else x)
    assert fused_calls == ["lstm"]


def test_a_recorded_packed_forward_takes_the_engine(forced, fused_calls):
    module = _module(bidirectional=True)
    with rnnlab.record_gradients(module) as recorder:
        out, _ = module(pack_padded_sequence(_x(), LENGTHS, enforce_sorted=False))
        out.data.sum().backward()
    assert fused_calls == [] and recorder.last.reverse is not None


def test_an_empty_batch_takes_the_engine_and_returns_what_torch_nn_returns(forced, fused_calls):
    reference, module = make_pair("gru", input_size=I, hidden_size=H)
    x = _x(batch=0)
    out, h_n = module(x)
    assert fused_calls == []
    out_ref, h_ref = reference(x)
    assert out.shape == out_ref.shape and h_n.shape == h_ref.shape


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_dtypes_the_fused_op_computes_take_it(dtype, device, forced, fused_calls):
    """On CUDA every float dtype (cuDNN's numbers, as torch.nn); on the CPU float16/bfloat16 keep the engine,
    which computes them in float32 (torch's CPU op would compute every step in half precision)."""
    module = _module(dtype=dtype, device=device)
    out, _ = module(_x(dtype=dtype, device=device))
    assert out.dtype == dtype
    half = dtype in (torch.float16, torch.bfloat16)
    assert fused_calls == ([] if half and device == "cpu" else ["lstm"])


@pytest.mark.parametrize(("choice", "device", "dtype", "expected"), [
    ("auto", "cuda", torch.float32, True),
    ("auto", "cuda", torch.float16, True),
    ("auto", "cuda", torch.bfloat16, True),
    ("auto", "cuda", torch.float64, True),
    ("auto", "cpu", torch.float32, False),
    ("fused", "cpu", torch.float32, True),
    ("fused", "cpu", torch.float64, True),
    ("fused", "cpu", torch.float16, False),
    ("fused", "cpu", torch.bfloat16, False),
    ("fused", "cuda", torch.bfloat16, True),
    ("cpp", "cuda", torch.float32, False),
    ("python", "cuda", torch.float32, False),
])  # fmt: skip
def test_the_device_part_of_the_rule_for_devices_this_machine_may_lack(choice, device, dtype, expected):
    assert fused.device_takes_fused(choice, torch.device(device), dtype) is expected


def test_an_invalid_engine_choice_is_a_one_line_error_on_every_forward(fused_calls, monkeypatch):
    module = _module()
    monkeypatch.setenv("RNNLAB_ENGINE", "gpu")
    with pytest.raises(ValueError, match=r"^RNNLAB_ENGINE='gpu' is not valid; choose from: auto, cpp, python, fused$"):
        module(_x())
    with pytest.raises(ValueError, match="RNNLAB_ENGINE"), rnnlab.record_gradients(module):
        module(_x())
    assert fused_calls == []


class _Tagger(nn.Module):
    """A two-layer torch.nn LSTM and a readout of its last step, as a user's model."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(I, H, num_layers=2, dtype=torch.float64)
        self.head = nn.Linear(H, 1, dtype=torch.float64)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[-1])


def _monitored_training(engine, fused_calls, monkeypatch, steps=7, every=3):
    """`steps` SGD updates of `_Tagger` under `rnnlab.monitor(every=…)`; → (monitor rows, the fused calls of
    each step)."""
    monkeypatch.setenv("RNNLAB_ENGINE", engine)
    torch.manual_seed(0)
    model = _Tagger()
    monitor = rnnlab.monitor(model, every=every, warn=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(4)
    per_step = []
    for _ in range(steps):
        before = len(fused_calls)
        x = torch.randn(T, B, I, generator=gen, dtype=torch.float64)
        loss = (model(x) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        per_step.append(len(fused_calls) - before)
    monitor.close()
    return monitor.history, per_step


def test_the_monitor_records_as_before_and_its_unrecorded_steps_take_the_fused_op(fused_calls, monkeypatch):
    rows_engine, calls_engine = _monitored_training("auto", fused_calls, monkeypatch)
    rows_fused, calls_fused = _monitored_training("fused", fused_calls, monkeypatch)
    assert calls_engine == [0] * 7  # on the CPU by default: the engine throughout
    assert calls_fused == [0, 1, 1, 0, 1, 1, 0]  # every 3rd step recorded by the engine, the rest fused
    assert [(r.step, r.module, r.layer) for r in rows_fused] == [(s, "rnn", k) for s in (0, 3, 6) for k in (0, 1)]
    assert [r.as_dict() for r in rows_fused] == [r.as_dict() for r in rows_engine]
    for a, b in zip(rows_fused, rows_engine, strict=True):
        # The weights at steps 3 and 6 came through fused and engine updates: equal to float64 rounding.
        assert_close(torch.tensor(a.profile), torch.tensor(b.profile), rtol=1e-9, atol=0)


def test_diagnostics_take_the_engine_and_give_the_same_flow(fused_calls, monkeypatch):
    flows = {}
    for engine in ("auto", "fused"):
        monkeypatch.setenv("RNNLAB_ENGINE", engine)
        flows[engine] = diagnostics.gradient_flow(_module("gru"), _x(), seed=1)
    assert fused_calls == []
    assert_close(flows["fused"].norms, flows["auto"].norms, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ parity


def _states(cell, rows, batch, device, state_size=H):
    gen = torch.Generator().manual_seed(3)
    shape_h = (rows, batch, state_size) if batch else (rows, state_size)
    shape_c = (rows, batch, H) if batch else (rows, H)
    states = [torch.randn(shape_h, generator=gen, dtype=torch.float64)]
    if cell == "lstm":
        states.append(torch.randn(shape_c, generator=gen, dtype=torch.float64))
    return [s.to(device) for s in states]


def _run(module, x, states, lengths=None, enforce_sorted=False):
    """Forward with every input and initial state a leaf, a weighted loss on everything, backward →
    ([output, *final states], leaves)."""
    leaves = [x.clone().requires_grad_()] + [s.clone().requires_grad_() for s in states]
    inp = leaves[0]
    if lengths is not None:
        inp = pack_padded_sequence(inp, lengths, batch_first=module.batch_first, enforce_sorted=enforce_sorted)
    hx = tuple(leaves[1:]) if len(leaves) == 3 else leaves[1]
    out, finals = module(inp, hx)
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    out = out.data if lengths is not None else out
    weighted_loss(out, *finals).backward()
    return [out, *finals], leaves


def _assert_parity(reference, module, x, states, **kwargs):
    got, leaves = _run(module, x, states, **kwargs)
    want, leaves_ref = _run(reference, x, states, **kwargs)
    for a, b in zip(got, want, strict=True):
        assert_close(a, b, **F64)
    assert_same_grads(reference, module, leaves_ref, leaves, **F64)


LAYOUTS = {
    "one layer": ({}, False),
    "bidirectional": ({"bidirectional": True}, False),
    "two layers, dropout, eval": ({"num_layers": 2, "dropout": 0.5}, False),
    "batch_first, bidirectional, two layers": ({"batch_first": True, "bidirectional": True, "num_layers": 2}, False),
    "unbatched": ({}, True),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_the_fused_path_matches_torch_nn_float64(cell, layout, device, forced, fused_calls):
    kwargs, unbatched = LAYOUTS[layout]
    reference, module = make_pair(cell, input_size=I, hidden_size=H, **kwargs)
    reference, module = reference.to(device).eval(), module.to(device).eval()
    rows = module.num_layers * module.num_directions
    x = _x(device=device)
    if unbatched:
        x = x[:, 0]
    elif module.batch_first:
        x = x.transpose(0, 1).contiguous()
    _assert_parity(reference, module, x, _states(cell, rows, 0 if unbatched else B, device))
    assert fused_calls == [cell, cell]  # rnnlab's forward, then torch.nn's


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("packed", [False, True])
def test_the_fused_path_matches_torch_nn_with_a_projection(packed, bidirectional, device, forced, fused_calls):
    reference, module = make_pair("lstm", input_size=I, hidden_size=H, proj_size=P, num_layers=2,
                                  bidirectional=bidirectional)  # fmt: skip
    reference, module = reference.to(device), module.to(device)
    rows = module.num_layers * module.num_directions
    lengths = LENGTHS if packed else None
    _assert_parity(
        reference, module, _x(device=device), _states("lstm", rows, B, device, state_size=P), lengths=lengths
    )
    assert fused_calls == ["lstm", "lstm"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("enforce_sorted", [False, True])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_packed_sequences_match_torch_nn_sorted_or_not(cell, bidirectional, enforce_sorted, device, forced, fused_calls):  # fmt: skip
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=2, bidirectional=bidirectional)
    reference, module = reference.to(device), module.to(device)
    lengths = LENGTHS.sort(descending=True).values if enforce_sorted else LENGTHS
    rows = module.num_layers * module.num_directions
    kwargs = {"lengths": lengths, "enforce_sorted": enforce_sorted}
    _assert_parity(reference, module, _x(device=device), _states(cell, rows, B, device), **kwargs)
    assert fused_calls == [cell, cell]


@pytest.mark.parametrize("device", DEVICES)
def test_packed_batch_first_without_initial_state_matches_torch_nn(device, forced):
    reference, module = make_pair("gru", input_size=I, hidden_size=H, batch_first=True)
    reference, module = reference.to(device), module.to(device)
    x = _x(device=device).transpose(0, 1).contiguous()  # (B, T, I)
    packed = pack_padded_sequence(x, LENGTHS, batch_first=True, enforce_sorted=False)
    (out, h_n), (out_ref, h_ref) = module(packed), reference(packed)
    assert_close(out.data, out_ref.data, **F64)
    assert_close(h_n, h_ref, **F64)
    assert torch.equal(out.unsorted_indices, out_ref.unsorted_indices)


@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_dropout_in_training_draws_what_torch_nn_draws(cell, forced):
    """Training mode with dropout between layers: the same op with the same generator state draws the same
    masks, so the numbers are torch.nn's exactly."""
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=3, dropout=0.5)
    results = []
    for m in (module, reference):
        torch.manual_seed(11)
        results.append(_run(m, _x(), _states(cell, 3, B, "cpu")))
    (got, leaves), (want, leaves_ref) = results
    for a, b in zip(got, want, strict=True):
        assert_close(a, b, **F64)
    assert_same_grads(reference, module, leaves_ref, leaves, **F64)


@pytest.mark.parametrize("device", DEVICES)
def test_an_eval_mode_backward_works_and_matches_torch_nn_on_the_cpu(device, forced, fused_calls):
    """cuDNN refuses the backward of a forward run in eval mode (torch.nn on a GPU raises); the fused path
    asks for a training run without dropout when autograd records, so an input gradient in eval mode works
    and equals torch.nn's computed on the CPU."""
    reference, module = make_pair("lstm", input_size=I, hidden_size=H, num_layers=2, dropout=0.5)
    reference.eval()
    module = module.to(device).eval()
    x = _x()
    got, leaves = _run(module, x.to(device), _states("lstm", 2, B, device))
    want, leaves_ref = _run(reference, x, _states("lstm", 2, B, "cpu"))
    for a, b in zip(got, want, strict=True):
        assert_close(a.cpu(), b, **F64)
    for a, b in zip(leaves, leaves_ref, strict=True):
        assert_close(a.grad.cpu(), b.grad, **F64)
    assert fused_calls[0] == "lstm"


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cell", list(CELL_KINDS))
def test_a_gradient_penalty_on_the_fused_path_is_torch_nns(cell, device, forced, fused_calls):
    """A backward with create_graph=True: on the CPU the fused op's graph is differentiable and the second
    derivative equals torch.nn's; with cuDNN both refuse it alike (torch.nn's limit, documented in fused.py)."""
    reference, module = make_pair(cell, input_size=I, hidden_size=H, num_layers=2)
    reference, module = reference.to(device), module.to(device)

    def penalty(m):
        x = _x(device=device).requires_grad_()
        out, _ = m(x)
        (grad_x,) = torch.autograd.grad(weighted_loss(out), x, create_graph=True)
        (grad_x**2).sum().backward()

    try:
        penalty(reference)
    except RuntimeError as error:  # cuDNN: no double backward
        with pytest.raises(type(error)):
            penalty(module)
        return
    penalty(module)
    assert_same_grads(reference, module, **F64)
    assert fused_calls == [cell, cell]


def test_record_gradients_records_the_same_under_either_setting(monkeypatch):
    records = {}
    for engine in ("auto", "fused"):
        monkeypatch.setenv("RNNLAB_ENGINE", engine)
        module = _module("lstm", num_layers=2, bidirectional=True)
        with rnnlab.record_gradients(module, per_sample=True) as recorder:
            out, _ = module(_x())
            weighted_loss(out).backward()
        records[engine] = recorder.last
    assert_close(records["fused"].per_sample, records["auto"].per_sample, rtol=0, atol=0)
    assert_close(records["fused"].reverse.per_sample, records["auto"].reverse.per_sample, rtol=0, atol=0)


# ------------------------------------------------------------------------------------------------ flatten_parameters


def test_flatten_parameters_is_a_no_op_on_the_cpu_and_runs_after_every_move(monkeypatch):
    module = _module("gru", num_layers=2)
    pointers = [w.data_ptr() for w in module._flat_weights]
    assert module.flatten_parameters() is None
    assert [w.data_ptr() for w in module._flat_weights] == pointers  # nothing moved
    assert all(w is getattr(module, n) for w, n in zip(module._flat_weights, module._flat_weights_names, strict=True))
    flattened = []
    monkeypatch.setattr(modules, "flatten_weights", flattened.append)
    module.float()  # torch.nn flattens after every _apply (.to, .cuda, .half, …): so does rnnlab
    assert flattened == [module]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="cuDNN's flat weight buffer needs CUDA")
@pytest.mark.parametrize("kwargs", [{}, {"proj_size": P, "bidirectional": True, "num_layers": 2}])
def test_on_cuda_the_weights_share_one_buffer_and_cudnn_does_not_warn(kwargs, forced):
    module = _module("lstm", dtype=torch.float32, **kwargs).cuda()
    if torch.backends.cudnn.is_available():
        storages = {w.untyped_storage().data_ptr() for w in module._flat_weights}
        assert len(storages) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "RNN module weights are not part of single contiguous chunk of memory"
        out, _ = module(_x(dtype=torch.float32, device="cuda"))
        out.sum().backward()
