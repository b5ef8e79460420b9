"""The arithmetic task of Jozefowicz, Zaremba & Sutskever (2015), "An Empirical Exploration of Recurrent
Network Architectures" (ICML), section 3.5."""

from __future__ import annotations

import random

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import IGNORED, Metric, NextSymbolTask, check_length, encode, memoryless_levels

# The paper's 40 symbols: 10 digits, "+", "-", "=", "." (the end of the answer) and 26 lowercase letters
# (the distractors), the classes predicted; the inputs add a padding symbol, which fills T steps before a problem.
LETTERS = "abcdefghijklmnopqrstuvwxyz"
SYMBOLS = "0123456789+-=." + LETTERS
PAD, UNSCORED = "_", "~"  # how padding and an IGNORED target are written before encoding
INPUT_CODES = {symbol: i for i, symbol in enumerate(SYMBOLS + PAD)}
TARGET_CODES = {**{symbol: i for i, symbol in enumerate(SYMBOLS)}, UNSCORED: IGNORED}
MAX_DIGITS = 8
LONGEST = 2 * (1 + MAX_DIGITS) + 1 + 1 + (1 + MAX_DIGITS + 1)  # "-d…d+-d…d", "=", "-d…d" (up to 9 digits)
REFERENCE_SIZE = 5000  # problems counted for the memoryless baseline


class Arithmetic(NextSymbolTask):
    """Read a sum or difference of two numbers hidden among distractor letters, then predict its result one
    character at a time.

    The paper (section 3.5): "the RNN is required to compute the digits of the sum or difference of two
    numbers, where it first reads the sequence which has the two arguments, and then emits their sum, one
    character at a time. The numbers can have up to 8 digits, and the numbers can be both positive and
    negative. To make the task more difficult, we introduced a random number of distractor symbols between
    successive input characters. Thus a typical instance would be 3e36d9-h1h39f94eeh43keg3c=-13991064, which
    represents 3369-13994433=-13991064. The RNN reads the input sequence until it observes the "=" sign, after
    which it is to output the answer, one character at a time. We used a next step prediction formulation, so
    the LSTM observes the correct value of the past digits when predicting a present digit. The total number of
    different symbols was 40: 26 lowercase characters, 10 digits, and "+", "-", "=", and "." (the latter
    denotes the end of the output)." (Quoted as we recall it and as two reimplementations relay it; the paper's
    text could not be retrieved from here.)

    Generated here: each operand has 1–8 digits (uniform), a uniform value of that many digits and a minus
    sign with probability ½; the operator is "+" or "-" with probability ½; after every character of
    "A op B" come k distractors, k ≥ 0 with P(k) = 2^-(k+1) (mean 1), each a uniform lowercase letter.
    Input: that question, "=" and the result, right-aligned in T = `seq_len` steps after padding symbols, so
    that every answer ends at the last step (problems that would not fit are drawn again: 1.7 in 10⁴ at
    T = 64, none in 200 000 draws at T = 80; the mean length is 29). Target: the next symbol at the "=" and
    at every answer character (the answer's characters, then "."), `IGNORED` elsewhere; the "." is predicted
    but never read. Loss: cross-entropy over the scored steps. Metric: accuracy on the scored characters, as
    the paper's Table 1 reports (the best of its search: tanh RNN 0.295, LSTM 0.892, LSTM with forget bias 1
    0.902, GRU 0.896). Solved at ≥ 99 %. `chance` and `baseline_loss`: the accuracy and loss of the best
    predictor that sees only the current input symbol (`memoryless_levels`): 0.21 and 2.29 nats at T = 64.

    Where the paper's text leaves it open, guessed: the distribution of the digit counts and of the
    distractor counts (the example has 12 distractors after its 13 characters, none before the first), how a
    negative operand is written ("-" before it, so "5--3" is 5 − (−3)), that an answer of 0 is "0", and
    that nothing before the "=" is scored (the Table 1 accuracies of 0.89–0.92 would be impossible if the
    random digits and letters of the question counted).

    Worked example (the paper's, T = 38; · = `IGNORED`, _ = padding)::

        input   ___3e36d9-h1h39f94eeh43keg3c=-13991064
        target  ····························-13991064.
    """

    name = "arithmetic"
    input_size = len(SYMBOLS) + 1  # the 40 symbols and the padding
    output_size = len(SYMBOLS)
    metric = Metric("answer_accuracy", higher_is_better=True, solved_at=0.99)

    @classmethod
    def check(cls, seq_len: int = 64) -> None:
        check_length(cls.name, seq_len, LONGEST)  # the longest problem without distractors fits

    def __init__(self, seq_len: int = 64, seed: int = 0):
        super().__init__(seed)
        self.check(seq_len)
        self.length = seq_len
        reference = self.sample(REFERENCE_SIZE, torch.Generator().manual_seed(20_000_003 + seed))
        self.baseline_loss, self.chance = memoryless_levels(reference, self.test_set(), self.output_size)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        # The problems are built as strings; one seed drawn from `generator` makes them deterministic.
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        inputs, targets = [], []
        for _ in range(batch_size):
            question, answer = problem(rng, self.length)
            # Right-aligned, so that every answer ends at the last step: the lag of a question character from
            # the loss is then its distance to the end, as in the other tasks. The "." is only predicted.
            inputs.append((question + "=" + answer).rjust(self.length, PAD))
            targets.append((UNSCORED * len(question) + answer + ".").rjust(self.length, UNSCORED))
        shape = (batch_size, self.length)
        return encode("".join(inputs), INPUT_CODES).view(shape), encode("".join(targets), TARGET_CODES).view(shape)


def problem(rng: random.Random, length: int) -> tuple[str, str]:
    """(question with distractors, answer) of one problem whose written form fits in `length` steps."""
    while True:
        a, b = _operand(rng), _operand(rng)
        operator = rng.choice("+-")
        answer = str(a + b if operator == "+" else a - b)
        question = []
        for character in f"{a}{operator}{b}":
            question.append(character)
            while rng.random() < 0.5:  # k distractors with P(k) = 2^-(k+1)
                question.append(rng.choice(LETTERS))
        if len(question) + 1 + len(answer) <= length:  # question "=" answer
            return "".join(question), answer


def _operand(rng: random.Random) -> int:
    digits = rng.randint(1, MAX_DIGITS)
    value = rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits)
    return -value if rng.random() < 0.5 else value
