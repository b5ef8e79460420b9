"""The XML modelling task of Jozefowicz, Zaremba & Sutskever (2015), "An Empirical Exploration of Recurrent
Network Architectures" (ICML), section 3.5."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import Metric, NextSymbolTask, check_length, encode, memoryless_levels

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SYMBOLS = "<>/" + LETTERS
CODES = {symbol: i for i, symbol in enumerate(SYMBOLS)}
NAME_LENGTHS = (2, 10)  # a tag name has 2–10 letters, uniformly
FORCED_AFTER = 50  # from this iteration on, a document only closes its open tags
REFERENCE_CHARACTERS = 200_000  # counted for the memoryless baseline
CEILING_MARGIN = 0.02  # solved within this much of the best achievable accuracy


class XML(NextSymbolTask):
    """Predict the next character of synthetic XML: nested tags with random names, closed in order.

    The paper (section 3.5): the goal "is to predict the next character in synthetic XML dataset. We create
    tags consisting of a random number (between 2 and 10) of lowercase characters. The generation procedure
    is as follows: with probability 50% or after 50 iterations, we either close the most recently opened tag,
    or stop if no open tags remain. Otherwise, open a new random tag." (Quoted as we recall it and as
    reimplementations relay it; the paper's text could not be retrieved from here.)

    Generated here: documents by that procedure, written without whitespace (``<ab><cde></cde></ab>``) and
    concatenated (a document that stops at once is empty and adds nothing; one whose tags all close may open
    another before it stops). Each sequence is a window of T + 1 characters that starts at a document's first
    character; input: its first T characters, target: the next character at every step (all scored). Loss:
    cross-entropy per character. Metric: next-character accuracy, which the paper's Table 1 reports (the best
    of its search: tanh RNN 0.321, LSTM 0.425, LSTM with forget bias 1 0.444, GRU 0.460). Most characters
    cannot be predicted (the letters of a new tag's name, whether the next tag opens or closes); a closing
    tag's name can, by remembering its opening tag, which may lie many characters back.

    `ceiling`: the best accuracy any predictor can expect on the test set — the mean over its steps of the
    probability, under the generator, of the likeliest next character — computed exactly from the generator's
    own probabilities: 0.56 at T = 100 (0.65 over an endless stream, where more closing tags follow their
    openings). The generator knows where a document began, a model does not, but that changes only how sure
    the best guess is, never which character it is. Solved within 0.02 of the ceiling. `chance` and
    `baseline_loss`: the accuracy and loss of the best predictor that sees only the current character
    (`memoryless_levels`): 0.28 and 2.75 nats at T = 100 (0.30 and 2.70 over a stream).

    Where the paper's text leaves it open, guessed: no whitespace, newlines or indentation between tags (with
    them, over a stream, the memoryless predictor alone would score 0.47, above every model of the paper's
    Table 1; without them 0.30, just under its tanh RNN's 0.32), the letters and name lengths uniform,
    "after 50 iterations" meaning from the 51st decision on (which no window of T ≤ 200 reaches, and 0.7 %
    of the steps at T = 1000), windows rather than one stream with a carried state, and all characters
    scored.

    Worked example (T = 12)::

        input   <ab><cde></c
        target  ab><cde></cd     (after "</", "c", "d", "e", ">" are certain for a model that remembers)
    """

    name = "xml"
    input_size = output_size = len(SYMBOLS)

    @classmethod
    def check(cls, seq_len: int = 100) -> None:
        check_length(cls.name, seq_len, 1)

    def __init__(self, seq_len: int = 100, seed: int = 0):
        super().__init__(seed)
        self.check(seq_len)
        self.length = seq_len
        texts, best = self._draw(self.test_size, torch.Generator().manual_seed(10_000_019 + seed))
        self._test = _tensors(texts)
        self.ceiling = sum(map(sum, best)) / (self.test_size * self.length)
        self.metric = Metric("char_accuracy", higher_is_better=True, solved_at=self.ceiling - CEILING_MARGIN)
        count = math.ceil(REFERENCE_CHARACTERS / self.length)
        reference = self.sample(count, torch.Generator().manual_seed(20_000_003 + seed))
        self.baseline_loss, self.chance = memoryless_levels(reference, self._test, self.output_size)

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        return _tensors(self._draw(batch_size, generator)[0])

    def _draw(self, batch_size: int, generator: torch.Generator) -> tuple[list[str], list[list[float]]]:
        # The documents are built as strings; one seed drawn from `generator` makes them deterministic.
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator)))
        windows = [window(rng, self.length) for _ in range(batch_size)]
        return [text for text, _ in windows], [best for _, best in windows]


def window(rng: random.Random, length: int) -> tuple[str, list[float]]:
    """`length` + 1 characters of consecutive documents, and for each of the last `length` the probability
    that the best predictor, knowing every character before it, guesses it (its likeliest next character)."""
    text, best = [], []
    while len(text) <= length:
        for character, probability in document(rng):
            text.append(character)
            best.append(probability)
    return "".join(text[: length + 1]), best[1 : length + 1]


def document(rng: random.Random) -> Iterator[tuple[str, float]]:
    """One document, character by character, each with the probability, given the generator's state before
    it (the open tags, the decisions taken), of the likeliest character at its place. Its first character,
    "<", is certain after a previous document."""
    low, high = NAME_LENGTHS
    open_tags: list[str] = []
    iteration = 0
    while True:
        close = iteration >= FORCED_AFTER or rng.random() < 0.5
        if close and not open_tags:
            return
        yield "<", 1.0  # every tag follows a ">" (or starts the document)
        if close:
            # After "<": "/" with probability ½, or surely once the document only closes.
            yield "/", 1.0 if iteration >= FORCED_AFTER else 0.5
            for character in open_tags.pop() + ">":
                yield character, 1.0  # the most recently opened tag's name: known to a model that remembers
        else:
            name = "".join(rng.choice(LETTERS) for _ in range(rng.randint(low, high)))
            # The step after "<" is the same gamble whether the tag opens or closes: its likeliest character
            # is "/" (½), except when no tag is open, where the tag surely opens (a uniform letter).
            yield name[0], 0.5 if open_tags else 1 / len(LETTERS)
            for written in range(1, len(name) + 1):
                # After `written` letters the name ends with probability 1/(high − written + 1) (lengths are
                # uniform) once it has `low` letters; otherwise a uniform letter follows.
                ends = 1 / (high - written + 1) if written >= low else 0.0
                yield (name[written] if written < len(name) else ">"), max(ends, (1 - ends) / len(LETTERS))
            open_tags.append(name)
        iteration += 1


def _tensors(windows: list[str]) -> tuple[Tensor, Tensor]:
    ids = encode("".join(windows), CODES).view(len(windows), -1)  # (B, T + 1)
    return ids[:, :-1], ids[:, 1:]  # inputs, next characters: (B, T) each
