"""The arithmetic and XML tasks of Jozefowicz, Zaremba & Sutskever (2015): each generator checked against the
paper's description (and against the guesses its docstring states), the loss and accuracy over the scored
steps only, the memoryless baseline and the XML ceiling against independent computations, and determinism.
Run: `.venv/bin/pytest tests/test_tasks_jozefowicz.py`.
"""

import math
import random
import re
from collections import Counter

import pytest
import torch
from torch.nn import functional as F

from rnnlab.lab.config import make_config
from rnnlab.lab.tasks import IGNORED, make_task, xml
from rnnlab.lab.tasks import arithmetic as arith
from rnnlab.lab.trainer import Trainer

ARITHMETIC_INPUTS = arith.SYMBOLS + arith.PAD


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _text(ids, alphabet):
    return "".join("·" if i == IGNORED else alphabet[i] for i in ids.tolist())


def _worked_example(cls):
    """The 'input' and 'target' lines of a task's worked example."""
    lines = {
        line.split()[0]: line.split()[1]
        for line in cls.__doc__.splitlines()
        if line.strip().startswith(("input", "target"))
    }
    return lines["input"], lines["target"]


# ------------------------------------------------------------------------------------------------ arithmetic


@pytest.fixture(scope="module")
def arithmetic_batch():
    task = make_task("arithmetic", seq_len=64, seed=0)
    x, y = task.sample(4000, _gen(1))
    return task, [_text(row, ARITHMETIC_INPUTS) for row in x], y


def test_arithmetic_problems_are_correct_sums_and_differences(arithmetic_batch):
    _, written, _ = arithmetic_batch
    for text in written:
        problem, answer = re.fullmatch(r"_*([^=_]+)=(-?\d+)", text).groups()
        assert problem[0] not in arith.LETTERS, "no distractor before the first character"
        bare = re.sub("[a-z]", "", problem)  # the paper's 3e36d9-h1h… "represents 3369-1…"
        a, operator, b = re.fullmatch(r"(-?\d{1,8})([+-])(-?\d{1,8})", bare).groups()
        assert int(answer) == (int(a) + int(b) if operator == "+" else int(a) - int(b))
        for number in (a.lstrip("-"), b.lstrip("-"), answer.lstrip("-")):
            assert number == str(int(number)), "no leading zeros"


def test_arithmetic_statistics_match_the_stated_distributions(arithmetic_batch):
    _, written, _ = arithmetic_batch
    digits, negative, plus, distractors = Counter(), 0, 0, Counter()
    for text in written:
        problem = text.split("=")[0].lstrip(arith.PAD)
        bare = re.sub("[a-z]", "", problem)
        a, operator, b = re.fullmatch(r"(-?\d+)([+-])(-?\d+)", bare).groups()
        plus += operator == "+"
        for number in (a, b):
            digits[len(number.lstrip("-"))] += 1
            negative += number.startswith("-")
        # the distractors after each character of "A op B": the runs of letters between (and after) them
        distractors.update(len(run) for run in re.split(r"[^a-z]", problem)[1:])
    n = len(written)
    assert set(digits) == set(range(1, 9)) and all(abs(c / (2 * n) - 1 / 8) < 0.02 for c in digits.values())
    assert abs(negative / (2 * n) - 0.5) < 0.02 and abs(plus / n - 0.5) < 0.03
    total = sum(distractors.values())
    for k in range(4):  # P(k) = 2^-(k+1)
        assert distractors[k] / total == pytest.approx(2.0 ** -(k + 1), abs=0.01)
    assert sum(k * c for k, c in distractors.items()) / total == pytest.approx(1.0, abs=0.03)
    # The paper's 40 symbols (26 letters, 10 digits, + - = .) are the classes; all but "." are read, with the
    # padding, and nothing else.
    assert len(arith.SYMBOLS) == 40 and set(arith.SYMBOLS) == set(arith.LETTERS + "0123456789+-=.")
    assert set("".join(written)) == set(arith.SYMBOLS) - {"."} | {arith.PAD}


def test_arithmetic_targets_are_the_answer_and_its_stop_and_nothing_else(arithmetic_batch):
    _, written, y = arithmetic_batch
    for text, target in zip(written, y, strict=True):
        equals = text.index("=")
        expected = [IGNORED] * len(text)
        expected[equals:] = [arith.SYMBOLS.index(c) for c in text[equals + 1 :] + "."]  # the next symbols
        assert target.tolist() == expected


def test_arithmetic_worked_example_is_what_the_generator_writes():
    written, target = _worked_example(arith.Arithmetic)
    question, answer = written.lstrip(arith.PAD).split("=")
    assert re.sub("[a-z]", "", question) == "3369-13994433" and int(answer) == 3369 - 13994433  # the paper's
    assert len(target) == len(written)
    assert target == (answer + ".").rjust(len(written), "·")


def test_arithmetic_too_long_problems_are_drawn_again_and_short_lengths_refused():
    task = make_task("arithmetic", seq_len=40)
    x, y = task.sample(2000, _gen())
    assert (y[:, -1] == arith.SYMBOLS.index(".")).all(), "every problem fits, its answer ending at the last step"
    assert (x[:, 0] == arith.INPUT_CODES[arith.PAD]).float().mean() > 0.5, "most are shorter than 40"
    with pytest.raises(ValueError, match=r"task 'arithmetic': seq_len must be an integer ≥ 30, got 29"):
        make_task("arithmetic", seq_len=29)


def test_loss_and_accuracy_count_the_scored_steps_only():
    task = make_task("arithmetic", seq_len=40)
    _, y = task.sample(16, _gen())
    logits = torch.randn(16, 40, task.output_size, dtype=torch.float64, requires_grad=True)
    scored = y != IGNORED
    reference = -F.log_softmax(logits, -1).gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)[scored].mean()
    loss = task.loss(logits, y)
    torch.testing.assert_close(loss, reference, rtol=1e-12, atol=0)
    loss.backward()
    assert (logits.grad[~scored] == 0).all() and (logits.grad[scored].abs().sum(-1) > 0).all()
    # Accuracy: right everywhere that is scored, wrong everywhere else → 1.
    guess = torch.where(scored, y, (y + 1).clamp(min=0) % task.output_size)
    assert task.score(F.one_hot(guess, task.output_size).double(), y) == 1.0
    half = scored & (torch.rand(scored.shape, generator=_gen(2)) < 0.5)
    guess = torch.where(half, y, (y.clamp(min=0) + 1) % task.output_size)
    assert task.score(F.one_hot(guess, task.output_size).double(), y) == pytest.approx(
        half.sum().item() / scored.sum().item(), rel=1e-12
    )


def _memoryless_by_dict(reference, test, classes):
    """Independent reference for memoryless_levels: plain Python counting of (input, target) pairs."""
    counts = {}
    for xs, ys in zip(*reference, strict=True):
        for a, b in zip(xs.tolist(), ys.tolist(), strict=True):
            if b != IGNORED:
                counts.setdefault(a, Counter())[b] += 1
    loss, right, n = 0.0, 0, 0
    for xs, ys in zip(*test, strict=True):
        for a, b in zip(xs.tolist(), ys.tolist(), strict=True):
            if b == IGNORED:
                continue
            row = counts.get(a, Counter())
            total = sum(row.values()) + classes
            loss -= math.log((row[b] + 1) / total)
            right += b == max(range(classes), key=lambda c: (row[c], -c))
            n += 1
    return loss / n, right / n


@pytest.mark.parametrize("name", ["arithmetic", "xml"])
def test_memoryless_baseline_against_plain_counting_and_a_fresh_sample(name):
    from rnnlab.lab.tasks.base import memoryless_levels

    task = make_task(name, seq_len=40, seed=2)
    reference, fresh = task.sample(800, _gen(3)), task.sample(800, _gen(4))
    loss, accuracy = memoryless_levels(reference, task.test_set(), task.output_size)
    expected_loss, expected_accuracy = _memoryless_by_dict(reference, task.test_set(), task.output_size)
    assert loss == pytest.approx(expected_loss, rel=1e-9) and accuracy == pytest.approx(expected_accuracy, abs=1e-12)
    # The task's own levels (counted on its large reference sample) are what that predictor scores on data it
    # never counted: an honest, out-of-sample baseline.
    fresh_loss, fresh_accuracy = memoryless_levels(reference, fresh, task.output_size)
    assert task.baseline_loss == pytest.approx(fresh_loss, abs=0.06)
    assert task.chance == pytest.approx(fresh_accuracy, abs=0.03)
    assert task.baseline_loss < math.log(task.output_size), "better than a uniform guess"


# ------------------------------------------------------------------------------------------------ xml


def _tags(text):
    return re.findall(r"<(/?)([a-z]*)>", text)


def test_xml_documents_follow_the_paper_procedure():
    rng = random.Random(5)
    empty, decisions, lengths, forced, several = 0, Counter(), Counter(), 0, 0
    for _ in range(20_000):
        text = "".join(c for c, _ in xml.document(rng))
        if not text:
            empty += 1
            continue
        assert re.fullmatch(r"(</?[a-z]{2,10}>)+", text)
        stack, tops = [], 0
        for iteration, (slash, name) in enumerate(_tags(text)):
            if stack and iteration < xml.FORCED_AFTER:
                decisions[bool(slash)] += 1  # a coin flip: close the open tag, or open another
            if slash:
                assert stack.pop() == name, "closes the most recently opened tag"
            else:
                assert iteration < xml.FORCED_AFTER, "from the 51st decision on, only closing"
                tops += not stack
                stack.append(name)
                lengths[len(name)] += 1
        assert not stack, "a document stops only when no tag is open"
        forced, several = forced + (len(_tags(text)) > xml.FORCED_AFTER), several + (tops > 1)
    assert empty / 20_000 == pytest.approx(0.5, abs=0.015), "the first coin can stop an empty document"
    assert several > 0, "with no tag open, the coin either stops the document or opens another tag"
    assert decisions[True] / decisions.total() == pytest.approx(0.5, abs=0.01)
    assert set(lengths) == set(range(2, 11))
    assert all(abs(c / lengths.total() - 1 / 9) < 0.01 for c in lengths.values())
    assert forced > 1000, "many documents reach the forced closing (a random walk rarely ends within 50 steps)"


def _best_by_parsing(text, starts=()):
    """Independent reference for the ceiling, from the description alone: for each next character, the
    probability of the likeliest one and that character, given the characters before it and the positions
    where documents start (names of 2–10 uniform letters; after "<", "/" with ½ while a tag is open and the
    document has taken fewer than 50 decisions, surely after that). Without `starts`, a document is taken to
    start whenever no tag is open, which changes nothing until a document's 51st tag."""
    best, guess, stack, done, mode, name = [], [], [], 0, None, ""
    for i, ch in enumerate(text[:-1]):
        if ch == "<":
            done = 0 if i in starts or (not starts and not stack) else done
            mode, name = "tag", ""
            best.append((1.0 if done >= 50 else 0.5) if stack else 1 / 26)
            guess.append("/" if stack else "a")
        elif ch == "/":
            mode = "close"
            best.append(1.0)
            guess.append(stack[-1][0])
        elif ch == ">":
            stack.pop() if mode == "close" else stack.append(name)
            done += 1
            best.append(1.0)
            guess.append("<")
        else:
            mode = "close" if mode == "close" else "open"
            name += ch
            if mode == "close":
                best.append(1.0)
                guess.append((stack[-1] + ">")[len(name)])
            else:
                ends = 1 / (11 - len(name)) if len(name) >= 2 else 0.0
                best.append(max(ends, (1 - ends) / 26))
                guess.append(">" if ends > (1 - ends) / 26 else "a")
    return best, guess


def test_xml_windows_start_at_a_document_and_predict_every_next_character():
    task = make_task("xml", seq_len=60, seed=1)
    x, y = task.sample(300, _gen())
    assert x.shape == y.shape == (300, 60) and (y != IGNORED).all()
    assert torch.equal(x[:, 1:], y[:, :-1]), "the target is the next input"
    for row in x:
        text = _text(row, xml.SYMBOLS)
        assert text[0] == "<" and text[1] in xml.LETTERS
        stack = []
        for slash, name in _tags(text):  # the complete tags of the window
            if slash:
                assert stack.pop() == name
            else:
                stack.append(name)


def test_xml_ceiling_is_the_best_predictor_on_the_test_set():
    # The generator's probabilities, step by step, over documents long enough to reach forced closing.
    rng, text, best, starts = random.Random(9), "", [], set()
    while len(text) <= 3000:
        starts.add(len(text))
        for character, probability in xml.document(rng):
            text, best = text + character, [*best, probability]
    window, window_best = xml.window(random.Random(9), 3000)
    assert window == text[:3001] and window_best == best[1:3001]
    assert window_best == pytest.approx(_best_by_parsing(window, starts)[0], abs=1e-12)
    assert 1.0 in {p for p, c in zip(window_best, window[1:], strict=True) if c == "/"}, "forced closing seen"
    # The ceiling is the parser's probabilities averaged over the test set (windows of 80 characters never
    # reach a document's 51st tag, so the parser needs no document starts) ...
    task = make_task("xml", seq_len=80, seed=0)
    x, y = task.test_set()
    parsed = [_best_by_parsing(_text(torch.cat([xs, ys[-1:]]), xml.SYMBOLS)) for xs, ys in zip(x, y, strict=True)]
    assert task.ceiling == pytest.approx(sum(sum(b) for b, _ in parsed) / y.numel(), rel=1e-12)
    # ... and the accuracy its likeliest characters reach on the test set, within sampling error (sd 0.002).
    truth = [_text(ys, xml.SYMBOLS) for ys in y]
    right = sum(g == t for (_, guess), row in zip(parsed, truth, strict=True) for g, t in zip(guess, row, strict=True))
    assert right / y.numel() == pytest.approx(task.ceiling, abs=0.008)
    assert task.metric.solved_at == pytest.approx(task.ceiling - 0.02)
    assert task.metric.is_solved(task.ceiling - 0.019) and not task.metric.is_solved(task.ceiling - 0.021)
    assert task.chance < 0.3 < 0.5 < task.ceiling < 0.6


def test_xml_worked_example_is_next_character_prediction():
    written, target = _worked_example(xml.XML)
    assert target[:-1] == written[1:] and re.fullmatch(r"(</?[a-z]*>?)+", written + target[-1])


@pytest.mark.parametrize("name", ["arithmetic", "xml"])
def test_a_short_training_run_scores_only_what_the_task_scores(name):
    config = make_config({"task": name, "seq_len": 40, "hidden_size": 8, "steps": 3, "eval_every": 3})
    trainer = Trainer(config)
    result = trainer.run()
    x, y = trainer.task.test_set()
    with torch.no_grad():
        prediction = trainer.model(x)[0]
    assert result.final_loss == pytest.approx(float(trainer.task.loss(prediction, y)), rel=1e-5)
    assert result.final_metric == pytest.approx(trainer.task.score(prediction, y), rel=1e-9)
    assert result.chance == trainer.task.chance and result.baseline_loss == trainer.task.baseline_loss
    flow = result.evaluations[-1].flow
    assert all(math.isfinite(v) for v in flow.loss_profile) and flow.loss_profile[0] > 0
