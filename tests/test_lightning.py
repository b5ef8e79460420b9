"""rnnlab inside a real `lightning.Trainer.fit` on CPU: the gradient monitor as a callback (what reaches the
loggers equals the monitor's history; training is unchanged by it) and truncated BPTT as a module mixin
(equal to the plain-PyTorch `repackage_hidden` recipe, update for update).
Run: `.venv/bin/pytest tests/test_lightning.py` (needs `pip install 'rnnlab[lightning,tensorboard]'`).

Each test that fits silences, by message, exactly the warnings it expects: Lightning's about a DataLoader
without worker processes (deliberate: the data is a tiny in-memory tensor) and about a logging interval longer
than the epoch (deliberate: a few steps; the callback logs every recorded step itself, not at that interval);
and torch's deprecation of `LeafSpec`, which Lightning 2.6 still constructs when it flattens the dataloaders
(Lightning's code, not ours; harmless until a torch release removes the class).
"""

import copy
import csv
import importlib
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import rnnlab

pytest.importorskip("lightning", reason="needs the lightning extra: pip install 'rnnlab[lightning]'")

import lightning.pytorch as pl
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from rnnlab.integrations.lightning import GradientMonitor, TruncatedBPTT, split_along_time

NO_WORKERS = "ignore:The '.*dataloader' does not have many workers"
SHORT_EPOCH = "ignore:The number of training batches .* is smaller than the logging interval"
LEAF_SPEC = "ignore:`isinstance\\(treespec, LeafSpec\\)` is deprecated:FutureWarning"


def _data(batches=3, batch=2, steps=30, inputs=2, targets=1, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batches * batch, steps, inputs, generator=gen)  # (N, T, I)
    y = torch.randn(batches * batch, steps, targets, generator=gen)  # (N, T, O)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)


def _trainer(tmp_path, **kwargs):
    options = dict(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
                   enable_checkpointing=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    return pl.Trainer(**{**options, **kwargs})


class Regressor(pl.LightningModule):
    """A user's Lightning model: an nn.LSTM and a head, a loss on the last step, Adam."""

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(2, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out, _ = self.rnn(x)  # (B, T, H); not self(x): the callback does not depend on forward
        return (self.head(out[:, -1]) - y[:, -1]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.filterwarnings(NO_WORKERS, SHORT_EPOCH, LEAF_SPEC)
def test_the_callback_logs_the_monitors_history_to_a_csv_logger(tmp_path):
    torch.manual_seed(0)
    model = Regressor()
    callback = GradientMonitor(every=2, warn=False)
    logger = CSVLogger(tmp_path, name="csv")
    _trainer(tmp_path, logger=logger, max_epochs=2, callbacks=[callback]).fit(model, _data())  # 6 batches
    history = callback.monitor.history
    assert [r.step for r in history] == [0, 2, 4], "every 2nd batch, labelled with the global step"
    assert {(r.module, r.layer, r.seq_len) for r in history} == {("rnn", 0, 30)}
    assert isinstance(model.rnn, rnnlab.LSTM)
    with open(logger.log_dir + "/metrics.csv") as handle:
        logged = [row for row in csv.DictReader(handle) if row.get("gradient_horizon/rnn/layer_0")]
    assert [int(row["step"]) for row in logged] == [0, 2, 4]
    assert [int(float(row["gradient_horizon/rnn/layer_0"])) for row in logged] == [r.horizon for r in history]
    assert [float(row["gradient_decay_rate/rnn/layer_0"]) for row in logged] == [r.decay_rate for r in history]


@pytest.mark.filterwarnings(NO_WORKERS, SHORT_EPOCH, LEAF_SPEC)
def test_the_callback_writes_scalars_and_the_profile_image_to_a_tensorboard_logger(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    callback = GradientMonitor(every=1, warn=False)
    logger = TensorBoardLogger(tmp_path, name="tb")
    _trainer(tmp_path, logger=logger, callbacks=[callback]).fit(Regressor(), _data())
    events = EventAccumulator(logger.log_dir, size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    history = callback.monitor.history
    horizons = events.Scalars("gradient_horizon/rnn/layer_0")
    assert [(e.step, e.value) for e in horizons] == [(r.step, float(r.horizon)) for r in history]
    assert [e.step for e in events.Images("gradient_profile/rnn/layer_0")] == [0, 1, 2]


@pytest.mark.filterwarnings(NO_WORKERS, LEAF_SPEC)
def test_training_with_the_callback_is_training_without_it(tmp_path):
    """Recording reads gradients the engine computes anyway, and the conversion happens before the optimizer
    is built: the weights after fit are those of the same model fit without the callback."""
    torch.manual_seed(0)
    watched = Regressor()
    plain = copy.deepcopy(watched)
    rnnlab.convert(plain)  # the same engine, so the comparison can be exact
    callback = GradientMonitor(every=1, warn=False)
    _trainer(tmp_path, callbacks=[callback]).fit(watched, _data())
    _trainer(tmp_path).fit(plain, _data())
    assert len(callback.monitor.history) == 3
    before = Regressor()
    assert not torch.equal(plain.head.weight, before.head.weight)  # it did train
    for (name, a), (_, b) in zip(watched.state_dict().items(), plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


class Chunked(TruncatedBPTT, pl.LightningModule):
    """Truncated BPTT with k = 4 over sequences of 10: chunks of 4, 4 and 2 steps, a loss on every step."""

    truncated_bptt_steps = 4
    tbptt_clip_norm = 0.5

    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(3, 5, batch_first=True)
        self.head = nn.Linear(5, 2)

    def tbptt_step(self, chunk, hiddens):
        x, y = chunk
        out, hiddens = self.rnn(x, hiddens)  # (B, ≤4, H)
        return (self.head(out) - y).pow(2).mean(), hiddens

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _repackage_hidden_reference(model, loader, k, clip):
    """The pytorch/examples word_language_model recipe: one update per chunk, the state detached between."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for x, y in loader:
        hidden = None
        for start in range(0, x.shape[1], k):
            out, hidden = model.rnn(x[:, start : start + k], hidden)
            loss = (model.head(out) - y[:, start : start + k]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            hidden = tuple(h.detach() for h in hidden)


@pytest.mark.filterwarnings(NO_WORKERS, LEAF_SPEC)
def test_truncated_bptt_equals_the_repackage_hidden_recipe(tmp_path):
    torch.manual_seed(0)
    model = Chunked()
    reference = copy.deepcopy(model)
    loader = _data(batches=2, batch=3, steps=10, inputs=3, targets=2)
    trainer = _trainer(tmp_path)
    trainer.fit(model, loader)
    assert trainer.global_step == 2 * 3, "one optimizer update per chunk: 2 batches × ⌈10 / 4⌉ chunks"
    _repackage_hidden_reference(reference, loader, k=4, clip=0.5)
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)


class LongerBackprop(Chunked):
    """BPTT(k1 = 4, k2 = 8) over sequences of 14: chunks of 4, 4, 4, 2; each update backpropagates through two."""

    tbptt_backprop_steps = 8


def _bptt_k1_k2_reference(model, loader, k1, k2, clip):
    """BPTT(k1, k2) written out in plain PyTorch: for chunk i, re-run chunks i−m+1 … i from the detached state
    chunk i−m+1 started in, the loss of chunk i only, one update."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    m = k2 // k1
    for x, y in loader:
        bounds = list(range(0, x.shape[1], k1))
        starts = [None]
        for i, start in enumerate(bounds):
            first = max(0, i - m + 1)
            hidden = starts[first]
            for j in range(first, i + 1):
                out, hidden = model.rnn(x[:, bounds[j] : bounds[j] + k1], hidden)
            loss = (model.head(out) - y[:, start : start + k1]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            starts.append(tuple(h.detach() for h in hidden))


@pytest.mark.filterwarnings(NO_WORKERS, LEAF_SPEC)
def test_truncated_bptt_k1_k2_equals_its_plain_pytorch_recipe(tmp_path):
    torch.manual_seed(0)
    model = LongerBackprop()
    reference, plain_k = copy.deepcopy(model), copy.deepcopy(model)
    loader = _data(batches=2, batch=3, steps=14, inputs=3, targets=2)
    trainer = _trainer(tmp_path)
    trainer.fit(model, loader)
    assert trainer.global_step == 2 * 4, "still one update per chunk of k1 steps"
    _bptt_k1_k2_reference(reference, loader, k1=4, k2=8, clip=0.5)
    for (name, a), (_, b) in zip(model.state_dict().items(), reference.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
    # and it is not BPTT(4, 4): the longer backward changes the weights
    _repackage_hidden_reference(plain_k, loader, k=4, clip=0.5)
    assert not torch.allclose(model.rnn.weight_hh_l0, plain_k.rnn.weight_hh_l0)


@pytest.mark.filterwarnings(NO_WORKERS, LEAF_SPEC)
@pytest.mark.parametrize("k2", [6, 2, True])
def test_a_backprop_length_that_is_not_a_multiple_of_the_chunk_is_a_clear_error(tmp_path, k2):
    model = LongerBackprop()
    model.tbptt_backprop_steps = k2
    with pytest.raises(ValueError, match="tbptt_backprop_steps must be a multiple of truncated_bptt_steps=4"):
        _trainer(tmp_path).fit(model, _data(batches=1, batch=2, steps=8, inputs=3, targets=2))


@pytest.mark.filterwarnings(NO_WORKERS, LEAF_SPEC)
def test_the_monitor_sees_one_chunk_under_truncated_bptt(tmp_path):
    torch.manual_seed(0)
    callback = GradientMonitor(every=1, warn=False)
    _trainer(tmp_path, callbacks=[callback]).fit(Chunked(), _data(batches=2, batch=3, steps=10, inputs=3, targets=2))
    history = callback.monitor.history
    assert [r.step for r in history] == [0, 3], "labelled with the global step: 3 updates per batch"
    assert {r.seq_len for r in history} == {4}, "the gradient of a chunk reaches only its 4 steps"


def test_split_along_time_cuts_batch_first_tensors_and_refuses_mixed_lengths():
    x, y, label = torch.zeros(2, 10, 3), torch.zeros(2, 10), torch.tensor([1, 0])
    chunks = list(split_along_time({"x": x, "y": y, "label": label}, 4))
    assert [c["x"].shape[1] for c in chunks] == [4, 4, 2] and [c["y"].shape[1] for c in chunks] == [4, 4, 2]
    assert all(c["label"] is label for c in chunks), "tensors without a time dimension go whole into each chunk"
    with pytest.raises(ValueError, match=r"override tbptt_split_batch"):
        list(split_along_time((x, torch.zeros(2, 1)), 4))  # a per-sequence target (B, 1) is ambiguous


@pytest.mark.filterwarnings(NO_WORKERS, LEAF_SPEC)
def test_a_missing_chunk_size_is_a_clear_error(tmp_path):
    model = Chunked()
    model.truncated_bptt_steps = 0
    with pytest.raises(ValueError, match="truncated_bptt_steps must be a positive integer"):
        _trainer(tmp_path).fit(model, _data(batches=1, batch=3, steps=10, inputs=3, targets=2))


def test_without_lightning_the_error_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightning", None)  # makes `import lightning` fail as if not installed
    monkeypatch.delitem(sys.modules, "rnnlab.integrations.lightning")
    with pytest.raises(ImportError, match=r"pip install 'rnnlab\[lightning\]'") as error:
        importlib.import_module("rnnlab.integrations.lightning")
    assert "\n" not in str(error.value)
