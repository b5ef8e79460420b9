"""The gradient pictures (`rnnlab.recurrent.figures`) and their one rule for zero gradients, as the diagnostics,
the monitor and the report draw them: an exact zero takes a heatmap's lowest colour (the gradient vanished),
a blank cell is a lag that does not exist, and a line on a log axis stops at a zero.
Run: `.venv/bin/pytest tests/test_figures.py`.
"""

from __future__ import annotations

import math

import pytest
import torch

import rnnlab
from rnnlab.recurrent import figures
from rnnlab.recurrent.monitor import MonitorRow
from rnnlab.report import plots

# Two recorded steps: the first a full profile that vanished to exactly zero at lag 2, the second a shorter
# sequence (no lag 2 at all) whose gradient is zero at lag 1.
PROFILES = [[1.0, 1e-3, 0.0], [1.0, 0.0]]


def _image_array(image):
    data = image.get_array()
    return data.data, data.mask if data.mask is not False else torch.zeros(data.shape, dtype=torch.bool).numpy()


def test_heatmap_rows_mark_zeros_and_missing_lags_apart():
    rows = figures.heatmap_rows(PROFILES)
    assert rows.shape == (2, 3)
    assert rows[0, 0] == 0.0 and rows[0, 1] == -3.0
    assert rows[0, 2] == -math.inf and rows[1, 1] == -math.inf, "an exact zero: below every scale"
    assert math.isnan(rows[1, 2]), "a lag the sequence did not have"


def test_a_zero_gradient_takes_the_lowest_colour_and_a_missing_lag_stays_blank():
    rows = figures.heatmap_rows(PROFILES)
    low, high = figures.colour_scale([rows])
    assert (low, high) == pytest.approx((-2.94, 0.0), abs=1e-9)  # the 1st percentile of (−3, 0, 0), interpolated
    fig = figures.new_figure((4, 3))
    values, mask = _image_array(figures.draw_heatmap(fig.subplots(), rows, [0, 10], low, high))
    assert values[0, 2] == low and values[1, 1] == low and not mask[0, 2] and not mask[1, 1]
    assert mask[1, 2], "blank: no such lag"


def test_the_monitor_and_the_report_draw_zeros_alike(monkeypatch):
    """Both heatmaps of the same history give the same image: zeros at the lowest colour, no lag blank."""
    monitor = rnnlab.monitor(rnnlab.GRU(2, 3), every=1, warn=False)
    monitor.rows = [
        MonitorRow(step=s, module="GRU", layer=0, seq_len=len(p), horizon=1, decay_rate=0.0, profile=p)
        for s, p in zip((0, 10), PROFILES, strict=True)
    ]
    (monitor_image,) = monitor.heatmap().axes[0].get_images()
    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or path)
    plots.flow_heatmaps({"GRU": ([0, 10], PROFILES)}, "unused.png", "title")
    (report_image,) = drawn[0].axes[0].get_images()
    for image in (monitor_image, report_image):
        values, mask = _image_array(image)
        low = image.get_clim()[0]
        assert values[0, 2] == low and values[1, 1] == low and not mask[1, 1]
        assert mask[1, 2]
    assert monitor_image.get_clim() == report_image.get_clim()


def test_a_profile_line_stops_at_a_zero():
    values = figures.on_log_axis(torch.tensor([1.0, 1e-40, 0.0], dtype=torch.float64))
    assert values[1] == 1e-40, "float64 all the way: 1e-40 is a float32 denormal"
    assert math.isnan(values[2])
    assert figures.on_log_axis([1.0, 1e-40])[1] == 1e-40, "lists too"
