"""A monitor's history saved to rnnlab's results store: one run per recurrent layer, whose flow snapshots are the
history exactly, readable by `rnnlab runs list/show` and consistent for `rnnlab runs check`.
Run: `.venv/bin/pytest tests/test_integrations_store.py`.
"""

import pytest
import torch
from torch import nn

import rnnlab
from rnnlab.cli import main
from rnnlab.integrations.store import save_monitor
from rnnlab.lab.store import Store


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 6, num_layers=2, batch_first=True)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _monitored(steps=3):
    torch.manual_seed(0)
    model = TwoLayers()
    monitor = rnnlab.monitor(model, every=2, warn=False)
    for _ in range(steps):
        model(torch.randn(4, 9, 3)).pow(2).sum().backward()
    return monitor


def test_each_layer_is_a_run_whose_flows_are_the_history(tmp_path):
    monitor = _monitored()
    path = tmp_path / "runs.db"
    ids = save_monitor(monitor, path, name="mine")
    with Store(path) as store:
        runs = [store.run(i) for i in ids]
        assert [r.name for r in runs] == ["mine/rnn/layer_0", "mine/rnn/layer_1"]
        for run, layer in zip(runs, (0, 1), strict=True):
            rows = [r for r in monitor.history if r.layer == layer]
            assert [r.step for r in rows] == [0, 2]
            flows = store.flows(run.id)
            assert [(f["step"], f["horizon"], f["decay_rate"], f["profile"]) for f in flows] == [
                (r.step, r.horizon, r.decay_rate, r.profile) for r in rows
            ]
            assert (run.status, run.steps, run.metric_name, run.final_metric) == (
                "completed",
                3,
                "horizon",
                rows[-1].horizon,
            )
            assert run.config["cell"] == "gru" and run.config["layer"] == layer and run.config["seq_len"] == 9
            assert store.metrics(run.id) == [], "no test metric or loss is invented for a user's loop"
        assert store.check() == []


def test_runs_list_and_show_read_a_monitors_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that rich does not cut the names
    path = tmp_path / "runs.db"
    (first, _) = save_monitor(_monitored(), path)
    assert main(["runs", "list", "--store", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "TwoLayers/rnn/layer_0" in listed and "own loop" in listed
    assert main(["runs", "show", str(first), "--store", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "gru H=6 × 2" in shown and "final horizon" in shown and "horizon (your loss)" in shown


def test_an_empty_history_is_a_clear_error(tmp_path):
    monitor = rnnlab.monitor(TwoLayers(), warn=False)
    with pytest.raises(ValueError, match="recorded nothing yet"):
        save_monitor(monitor, tmp_path / "runs.db")
    assert not (tmp_path / "runs.db").exists(), "nothing is created for nothing to save"
