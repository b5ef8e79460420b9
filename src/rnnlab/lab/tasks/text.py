"""Character-level language modelling on generated text with dependencies at known distances."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import StreamTask
from rnnlab.recurrent.validation import positive_int

ALPHABET = 'abcdefghijklmnopqrstuvwxyz .,()"\n'
CONSONANTS, VOWELS = "bcdfghklmnprstvz", "aeiou"
BANDS = ("spelling", "transition", "brackets", "agreement", "topic", "other")
SPELLING, TRANSITION, BRACKETS, AGREEMENT, TOPIC, OTHER = range(len(BANDS))


class Text(StreamTask):
    """Predict the next character of a long generated text; scored in bits per character (bpc).

    No corpus can be downloaded here, so the text is generated from the seed by a small grammar whose
    dependencies have known lengths — which makes it a fair (and more transparent) stand-in for natural text
    when the question is what truncated BPTT can learn. Paragraphs of 3–6 sentences; each sentence is a
    subject ("many" or "one") and 5–14 words; 400 pseudo-words built from 1–3 syllables, drawn with
    Zipf-distributed frequencies; each word has 4 preferred successors (followed 70 % of the time); each
    paragraph picks a topic word that recurs once in every one of its sentences; "many" puts the suffix "s"
    on the sentence's last word; some sentences hold a parenthetical clause of 2–4 words or end in quoted
    speech.

    The generator labels every character with the dependency its prediction needs — the band — and how many
    characters back the character that determines it lies (`generate_labelled`). Over the 220 000 characters
    of seed 0 (other seeds within a character or two of the same medians):

    ==========  ========================================================  ===============================  =====
    band        the characters                                            determined by, characters back   share
    ==========  ========================================================  ===============================  =====
    spelling    a word's letters after the first, and the space that      the word's first letter: 1–6,    76 %
                ends it                                                   median 3
    transition  the first letter of a word drawn as its predecessor's     the previous word's first        9 %
                successor                                                 letter: 3–9, median 5
    brackets    ")" and a closing '"'                                     the opening one: 6–82, median    0.8 %
                                                                          18 (10–33 for 80 % of them)
    agreement   the character after a sentence's last word: "s" after     the subject's first letter:      1.5 %
                "many", the "." or "," after "one" (unless a quote        20–98, median 56 (34–79)
                closes there: brackets)
    topic       the first letter of the paragraph's topic word, from its  the previous sentence's topic    1.3 %
                second sentence on                                        word: 8–161, median 58 (27–94)
    other       what no earlier character determines (a sentence's first  —                                11 %
                letter, words drawn afresh, the first topic word of a
                paragraph, opening brackets) or the character just
                before does (the space after ".")
    ==========  ========================================================  ===============================  =====

    A dependency d characters back lies inside a BPTT(k, k) window — so that the gradient which would teach
    it exists — for a fraction (k − d + 1)/k of the positions, and never when d > k. At every evaluation
    `extra_stream_scores` gives the test stream's bits per character on each band (`bpc_spelling`, …,
    `bpc_other`), so a study can say at which distance a window stops learning.

    Baseline (`baseline_loss`, `chance`): the unigram entropy of the characters, ≈ 4.26 bpc (seeds 0–2).
    No success criterion: lower is better. Streams: 200 000 characters for training, 20 000 for testing.

    Worked example (seed 0, the first characters; below each one its band: s spelling, w transition,
    b brackets, a agreement, t topic, · other)::

        many hozu neguga siluva fagi puvure ruvisu "gutu celu kicase fini lehiro kori cufo siluvas". one pek
        ·ssss·sssswssssss·sssssswssss·ssssss·ssssss··sssswsssswsssssswsssswsssssswsssswssss·sssssab···sss·ss
        evi ruvisu bodicu ragiba somelu nutoke koda. one catufi buke (basazi ruvisu tasuta) bigi "padi fagi
        sssstssssss·ssssss·ssssss·sssssswssssss·sssa··sss·sssssswssss··sssssstsssssswsssssb··ssss·wsssswssss

    The "s" of "siluvas" (character 89) is agreement, 89 characters after the "m" of "many"; the quote after
    it closes the one opened 47 characters back; "ruvisu" is the paragraph's topic: its first occurrence (in
    "puvure ruvisu") is a fresh choice, the next one (character 104) is topic, 68 characters back.
    """

    name = "text"
    input_size = output_size = len(ALPHABET)
    train_chars, test_chars = 200_000, 20_000

    @classmethod
    def check(cls, seq_len: int = 50) -> None:
        positive_int(seq_len, "seq_len (the default BPTT window)", "task 'text'")

    def __init__(self, seq_len: int = 50, seed: int = 0):
        self.check(seq_len)
        self.seq_len = seq_len
        self.seed = seed
        labelled = generate_labelled(self.train_chars + self.test_chars, seed)
        ids = torch.tensor([ALPHABET.index(ch) for ch in labelled.text], dtype=torch.int64)
        self._train, self._test = ids[: self.train_chars], ids[self.train_chars :]
        self._test_bands = torch.tensor(labelled.bands[self.train_chars :], dtype=torch.int64)  # (M,)
        self._test_distances = torch.tensor(labelled.distances[self.train_chars :], dtype=torch.int64)  # (M,)
        counts = torch.bincount(self._train, minlength=len(ALPHABET)).double() + 1.0  # add-one smoothing
        probs = counts / counts.sum()
        self.chance = self.baseline_loss = float(-(probs[self._test].log2()).mean())

    def train_stream(self) -> Tensor:
        return self._train

    def test_stream(self) -> Tensor:
        return self._test

    def test_bands(self) -> tuple[Tensor, Tensor]:
        """(M,) int64 each: the band (an index into `BANDS`) of every test character, and how many characters
        back its dependency lies (0 for "other")."""
        return self._test_bands, self._test_distances

    def extra_stream_scores(self, losses: Tensor, context: Tensor) -> dict[str, float]:
        """Bits per character on each band: `bpc_<band>` for every band in `BANDS`.

        A character whose dependency lies further back than the evaluation let the model read counts as
        "other" (its context could not determine it); so the bands' bpc, weighted by their characters, average
        to the overall bpc. A band without a scored character is NaN.
        """
        band = torch.where(self._test_distances <= context, self._test_bands, OTHER)  # (M,)
        scored = ~losses.isnan()
        scores = {}
        for index, name in enumerate(BANDS):
            chosen = losses[scored & (band == index)]
            scores[f"{self.band_metric_prefix}{name}"] = float(chosen.mean()) / math.log(2) if len(chosen) else math.nan
        return scores


def generate(num_chars: int, seed: int) -> str:
    """At least `num_chars` characters of the grammar described in `Text`, cut to exactly that length."""
    return generate_labelled(num_chars, seed).text


@dataclass(frozen=True)
class LabelledText:
    """Generated text and, for each character, the dependency its prediction needs (`Text` lists the bands).

    `bands[i]` indexes `BANDS`; `distances[i]` is how many characters back the character that determines
    character i lies (0 for "other", which no earlier character determines).
    """

    text: str
    bands: list[int]
    distances: list[int]


def generate_labelled(num_chars: int, seed: int) -> LabelledText:
    """`generate`'s text with each character's band and dependency distance, recorded as it is written.

    The random draws are exactly those of the plain grammar, in the same order, so the text of a seed is the
    same whether or not it is labelled.
    """
    rng = random.Random(seed)
    words = sorted({_word(rng) for _ in range(600)})[:400]
    rng.shuffle(words)
    zipf = [1.0 / (rank + 1) for rank in range(len(words))]
    successors = {w: rng.sample(words, 4) for w in words}
    out = _Writer()
    while len(out.chars) < num_chars:
        topic = rng.choices(words, weights=zipf)[0]
        topic_at = None  # where the topic word last began in this paragraph
        for index in range(rng.randint(3, 6)):
            if index:
                out.put(" ")
            topic_at = _sentence(rng, words, zipf, successors, topic, topic_at, out)
        out.put("\n")
    distances = [i - s if s >= 0 else 0 for i, s in enumerate(out.sources[:num_chars])]
    return LabelledText("".join(out.chars[:num_chars]), out.bands[:num_chars], distances)


class _Writer:
    """The text being written, with each character's band and the index of the character that determines it."""

    def __init__(self):
        self.chars: list[str] = []
        self.bands: list[int] = []
        self.sources: list[int] = []  # -1: nothing earlier determines the character

    def put(self, text: str, band: int = OTHER, source: int = -1) -> int:
        """Append `text`, every character with the same label; returns the index of its first character."""
        start = len(self.chars)
        for ch in text:
            self.chars.append(ch)
            self.bands.append(band)
            self.sources.append(source)
        return start

    def word(self, word: str, band: int = OTHER, source: int = -1) -> int:
        """A word whose first letter has the given label; the later letters are spelled from the first."""
        start = self.put(word[0], band, source)
        self.put(word[1:], SPELLING, start)
        return start


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(1, 3)))


def _sentence(rng, words, zipf, successors, topic, topic_at, out: _Writer) -> int | None:
    """Draw one sentence and write it to `out`, labelled; returns where its topic word begins. `topic_at`: where
    the paragraph's previous topic word begins (None in its first sentence)."""
    plural = rng.random() < 0.5
    length = rng.randint(5, 14)
    body, reasons = [], []
    word = rng.choices(words, weights=zipf)[0]
    topic_index = rng.randrange(length)
    for i in range(length):
        # Mostly follow the Markov chain; sometimes jump to a Zipf draw; the topic appears once per sentence.
        if i == topic_index:
            word, reason = topic, TOPIC
        elif rng.random() < 0.7:
            word, reason = rng.choice(successors[word]), TRANSITION
        else:
            word, reason = rng.choices(words, weights=zipf)[0], OTHER
        body.append(word)
        reasons.append(reason)
    opens = {}  # word index → the bracket written before it
    close_paren = None
    free = 1  # first word a quote may open at: quotes never cut into a parenthetical
    if length >= 8 and rng.random() < 0.4:  # a parenthetical clause of 2–4 words
        start = rng.randint(1, length - 5)
        free = start + rng.randint(2, 4)
        opens[start], close_paren = "(", free - 1
    quoted = free <= length - 2 and rng.random() < 0.2  # quoted speech to the end of the sentence
    if quoted:
        opens[rng.randint(free, length - 2)] = '"'
    full_stop = rng.random() < 0.85

    subject = out.word("many" if plural else "one")
    out.put(" ", SPELLING, subject)
    starts: list[int] = []  # where each body word's first letter is
    bracket = -1  # where the open bracket is
    for i, (word, reason) in enumerate(zip(body, reasons, strict=True)):
        if i in opens:
            bracket = out.put(opens[i])
        if reason == TRANSITION and i > 0:  # body[0] follows a word that is never written
            starts.append(out.word(word, TRANSITION, starts[-1]))
        elif reason == TOPIC and topic_at is not None:  # the paragraph's first topic word is a fresh choice
            starts.append(out.word(word, TOPIC, topic_at))
        else:
            starts.append(out.word(word))
        if reason == TOPIC:
            topic_at = starts[-1]
        if i == close_paren:
            out.put(")", BRACKETS, bracket)
            out.put(" ")
        elif i < length - 1:
            out.put(" ", SPELLING, starts[-1])  # the word ends here: its spelling says so
    # After the last word: the subject decides between the suffix "s" and the sentence's end; an open
    # quote closes before the full stop or comma.
    end = "." if full_stop else ","
    if plural:
        out.put("s", AGREEMENT, subject)
    if quoted:
        out.put('"', BRACKETS, bracket)
    if plural or quoted:
        out.put(end)  # the "s" or the closing quote has already ended the sentence
    else:
        out.put(end, AGREEMENT, subject)  # no "s" here: the subject was "one"
    return topic_at
