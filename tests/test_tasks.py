"""Task generators: layout properties, targets, baselines measured empirically against their formulas,
determinism from the seed and fixed test sets. Run: `.venv/bin/pytest tests/test_tasks.py`.
"""

import math

import pytest
import torch

from rnnlab.lab.tasks import TASKS, make_task
from rnnlab.lab.tasks.copy import BLANK, DELIMITER
from rnnlab.lab.tasks.temporal_order import END, START, X, Y


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_adding_layout_target_and_baseline():
    task = make_task("adding", seq_len=50)
    x, y = task.sample(4000, _gen())
    assert x.shape == (4000, 50, 2) and y.shape == (4000, 1)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values <= 1)).all()
    assert (markers.sum(1) == 2).all(), "exactly two markers"
    assert (markers[:, :25].sum(1) == 1).all() and (markers[:, 25:].sum(1) == 1).all(), "one in each half"
    torch.testing.assert_close(y[:, 0], (values * markers).sum(1), rtol=0, atol=1e-6)
    # Predicting 1: MSE = Var(U1 + U2) = 1/6. Standard error over 4000 draws ≈ 0.003.
    empirical = torch.mean((y - 1) ** 2).item()
    assert empirical == pytest.approx(task.baseline_loss, abs=0.012)
    assert task.metric.is_solved(0.009) and not task.metric.is_solved(0.011)


def test_copy_layout_and_memoryless_baseline():
    task = make_task("copy", seq_len=30)
    x, y = task.sample(500, _gen())
    assert x.shape == y.shape == (500, 50)
    assert ((x[:, :10] >= 1) & (x[:, :10] <= 8)).all()
    assert (x[:, 10:39] == BLANK).all() and (x[:, 39] == DELIMITER).all() and (x[:, 40:] == BLANK).all()
    assert (y[:, :40] == BLANK).all() and torch.equal(y[:, 40:], x[:, :10])
    # The memoryless predictor: blanks with certainty, then a uniform guess over 8 symbols.
    logits = torch.full((500, 50, 9), -1e9)
    logits[:, :40, BLANK] = 0
    logits[:, 40:, 1:] = 0
    empirical = task.loss(logits, y).item()
    assert empirical == pytest.approx(10 * math.log(8) / 50, rel=1e-6)
    assert task.baseline_loss == pytest.approx(empirical, rel=1e-6)
    perfect = torch.nn.functional.one_hot(y, 9).float() * 50
    assert task.score(perfect, y) == 1.0 and task.metric.is_solved(1.0)


@pytest.mark.parametrize("symbols", [2, 3])
def test_temporal_order_layout_and_classes(symbols):
    task = make_task("temporal_order", seq_len=100, symbols=symbols)
    x, y = task.sample(3000, _gen())
    assert (x[:, 0] == START).all() and (x[:, -1] == END).all()
    relevant = (x == X) | (x == Y)
    assert (relevant.sum(1) == symbols).all()
    positions = relevant.nonzero()[:, 1].view(3000, symbols)  # (B, symbols), in time order per row
    for k, (low, high) in enumerate(task.windows):
        assert ((positions[:, k] >= low) & (positions[:, k] <= high)).all()
    # The class is the order of X/Y as a binary number; all classes occur about equally often.
    order = x[relevant].view(3000, symbols) - X
    expected = (order * 2 ** torch.arange(symbols - 1, -1, -1)).sum(1)
    assert torch.equal(y, expected)
    counts = torch.bincount(y, minlength=2**symbols).float() / 3000
    assert (counts - 1 / 2**symbols).abs().max() < 0.04
    assert task.chance == 1 / 2**symbols


@pytest.mark.parametrize(
    ("order", "permuted", "shape"), [("rows", False, (8, 8)), ("pixels", False, (64, 1)), ("pixels", True, (64, 1))]
)
def test_digits_split_and_orders(order, permuted, shape):
    task = make_task("digits", order=order, permuted=permuted)
    x_test, y_test = task.test_set()
    x_train, _ = task._train
    assert x_test.shape == (360, *shape) and x_train.shape == (1437, *shape)
    assert set(y_test.tolist()) == set(range(10))
    # No test image appears in the training split.
    train_rows = {tuple(r.flatten().tolist()) for r in x_train}
    assert sum(tuple(r.flatten().tolist()) in train_rows for r in x_test) <= 2  # the data set has a few duplicates
    if permuted:
        plain = make_task("digits", order="pixels")
        assert torch.equal(plain.test_set()[1], y_test)
        assert torch.equal(plain.test_set()[0].sort(1).values, x_test.sort(1).values)
        assert not torch.equal(plain.test_set()[0], x_test)


def test_text_is_deterministic_and_baseline_is_unigram_entropy():
    task = make_task("text", seq_len=20, seed=0)
    again = make_task("text", seq_len=20, seed=0)
    other = make_task("text", seq_len=20, seed=1)
    assert torch.equal(task.train_stream(), again.train_stream())
    assert not torch.equal(task.train_stream()[:1000], other.train_stream()[:1000])
    assert len(task.train_stream()) == 200_000 and len(task.test_stream()) == 20_000
    assert 3.5 < task.baseline_loss < 4.6
    # A unigram model's loss on the test stream equals the baseline.
    counts = torch.bincount(task.train_stream(), minlength=task.output_size).double() + 1
    logits = (counts / counts.sum()).log().float().expand(1, 19_999, -1)
    bits = task.score(logits, task.test_stream()[1:].unsqueeze(0))
    stream = task.test_stream()[1:]
    expected = -((counts / counts.sum())[stream].log2()).mean().item()
    assert bits == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("name", ["adding", "copy", "temporal_order", "arithmetic", "xml"])
def test_same_seed_same_batches_and_fixed_test_set(name):
    a, b = make_task(name, seq_len=40, seed=3), make_task(name, seq_len=40, seed=3)
    for u, v in zip(a.sample(8, _gen(5)), b.sample(8, _gen(5)), strict=True):
        assert torch.equal(u, v)
    assert not torch.equal(a.sample(8, _gen(5))[0], a.sample(8, _gen(6))[0])
    for u, v in zip(a.test_set(), b.test_set(), strict=True):
        assert torch.equal(u, v)
    a.sample(64, _gen(9))  # drawing training batches does not change the test set
    assert torch.equal(a.test_set()[0], b.test_set()[0])
    assert not torch.equal(make_task(name, seq_len=40, seed=4).test_set()[0], a.test_set()[0])


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("adding", {"seq_len": 1}, "seq_len must be an integer ≥ 2"),
        ("addng", {}, "unknown task 'addng'; choose from: adding, copy"),
        ("temporal_order", {"symbols": 4}, "symbols must be 2 or 3"),
        ("digits", {"order": "columns"}, "unknown order 'columns'; choose from: rows, pixels"),
        ("digits", {"permuted": True}, "permuted=True needs order='pixels'"),
        ("copy", {"colour": 1}, "task 'copy' has no option 'colour'"),
        ("arithmetic", {"seq_len": 20}, "task 'arithmetic': seq_len must be an integer ≥ 30, got 20"),
        ("xml", {"seq_len": 0}, "task 'xml': seq_len must be an integer ≥ 1, got 0"),
        ("mnist", {"seq_len": 64}, "task 'mnist': seq_len must be 28 (order rows) or 784 (order pixels), got 64"),
        ("mnist", {"order": "rows", "permuted": True}, "permuted=True needs order='pixels'"),
    ],
)
def test_task_errors(name, options, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        make_task(name, **options)


def test_every_task_has_a_worked_example_and_a_criterion_in_its_docstring():
    for cls in TASKS.values():
        doc = cls.__doc__ or ""
        assert "Worked example" in doc, cls.name
        assert ("solved" in doc.lower()) or cls.metric.solved_at is None, cls.name
