"""The compiled engine's own numerics (`_ext/bptt.cpp`), beyond the loop-level parity in test_engine.py:

- the float32 tanh and sigmoid it evaluates (cheaper than Sleef's) against float64 torch, over [−12, 12] and
  at tiny values, where a relative error would show;
- its GEMM (oneDNN for large float32 products, else ATen) against a float64 product, at shapes on both sides
  of the oneDNN threshold, with transposed operands (accumulation is covered by the LSTM below);
- a float32 LSTM/GRU large enough that every per-step product goes to oneDNN, against torch.nn, with the
  GEMM forced both ways;
- the choice of the per-step product's path at its thresholds, and every path (the BLAS, the split, oneDNN and
  oneDNN's micro-kernel on reordered weights) against the Python loop.
Skipped where no C++ compiler exists (the engine then runs its Python loop). Run: `.venv/bin/pytest tests/test_native.py`.
"""

from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from rnnlab.recurrent import native
from tests.conftest import make_pair, on_both_loops


@pytest.fixture
def ext():
    module = native.extension()
    if module is None:
        pytest.skip("the compiled engine is not in use here")
    yield module
    module.set_gemm(native.gemm_choice())
    module.set_backward_split("auto")
    module.set_brgemm("auto")


def _grid() -> torch.Tensor:
    dense = torch.linspace(-12, 12, 240_001)
    tiny = torch.tensor([1e-30, -1e-20, 1e-10, -3e-7, 1e-4, -0.0312, 0.1249, 0.1251])
    return torch.cat([dense, tiny])


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.double() - want).abs() / want.abs().clamp_min(1e-300)).max().item()


def test_float32_tanh_is_accurate_to_a_few_ulp_of_1e_6(ext):
    x = _grid()
    batch, hidden = 241, 1000
    x_pre = torch.zeros(batch * hidden)
    x_pre[: x.numel()] = x
    x_pre = x_pre.view(1, batch, hidden)
    h0, w_hh = torch.zeros(batch, hidden), torch.zeros(hidden, hidden)
    hs, *_ = ext.forward(0, x_pre.clone(), h0, h0, w_hh, None, None)  # rnn_tanh: h1 = tanh(x_pre)
    got = hs[1].reshape(-1)[: x.numel()]
    want = torch.tanh(x.double())
    assert _relative_error(got, want) < 2e-6
    assert (got.double() - want).abs().max().item() < 2e-7
    assert (got.sign() == x.sign()).all()  # odd, and tiny values are not rounded to zero


def test_float32_sigmoid_of_the_lstm_gates_is_accurate(ext):
    x = _grid()
    hidden = 1000
    batch = (x.numel() + hidden - 1) // hidden
    pre = torch.zeros(batch * hidden)
    pre[: x.numel()] = x
    x_pre = torch.zeros(1, batch, 4 * hidden)
    x_pre[0, :, :hidden] = pre.view(batch, hidden)  # the input gate block
    h0, w_hh = torch.zeros(batch, hidden), torch.zeros(4 * hidden, hidden)
    _, _, acts, _ = ext.forward(3, x_pre, h0, h0, w_hh, None, None)
    got = acts[0, :, :hidden].reshape(-1)[: x.numel()]
    assert _relative_error(got, torch.sigmoid(x.double())) < 3e-6


@pytest.mark.parametrize("mode", ["auto", "onednn", "aten"])
@pytest.mark.parametrize(
    ("m", "k", "n", "transpose_a", "transpose_b"),
    [
        (64, 128, 512, False, True),  # below the oneDNN threshold: ATen either way
        (64, 512, 2048, False, True),  # a per-step product at H=512
        (64, 2048, 512, False, False),  # its backward
        (3000, 40, 700, False, False),  # an input projection
        (701, 3000, 300, True, False),  # a weight gradient (a transposed view of a contiguous tensor)
    ],
)
def test_gemm_matches_a_float64_product(ext, mode, m, k, n, transpose_a, transpose_b):
    ext.set_gemm(mode)
    gen = torch.Generator().manual_seed(m + k + n)
    a = torch.randn(k, m, generator=gen).t() if transpose_a else torch.randn(m, k, generator=gen)
    b = torch.randn(n, k, generator=gen).t() if transpose_b else torch.randn(k, n, generator=gen)
    got = ext.matmul(a, b, False)
    want = a.double() @ b.double()
    scale = a.double().abs() @ b.double().abs() + 1
    assert got.shape == (m, n) and got.is_contiguous()
    assert ((got.double() - want).abs() / scale).max().item() < 1e-6


def test_gemm_backend_can_be_chosen_and_refuses_unknown_modes(ext):
    ext.set_gemm("aten")
    assert ext.gemm_backend() == "aten"
    ext.set_gemm("auto")
    assert ext.gemm_backend() in ("onednn", "aten")
    with pytest.raises(RuntimeError, match="gemm mode must be 'auto', 'onednn' or 'aten'"):
        ext.set_gemm("mkl")


def test_auto_takes_onednn_on_amd_cpus_only(ext):
    """oneDNN's GEMM was faster than MKL on AMD EPYC and slower on an Intel Xeon (bptt.cpp): 'auto' follows the
    CPU's vendor, read by CPUID and checked here against the kernel's /proc/cpuinfo."""
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    if info.exists():
        vendors = {
            line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if line.startswith("vendor_id")
        }
        assert vendors == {ext.cpu_vendor()}
    ext.set_gemm("onednn")
    onednn_here = ext.gemm_backend() == "onednn"  # false only where PyTorch lacks it or it refuses the CPU
    ext.set_gemm("auto")
    assert ext.gemm_backend() == ("onednn" if onednn_here and ext.cpu_vendor() == "AuthenticAMD" else "aten")


def test_bad_gemm_environment_variable_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RNNLAB_GEMM", "fast")
    with pytest.raises(ValueError, match=r"RNNLAB_GEMM='fast' is not valid; choose from: auto, onednn, aten"):
        native.extension()


@pytest.mark.parametrize("mode", ["auto", "onednn", "aten"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_float32_at_onednn_sizes_matches_torch_nn(ext, cell, mode):
    """H=256, B=64: every per-step product (64·256·G·256 multiply-adds) is above the oneDNN threshold."""
    ext.set_gemm(mode)
    ext.set_brgemm("off")  # which would take the per-step products on AMD CPUs
    reference, module = make_pair(cell, input_size=48, hidden_size=256, dtype=torch.float32, spread=None)
    x = torch.randn(12, 64, 48, generator=torch.Generator().manual_seed(5))
    readout = torch.randn(256, generator=torch.Generator().manual_seed(6))
    outs = []
    for net in (reference, module):
        xi = x.clone().requires_grad_()
        out, _ = net(xi)
        (out @ readout).square().mean().backward()
        outs.append((out.detach(), xi.grad, [p.grad for p in net.parameters()]))
    (out_ref, dx_ref, grads_ref), (out_new, dx_new, grads_new) = outs
    assert_close(out_new, out_ref, rtol=1e-4, atol=1e-5)
    assert_close(dx_new, dx_ref, rtol=1e-4, atol=1e-4 * dx_ref.abs().max().item())
    for g_new, g_ref in zip(grads_new, grads_ref, strict=True):
        assert_close(g_new, g_ref, rtol=1e-4, atol=1e-4 * g_ref.abs().max().item())


def _split() -> str:
    """The split path's name where it is chosen: it needs more than one thread."""
    return "split" if torch.get_num_threads() > 1 else "blas/1 thread"


def test_the_per_step_product_path_switches_at_its_thresholds(ext):
    """LSTM, 4 gates: work per step = B·H·4H multiply-adds. Batches up to 16 split the columns over the
    threads from 2^16 on (B=16, H=32), below it one MKL thread (B=15); larger batches take one MKL thread below
    2^19 (B=31, H=64), the library's threads from 2^19 on (B=32); float32 goes to oneDNN from 2^23 on (B=32,
    H=256) where oneDNN is the GEMM, float64 never. (With oneDNN's micro-kernel off: see the next test.)"""
    f32, f64 = torch.float32, torch.float64
    ext.set_brgemm("off")
    assert ext.step_path(f32, 16, 32, 4) == _split()
    assert ext.step_path(f32, 15, 32, 4) == "blas/1 thread"
    assert ext.step_path(f32, 1, 128, 4) == _split()
    assert ext.step_path(f32, 1, 127, 4) == "blas/1 thread"
    assert ext.step_path(f32, 17, 64, 4) == "blas/1 thread"
    assert ext.step_path(f32, 31, 64, 4) == "blas/1 thread"
    assert ext.step_path(f32, 32, 64, 4) == "blas"
    assert ext.step_path(f32, 31, 256, 4) == "blas"
    ext.set_gemm("onednn")  # as "auto" on AMD CPUs
    assert ext.step_path(f32, 32, 256, 4) == ("onednn" if ext.gemm_backend() == "onednn" else "blas")
    assert ext.step_path(f64, 32, 256, 4) == "blas"
    ext.set_gemm("aten")  # oneDNN switched off: the same product stays with the BLAS
    assert ext.step_path(f32, 32, 256, 4) == "blas"
    ext.set_step_split(0)  # the split switched off (for benchmarks)
    assert ext.step_path(f32, 1, 128, 4) == "blas/1 thread"
    ext.set_step_split(16)


def test_the_backward_splits_on_amd_cpus_only(ext):
    """The backward's split was measured faster on an AMD EPYC and slower on an Intel Xeon (bptt.cpp)."""
    if torch.get_num_threads() < 2:
        pytest.skip("the split path needs two or more intra-op threads")
    f32 = torch.float32
    ext.set_brgemm("off")
    for batch, hidden, unsplit in ((1, 256, "blas/1 thread"), (1, 512, "blas"), (16, 128, "blas")):
        backward = ext.step_path(f32, batch, hidden, 4, forward=False)
        assert ext.step_path(f32, batch, hidden, 4) == _split()
        assert backward == (_split() if ext.cpu_vendor() == "AuthenticAMD" else unsplit)
        ext.set_backward_split("on")
        assert ext.step_path(f32, batch, hidden, 4, forward=False) == _split()
        ext.set_backward_split("off")
        assert ext.step_path(f32, batch, hidden, 4, forward=False) == unsplit
        ext.set_backward_split("auto")
    with pytest.raises(RuntimeError, match="backward split mode must be 'auto', 'on' or 'off'"):
        ext.set_backward_split("yes")


def test_the_micro_kernel_takes_float32_loops_of_8_steps_on_amd_cpus(ext):
    """oneDNN's micro-kernel on reordered weights (bptt.cpp, kBrgemm): float32 only, loops of 8 steps or more
    (the reordering must pay for itself), one thread below 2^18 multiply-adds a step; "auto" on AMD CPUs only,
    where it was measured."""
    if not torch.backends.mkldnn.enabled:
        pytest.skip("oneDNN is switched off in this process")
    f32, f64 = torch.float32, torch.float64
    ext.set_brgemm("on")
    if ext.step_path(f32, 16, 64, 4, steps=8) == "blas/1 thread":
        pytest.skip("this CPU has no AVX2 and FMA: the micro-kernel is never chosen")
    threaded = "brgemm" if torch.get_num_threads() > 1 else "brgemm/1 thread"
    assert ext.step_path(f32, 1, 256, 4, steps=8) == threaded  # 2^18 multiply-adds
    assert ext.step_path(f32, 1, 255, 4, steps=8) == "brgemm/1 thread"
    assert ext.step_path(f32, 1, 256, 4, forward=False, steps=8) == threaded
    assert ext.step_path(f32, 256, 1024, 4, steps=8) == threaded  # every size, however large
    assert ext.step_path(f32, 1, 256, 4, steps=7) == _split()  # too short a loop: the other paths
    assert ext.step_path(f64, 1, 256, 4, steps=100) == _split()  # float32 only
    ext.set_brgemm("off")
    assert ext.step_path(f32, 1, 256, 4, steps=100) == _split()
    ext.set_brgemm("auto")
    amd = ext.cpu_vendor() == "AuthenticAMD"
    assert ext.step_path(f32, 1, 256, 4, steps=100) == (threaded if amd else _split())
    with pytest.raises(RuntimeError, match="brgemm mode must be 'auto', 'on' or 'off'"):
        ext.set_brgemm("fast")


@pytest.mark.parametrize(
    ("cell", "batch", "hidden", "path"),
    [
        ("lstm", 20, 40, "brgemm/1 thread"),  # the copy task's shape; backward: a 32-column panel and an 8-column one
        ("gru", 16, 80, "brgemm"),  # forward: 7 full panels and a 16-column one, split over the threads
        ("lstm", 256, 32, "brgemm"),  # backward: one panel, the rows split over the threads instead
        ("rnn_tanh", 3, 300, "brgemm"),
        ("lstm", 1, 16, "blas/1 thread"),
        ("lstm", 1, 160, "split"),
        ("gru", 16, 72, "split"),
        ("rnn_tanh", 4, 200, "split"),
        ("gru", 3, 24, "blas/1 thread"),
        ("rnn_tanh", 2, 40, "blas/1 thread"),
        ("lstm", 32, 64, "blas"),
        ("gru", 48, 64, "blas"),
        ("rnn_tanh", 128, 64, "blas"),
        ("lstm", 32, 256, "onednn"),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_every_per_step_product_path_matches_the_python_loop(ext, cell, batch, hidden, path, dtype, monkeypatch):
    """The compiled loop against its slow reference, recording on, at shapes where each path is chosen."""
    gates = {"lstm": 4, "gru": 3, "rnn_tanh": 1}[cell]
    steps = 9
    micro_kernel = path.startswith("brgemm")
    ext.set_brgemm("on" if micro_kernel else "off")
    if micro_kernel and not torch.backends.mkldnn.enabled:
        pytest.skip("oneDNN is switched off in this process")
    if path == "onednn":
        ext.set_gemm("onednn")  # "auto" takes it on AMD CPUs only
        path = path if ext.gemm_backend() == "onednn" else "blas"
    expected = path if dtype == torch.float32 or path != "onednn" else "blas"
    expected = _split() if expected == "split" else expected
    if expected == "brgemm" and torch.get_num_threads() == 1:
        expected = "brgemm/1 thread"
    got_path = ext.step_path(dtype, batch, hidden, gates, steps=steps)
    if micro_kernel and dtype == torch.float64:
        assert not got_path.startswith("brgemm")  # float32 only
    else:
        assert got_path == expected
    _, module = make_pair(cell, input_size=5, hidden_size=hidden, dtype=dtype, spread=None)
    x = torch.randn(steps, batch, 5, dtype=dtype, generator=torch.Generator().manual_seed(3))
    weights = torch.linspace(-1, 1, hidden, dtype=dtype)
    tol = {"rtol": 1e-12, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    # The backward's split runs on AMD CPUs only: both of its settings are checked on every machine.
    for backward_split in ("on", "off") if path == "split" else ("auto",):
        ext.set_backward_split(backward_split)
        results = on_both_loops(module, x, lambda out: (out * weights).square().sum(), monkeypatch)
        for got, want in zip(*results, strict=True):
            assert_close(got, want.to(got.dtype), **tol)


def _lstm_pair():
    return make_pair("lstm", input_size=8, hidden_size=128, dtype=torch.float32, spread=None)


def test_scratch_buffers_held_by_a_live_graph_are_not_reused(ext):
    """Two forward passes whose graphs are both alive, backward in the other order: each must still see its
    own saved states (buffers ≥ 1 MB come from the reuse pool)."""
    reference, module = _lstm_pair()
    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(20, 64, 8, generator=gen) for _ in range(2)]
    losses = [module(x)[0].square().mean() for x in xs]
    assert ext.scratch_bytes() > 0
    grads = []
    for loss in reversed(losses):
        module.zero_grad()
        loss.backward()
        grads.append([p.grad.clone() for p in module.parameters()])
    for x, got in zip(reversed(xs), grads, strict=True):
        reference.zero_grad()
        reference(x)[0].square().mean().backward()
        for g, p in zip(got, reference.parameters(), strict=True):
            assert_close(g, p.grad, rtol=1e-4, atol=1e-6)


def test_scratch_pool_is_reused_across_steps_and_can_be_released(ext):
    _, module = _lstm_pair()
    x = torch.randn(20, 64, 8)
    ext.release_scratch()
    held = []
    for _ in range(4):
        module.zero_grad()
        module(x)[0].square().mean().backward()
        held.append(ext.scratch_bytes())
    assert held[0] > 0 and held == [held[0]] * 4  # the same buffers every step, not new ones
    assert ext.release_scratch() == held[0]
    assert ext.scratch_bytes() == 0


def test_release_buffers_is_public_and_reports_bytes(ext):
    from rnnlab.engine import release_buffers

    _, module = _lstm_pair()
    module(torch.randn(20, 64, 8))[0].sum().backward()
    assert release_buffers() > 0
    assert release_buffers() == 0


def test_buffers_first_used_under_inference_mode_serve_training_afterwards(ext):
    """Found in review: a buffer created inside torch.inference_mode was an inference tensor, and reusing it
    for the next training step failed ('Inplace update to inference tensor outside InferenceMode')."""
    reference, module = _lstm_pair()
    x = torch.randn(20, 64, 8)
    ext.release_scratch()
    with torch.inference_mode():
        first, _ = module(x)
    out, _ = module(x)
    out.square().mean().backward()
    with torch.inference_mode():
        again, _ = module(x)
    assert first.is_inference() and again.is_inference()
    assert_close(again, first)
    reference(x)[0].square().mean().backward()
    for p_new, p_ref in zip(module.parameters(), reference.parameters(), strict=True):
        assert_close(p_new.grad, p_ref.grad, rtol=1e-4, atol=1e-6)


def test_the_build_is_named_by_everything_it_depends_on(tmp_path, monkeypatch):
    """Two checkouts with different sources must not rebuild each other's copy; equal ones share it."""
    flags = ["-O3", "-fopenmp"]
    name = native.build_name(flags)
    assert name == native.build_name(list(flags)), "same source, torch, python and flags: same build"
    assert name != native.build_name([*flags, "-mavx2"])
    changed = tmp_path / "bptt.cpp"
    changed.write_text(native.SOURCE.read_text() + "\n// another checkout's edit\n")
    monkeypatch.setattr(native, "SOURCE", changed)
    assert native.build_name(flags) != name


def test_a_lock_left_by_a_killed_build_does_not_block_the_next_start(tmp_path):
    """torch's build lock, left behind by a process killed mid-build, is removed under rnnlab's own lock
    (which dies with its process) instead of being waited on."""
    import subprocess
    import sys

    from torch.utils import cpp_extension

    if native.backend() != "cpp":
        pytest.skip("the compiled engine is not in use here")
    code = "from rnnlab.recurrent import native; print(native.backend())"
    build_dir = Path(cpp_extension._get_build_directory(native.build_name(native.build_flags()), verbose=False))
    (build_dir / "lock").write_text("")  # as a killed build leaves it
    # torch alone would wait for the lock file to disappear, forever: the timeout is the failure.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "cpp", done.stderr
    assert not (build_dir / "lock").exists()
