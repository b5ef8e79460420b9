"""The monitor in a user's own training loop: what it records equals an independent autograd reference on the
user's real loss; the horizon and its warning tell a default LSTM from a chrono one at a lag of 100 or more.
Run: `.venv/bin/pytest tests/test_monitor.py`.
"""

import copy
import warnings

import pytest
import torch
from matplotlib.figure import Figure
from torch import nn

import rnnlab
from rnnlab.recurrent.monitor import HorizonWarning
from tests.reference import unrolled


class LastStep(nn.Module):
    """A user's model: an LSTM among other layers, read at the last step."""

    def __init__(self, hidden=64):
        super().__init__()
        self.rnn = nn.LSTM(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def _train(model, steps, x, y):
    for _ in range(steps):
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        model.zero_grad()


def test_a_default_lstm_is_warned_about_and_chrono_covers_a_lag_of_100():
    x = torch.randn(32, 200, 2, generator=torch.Generator().manual_seed(1))
    y = torch.randn(32, 1, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = LastStep()
    monitor = rnnlab.monitor(model, every=1)
    with pytest.warns(HorizonWarning, match=r"rnn layer 0 sees about \d+ steps back .* sequences are 200 long.*chrono"):
        _train(model, 2, x, y)
    assert [r.horizon for r in monitor.history] == [10, 10], "PyTorch's default LSTM: ~10 steps of 200"
    torch.manual_seed(0)
    model = LastStep()
    monitor = rnnlab.monitor(model, every=1)
    rnnlab.init.apply(model.rnn, "chrono", seed=0, t_max=200)
    _train(model, 2, x, y)  # no warning (warnings are errors in this suite)
    assert all(r.horizon >= 100 for r in monitor.history), [r.horizon for r in monitor.history]


class EveryStep(nn.Module):
    """Two stacked LSTM layers with a loss on every step (padded batches: a mask zeroes the padding)."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(3, 5, num_layers=2)
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.rnn(x)  # (T, B, H)
        return self.head(out)


def test_the_recorded_profile_equals_autograd_on_the_users_real_loss():
    torch.manual_seed(0)
    model = EveryStep().double()
    reference = copy.deepcopy(model)
    x = torch.randn(9, 4, 3, dtype=torch.float64)
    lengths = torch.tensor([9, 7, 4, 9])
    mask = (torch.arange(9)[:, None] < lengths[None, :]).double()  # (T, B): 0 on padding
    x = x * mask[..., None]
    target = torch.randn(9, 4, 2, dtype=torch.float64)

    def loss_of(prediction):
        return ((prediction - target).pow(2).sum(-1) * mask).sum() / mask.sum()

    monitor = rnnlab.monitor(model, every=1, warn=False)
    loss_of(model(x)).backward()
    out, hs, _ = unrolled(reference.rnn, x)
    loss_of(reference.head(out)).backward()
    rows = monitor.history
    assert [(r.module, r.layer) for r in rows] == [("rnn", 0), ("rnn", 1)]
    for row, states in zip(rows, hs, strict=True):
        expected = torch.stack([h.grad.norm(dim=-1).mean() for h in states]).flip(0)  # by lag
        torch.testing.assert_close(torch.tensor(row.profile, dtype=torch.float64), expected, rtol=1e-10, atol=1e-14)


def test_only_every_nth_training_forward_is_recorded():
    torch.manual_seed(0)
    model = EveryStep()
    monitor = rnnlab.monitor(model, every=3, warn=False)
    x = torch.randn(6, 2, 3)
    for _ in range(7):
        model(x).sum().backward()
    with torch.no_grad():
        model(x)  # evaluation forwards do not count
    model.eval()
    model(x)
    assert sorted({r.step for r in monitor.history}) == [0, 3, 6]
    assert monitor.forwards == 7
    assert monitor.table()[0] == {"step": 0, "module": "rnn", "layer": 0, "direction": "forward", "seq_len": 6,
                                  "horizon": monitor.history[0].horizon, "decay_rate": monitor.history[0].decay_rate}  # fmt: skip
    # pandas.DataFrame(monitor.table()) needs records with one set of keys and plain values (no tensors);
    # pandas itself is not a dependency, so the shape is checked here.
    types = {"step": int, "module": str, "layer": int, "direction": str, "seq_len": int, "horizon": int,
             "decay_rate": float}  # fmt: skip
    assert all({k: type(v) for k, v in row.items()} == types for row in monitor.table())


def test_plot_is_a_figure_that_explains_itself():
    torch.manual_seed(0)
    model = EveryStep()
    monitor = rnnlab.monitor(model, every=1, warn=False)
    model(torch.randn(6, 2, 3)).sum().backward()
    figure = monitor.plot()
    assert isinstance(figure, Figure)
    titles = [ax.get_title() for ax in figure.axes]
    assert any("against lag" in t for t in titles) and any("gradient horizon" in t for t in titles)
    heatmap = monitor.heatmap(layer=1)
    assert "rnn layer 1" in heatmap.axes[0].get_title() and heatmap.axes[0].get_images(), "the profile as an image"
    assert heatmap.axes[0].get_xlabel().startswith("lag")


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="every must be a positive integer"):
        rnnlab.monitor(EveryStep(), every=0)
    with pytest.raises(TypeError, match="holds no RNN, LSTM or GRU layer"):
        rnnlab.monitor(nn.Linear(2, 2))


def test_both_directions_of_a_bidirectional_layer_are_watched():
    """Each direction is a row of its own, its profile by lag from its own last step (t = T−1 forward, t = 0
    reverse), equal to what record_gradients records; the warning and the logged names say which direction."""
    from rnnlab.integrations import scalar_tags

    torch.manual_seed(0)
    rnn = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    model = nn.Sequential(rnn)
    monitor = rnnlab.monitor(model, every=1, warn=False)
    x = torch.randn(30, 5, 3, generator=torch.Generator().manual_seed(1))
    model(x)[0][-1].square().sum().backward()
    rows = {r.key: r for r in monitor.history}
    assert sorted(rows) == [("0", layer, d) for layer in (0, 1) for d in ("forward", "reverse")]
    monitor.close()  # the reference below: the same backward recorded by record_gradients
    with rnnlab.record_gradients(model) as rec:
        model(x)[0][-1].square().sum().backward()
    for layer in (0, 1):
        forward, reverse = rows["0", layer, "forward"], rows["0", layer, "reverse"]
        assert forward.profile == pytest.approx(rec.last.norms[layer].flip(0).tolist(), rel=1e-6)
        assert reverse.profile == pytest.approx(rec.last.reverse.norms[layer].tolist(), rel=1e-6)
        assert monitor.horizon_at("0", layer, "reverse") == reverse.horizon
    # The loss sits at the last step: the forward direction's own last step, the reverse direction's first.
    assert (
        rows["0", 1, "forward"].profile[0] > 0
        and rows["0", 1, "reverse"].profile[0] < rows["0", 1, "reverse"].profile[-1]
    )
    assert monitor.table()[0]["direction"] in ("forward", "reverse")
    assert scalar_tags("0", 1, "reverse")["horizon"] == "gradient_horizon/0/layer_1_reverse"
    with pytest.raises(ValueError, match="direction must be 'forward' or 'reverse'"):
        monitor.horizon_at("0", 0, "backward")
    watched = rnnlab.monitor(nn.Sequential(nn.LSTM(3, 4, bidirectional=True)), every=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        watched.model(torch.randn(200, 2, 3))[0][-1].sum().backward()
        watched.history  # noqa: B018 - reading the history turns the finished backward into rows and warnings
    messages = [str(w.message) for w in caught if issubclass(w.category, HorizonWarning)]
    assert len(messages) == 2 and "0 layer 0 sees about" in messages[0]  # one warning per direction
    assert "0 layer 0 (reverse direction) sees about" in messages[1]
