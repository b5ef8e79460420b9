"""The TensorBoard writer: what it writes, read back from the event files with TensorBoard's own reader, equals
the monitor's history; a missing `tensorboard` package is a one-line error naming the extra to install.
Run: `.venv/bin/pytest tests/test_tensorboard.py` (needs `pip install 'rnnlab[tensorboard]'`).
"""

import sys

import numpy as np
import pytest
import torch
from torch import nn

import rnnlab

pytest.importorskip("tensorboard", reason="needs the tensorboard extra: pip install 'rnnlab[tensorboard]'")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rnnlab.integrations.tensorboard import TensorBoardWriter


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 6, num_layers=2, batch_first=True)
        self.head = nn.Linear(6, 1)

    def forward(self, x):
        return self.head(self.rnn(x)[0][:, -1])


def _read(folder) -> EventAccumulator:
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})  # 0: keep every event
    events.Reload()
    return events


def test_scalars_and_images_read_back_equal_the_history(tmp_path):
    torch.manual_seed(0)
    model = TwoLayers()
    monitor = rnnlab.monitor(model, every=2, warn=False)
    board = TensorBoardWriter(monitor, log_dir=str(tmp_path))
    x = torch.randn(4, 12, 3)
    written = []
    for _ in range(5):
        model(x).pow(2).sum().backward()
        written.append(board.write())
    board.close()
    assert written == [2, 0, 2, 0, 2], "each write sends the rows recorded since the previous one (2 layers)"
    history = monitor.history
    assert sorted({r.step for r in history}) == [0, 2, 4]
    events = _read(tmp_path)
    for layer in (0, 1):
        rows = [r for r in history if r.layer == layer]
        horizons = events.Scalars(f"gradient_horizon/rnn/layer_{layer}")
        decays = events.Scalars(f"gradient_decay_rate/rnn/layer_{layer}")
        assert [e.step for e in horizons] == [e.step for e in decays] == [r.step for r in rows]
        assert [e.value for e in horizons] == [float(r.horizon) for r in rows]
        # TensorBoard stores scalars as float32: equal to the history's value rounded to float32.
        assert [e.value for e in decays] == [float(np.float32(r.decay_rate)) for r in rows]
        images = events.Images(f"gradient_profile/rnn/layer_{layer}")
        assert [e.step for e in images] == [0, 2, 4], "one picture per new recorded step (image_every=1)"
        assert images[-1].encoded_image_string.startswith(b"\x89PNG") and images[-1].width > 300


def test_image_every_draws_fewer_pictures_and_close_draws_the_last(tmp_path):
    torch.manual_seed(0)
    model = TwoLayers()
    monitor = rnnlab.monitor(model, every=1, warn=False)
    board = TensorBoardWriter(monitor, log_dir=str(tmp_path), image_every=3)
    for _ in range(4):
        model(torch.randn(2, 5, 3)).sum().backward()
        board.write()
    board.close()
    images = _read(tmp_path).Images("gradient_profile/rnn/layer_0")
    assert [e.step for e in images] == [2, 3]


def test_an_existing_writer_is_used_and_left_open(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    model = TwoLayers()
    monitor = rnnlab.monitor(model, every=1, warn=False)
    writer = SummaryWriter(log_dir=str(tmp_path))
    board = TensorBoardWriter(monitor, writer=writer, image_every=None)
    model(torch.randn(2, 5, 3)).sum().backward()
    board.close()
    writer.add_scalar("after", 1.0, 0)  # still open: a closed writer would refuse this
    writer.close()
    tags = _read(tmp_path).Tags()
    assert "gradient_horizon/rnn/layer_1" in tags["scalars"] and "after" in tags["scalars"]
    assert tags["images"] == []


def test_without_tensorboard_the_error_is_one_line_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # makes `import tensorboard` fail as if not installed
    monitor = rnnlab.monitor(TwoLayers(), warn=False)
    with pytest.raises(ImportError, match=r"pip install 'rnnlab\[tensorboard\]'") as error:
        TensorBoardWriter(monitor, log_dir=str(tmp_path))
    assert "\n" not in str(error.value)


def test_bad_arguments_are_clear_errors(tmp_path):
    monitor = rnnlab.monitor(TwoLayers(), warn=False)
    with pytest.raises(ValueError, match="either log_dir"):
        TensorBoardWriter(monitor)
    with pytest.raises(ValueError, match="image_every must be a positive integer"):
        TensorBoardWriter(monitor, log_dir=str(tmp_path), image_every=0)
