"""Send a monitor's records to TensorBoard.

    monitor = rnnlab.monitor(model, every=20)
    board = TensorBoardWriter(monitor, "runs/tensorboard")     # or writer=an existing SummaryWriter
    for x, y in batches:
        ...                                                     # your training step
        board.write()                                           # cheap when nothing new was recorded
    board.close()
    # tensorboard --logdir runs/tensorboard

Per recorded step and layer: the scalars `gradient_horizon/<module>/layer_<l>` (steps) and
`gradient_decay_rate/<module>/layer_<l>` (per-step factor); per layer, the image
`gradient_profile/<module>/layer_<l>`: log₁₀‖∂L/∂h_t‖ by lag and training step so far (`Monitor.heatmap`).
The reverse direction of a bidirectional layer is `layer_<l>_reverse` in each.
Written with `torch.utils.tensorboard.SummaryWriter`, which is the `tensorboard` package's event-file writer
(`pip install 'rnnlab[tensorboard]'`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnlab.integrations import layer_label, require, scalar_tags
from rnnlab.recurrent.monitor import Monitor
from rnnlab.recurrent.validation import positive_int


def image_tag(module: str, layer: int, direction: str = "forward") -> str:
    return f"gradient_profile/{module}/{layer_label(layer, direction)}"


def figure_pixels(figure) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a matplotlib Figure, rendered with Agg (no GUI backend, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


class TensorBoardWriter:
    """Writes the records of `monitor` to TensorBoard; see the module docstring.

    **Arguments**: `monitor` a `Monitor`; `log_dir` the folder for a new writer, or `writer` an existing
    `torch.utils.tensorboard.SummaryWriter` (e.g. Lightning's `TensorBoardLogger.experiment`), which is then
    left open by `close`; `image_every` draw a layer's profile image after this many new recorded steps of
    it (each image is a ~50 kB PNG and ~0.1 s of drawing; `close` draws the last one), None for no images.
    """

    def __init__(self, monitor: Monitor, log_dir: str | None = None, writer: Any = None, image_every: int | None = 1):
        if (log_dir is None) == (writer is None):
            raise ValueError("TensorBoardWriter: give either log_dir (a folder) or writer (a SummaryWriter)")
        positive_int(image_every, "image_every", "TensorBoardWriter", allow_none=True)
        self.monitor, self.image_every = monitor, image_every
        self._owns_writer = writer is None
        if writer is None:
            # torch's writer imports the package lazily and fails with a long message; check first, in one line.
            require("tensorboard", "tensorboard", "rnnlab.integrations.tensorboard.TensorBoardWriter")
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(log_dir))
        self.writer = writer
        self._written = 0  # rows of monitor.history already sent
        self._unpictured: dict[tuple[str, int, str], tuple[int, int]] = {}  # per layer and direction: (last step,
        # recorded steps since its last image)

    def write(self) -> int:
        """Send the rows recorded since the last call; returns how many."""
        rows = self.monitor.history[self._written :]
        for row in rows:
            tags = scalar_tags(*row.key)
            self.writer.add_scalar(tags["horizon"], row.horizon, row.step)
            self.writer.add_scalar(tags["decay_rate"], row.decay_rate, row.step)
            key = row.key
            count = self._unpictured.get(key, (0, 0))[1] + 1
            self._unpictured[key] = (row.step, count)
        self._written += len(rows)
        if self.image_every is not None:
            for key, (_, count) in list(self._unpictured.items()):
                if count >= self.image_every:
                    self._picture(key)
        return len(rows)

    def _picture(self, key: tuple[str, int, str]) -> None:
        step, _ = self._unpictured.pop(key)
        pixels = figure_pixels(self.monitor.heatmap(*key))  # (H, W, 3)
        self.writer.add_image(image_tag(*key), pixels, step, dataformats="HWC")

    def flush(self) -> None:
        self.write()
        self.writer.flush()

    def close(self) -> None:
        """Send what is left (with each layer's last picture) and close the writer if this object opened it."""
        self.write()
        if self.image_every is not None:
            for key in list(self._unpictured):
                self._picture(key)
        self.writer.flush()
        if self._owns_writer:
            self.writer.close()
