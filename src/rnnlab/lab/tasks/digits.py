"""Sequential digits: scikit-learn's bundled 8×8 handwritten digits read as a sequence (no download)."""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import SplitDataTask

ORDERS = ("rows", "pixels")


class Digits(SplitDataTask):
    """Classify a handwritten digit shown one row (T = 8, 8 features) or one pixel (T = 64, 1 feature) at a time.

    The 1797 images of `sklearn.datasets.load_digits` (pixel values 0–16, scaled to [0, 1]) are split once,
    by a fixed seeded permutation, into 1437 training and 360 test images. `permuted=True` applies a fixed
    random permutation to the pixel order (pixels only), the 8×8 analogue of permuted sequential MNIST:
    neighbouring pixels are no longer neighbours in time, so the class depends on steps far apart.
    Loss: cross-entropy of the class read after the last step. Metric: accuracy; chance 1/10; solved at
    ≥ 90 % test accuracy.

    Worked example (`order="rows"`): an image of a 0 becomes 8 steps of 8 values; step 0 is its top row
    [0, 0, 0.31, 0.81, 0.56, 0.06, 0, 0], and the model answers "0" after step 7.
    """

    name = "digits"
    test_size = 360

    @classmethod
    def check(cls, seq_len: int | None = None, order: str = "rows", permuted: bool = False) -> None:
        length = cls.fixed_length(order=order, permuted=permuted)
        if seq_len is not None and seq_len != length:
            raise ValueError(f"task 'digits' with order={order!r} has seq_len {length}, got {seq_len!r}")

    @classmethod
    def fixed_length(cls, order: str = "rows", permuted: bool = False) -> int:
        if order not in ORDERS:
            raise ValueError(f"task 'digits': unknown order {order!r}; choose from: {', '.join(ORDERS)}")
        if permuted and order != "pixels":
            raise ValueError("task 'digits': permuted=True needs order='pixels'")
        return 8 if order == "rows" else 64

    def __init__(self, seq_len: int | None = None, order: str = "rows", permuted: bool = False, seed: int = 0):
        super().__init__(seed)
        self.check(seq_len, order, permuted)
        self.order, self.permuted = order, permuted
        self.length = self.fixed_length(order, permuted)
        self.input_size = 8 if order == "rows" else 1
        images, labels = _load()
        split = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1234))
        pixels = images.reshape(len(labels), 64)
        if permuted:
            pixels = pixels[:, torch.randperm(64, generator=torch.Generator().manual_seed(4321))]
        features = pixels.reshape(len(labels), self.length, self.input_size)  # (N, T, I)
        test, train = split[: self.test_size], split[self.test_size :]
        self._train = (features[train], labels[train])
        self._test = (features[test], labels[test])


def _load() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    data = load_digits()
    return torch.tensor(data.images, dtype=torch.float32) / 16.0, torch.tensor(data.target, dtype=torch.int64)
