"""The package's names: one meaning per verb, the same kind of attribute for the same concept, module imports
that work, and the renamed names still served with a DeprecationWarning.
Run: `.venv/bin/pytest tests/test_names.py`.
"""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from torch import nn

import rnnlab


def test_init_and_diagnostics_import_as_modules():
    init = importlib.import_module("rnnlab.init")
    diagnostics = importlib.import_module("rnnlab.diagnostics")
    assert init is rnnlab.init is rnnlab.recurrent.init
    assert diagnostics is rnnlab.diagnostics is rnnlab.recurrent.diagnostics
    import rnnlab.diagnostics as imported  # the statement a PyTorch user writes

    assert imported.gradient_flow is rnnlab.gradient_flow


def test_the_engine_switches_have_their_own_namespace():
    import rnnlab.engine as engine

    assert {"flush_denormals", "denormals_flushed", "release_buffers", "backend"} <= set(engine.__all__)
    with engine.flush_denormals():
        assert engine.denormals_flushed()
    assert engine.backend() in ("cpp", "python") and engine.release_buffers() >= 0


@pytest.mark.parametrize(
    ("old", "new"),
    [("flush_denormals", rnnlab.engine.flush_denormals), ("release_buffers", rnnlab.engine.release_buffers)],
)
def test_the_old_top_level_switches_still_work_with_a_warning(old, new):
    with pytest.warns(DeprecationWarning, match=f"rnnlab.{old} is now rnnlab.engine.{old}"):
        assert getattr(rnnlab, old) is new


def test_to_torch_copies_and_convert_back_converts_in_place():
    module = rnnlab.LSTM(2, 3)
    copy = module.to_torch()
    assert isinstance(copy, nn.LSTM) and isinstance(module, rnnlab.LSTM), "the method copies"
    model = nn.Sequential(rnnlab.LSTM(2, 3))
    assert rnnlab.convert_back(model) is model and isinstance(model[0], nn.LSTM), "the function converts in place"
    model = nn.Sequential(rnnlab.GRU(2, 3))
    with pytest.warns(DeprecationWarning, match=r"rnnlab.to_torch is now rnnlab.convert_back"):
        old = rnnlab.to_torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert old(model) is model and isinstance(model[0], nn.GRU)


def test_the_record_names_say_their_roles():
    recorder_module = importlib.import_module("rnnlab.recurrent.recorder")
    with rnnlab.record_gradients(rnnlab.GRU(2, 3)) as recorder:
        rnnlab.GRU(2, 3)  # the verb records; the recorder collects; each backward leaves a BackwardRecord
    assert isinstance(recorder, rnnlab.GradientRecorder) and recorder.records == []
    with pytest.warns(DeprecationWarning, match="GradientRecord is now"):
        assert recorder_module.GradientRecord is rnnlab.BackwardRecord
    with pytest.warns(DeprecationWarning, match="GradientRecord is now"):
        assert importlib.import_module("rnnlab.recurrent.recording").GradientRecord is rnnlab.BackwardRecord


def test_horizon_is_a_value_everywhere_and_horizon_at_takes_arguments():
    torch.manual_seed(0)
    model = nn.Sequential(nn.LSTM(2, 4, num_layers=2))
    monitor = rnnlab.monitor(model, every=1, warn=False)
    assert monitor.horizon is None, "nothing recorded yet"
    model(torch.randn(12, 3, 2))[0][-1].sum().backward()
    row = monitor.history[0]
    assert monitor.horizon == row.horizon == monitor.horizon_at("0", 0, "forward")
    assert monitor.horizon_at("0", 1) == monitor.history[1].horizon
    flow = rnnlab.gradient_flow(model[0], torch.randn(12, 3, 2))
    assert isinstance(flow.horizon, int) and flow.horizon == flow.horizon_at()


def test_monitor_takes_the_hooks_argument_of_the_class():
    torch.manual_seed(0)
    model = nn.GRU(2, 3)
    monitor = rnnlab.monitor(model, every=1, warn=False, hooks=False)
    monitor.model(torch.randn(5, 1, 2))[0].sum().backward()
    assert monitor.history == [], "without hooks only begin_step starts a recorded step"
    monitor.begin_step()
    out = monitor.model(torch.randn(5, 1, 2))[0]
    monitor.end_step()
    out.sum().backward()
    assert len(monitor.history) == 1
