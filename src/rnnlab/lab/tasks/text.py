"""Character-level language modelling on generated text with dependencies at known distances."""

from __future__ import annotations

import random

import torch
from torch import Tensor

from rnnlab.lab.tasks.base import StreamTask
from rnnlab.recurrent.validation import positive_int

ALPHABET = 'abcdefghijklmnopqrstuvwxyz .,()"\n'
CONSONANTS, VOWELS = "bcdfghklmnprstvz", "aeiou"


class Text(StreamTask):
    """Predict the next character of a long generated text; scored in bits per character (bpc).

    No corpus can be downloaded here, so the text is generated from the seed by a small grammar whose
    dependencies have known lengths — which makes it a fair (and more transparent) stand-in for natural text
    when the question is what truncated BPTT can learn:

    - spelling (1–8 characters): 400 pseudo-words built from syllables, with Zipf-distributed frequencies;
    - word order (~10–30): each word prefers a few successors (a sparse Markov chain);
    - agreement (~30–150): a sentence that starts with "many" ends with a word carrying the suffix "s";
      one that starts with "one" does not;
    - brackets and quotes (~10–80): "(" and '"' opened inside a sentence are closed later in it;
    - topic (~200–800): each paragraph picks a topic word that recurs in every one of its sentences.

    BPTT(k, k) with k = 5 can learn spelling only; k = 50 reaches agreement and brackets; the topic needs
    hundreds of steps. Baseline (`baseline_loss`, `chance`): the unigram entropy of the characters, ≈ 4.1 bpc.
    No success criterion: lower is better. Streams: 200 000 characters for training, 20 000 for testing.

    Worked example (seed 0, the first characters)::

        many hozu neguga siluva fagi puvure ruvisu "gutu celu kicase fini lehiro kori cufo siluvas". one…
    """

    name = "text"
    input_size = output_size = len(ALPHABET)
    train_chars, test_chars = 200_000, 20_000

    def __init__(self, seq_len: int = 50, seed: int = 0):
        positive_int(seq_len, "seq_len (the default BPTT window)", "task 'text'")
        self.seq_len = seq_len
        self.seed = seed
        text = generate(self.train_chars + self.test_chars, seed)
        ids = torch.tensor([ALPHABET.index(ch) for ch in text], dtype=torch.int64)
        self._train, self._test = ids[: self.train_chars], ids[self.train_chars :]
        counts = torch.bincount(self._train, minlength=len(ALPHABET)).double() + 1.0  # add-one smoothing
        probs = counts / counts.sum()
        self.chance = self.baseline_loss = float(-(probs[self._test].log2()).mean())

    def train_stream(self) -> Tensor:
        return self._train

    def test_stream(self) -> Tensor:
        return self._test


def generate(num_chars: int, seed: int) -> str:
    """At least `num_chars` characters of the grammar described in `Text`, cut to exactly that length."""
    rng = random.Random(seed)
    words = sorted({_word(rng) for _ in range(600)})[:400]
    rng.shuffle(words)
    zipf = [1.0 / (rank + 1) for rank in range(len(words))]
    successors = {w: rng.sample(words, 4) for w in words}
    chunks: list[str] = []
    size = 0
    while size < num_chars:
        topic = rng.choices(words, weights=zipf)[0]
        paragraph = [_sentence(rng, words, zipf, successors, topic) for _ in range(rng.randint(3, 6))]
        chunks.append(" ".join(paragraph) + "\n")
        size += len(chunks[-1])
    return "".join(chunks)[:num_chars]


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(CONSONANTS) + rng.choice(VOWELS) for _ in range(rng.randint(1, 3)))


def _sentence(rng, words, zipf, successors, topic) -> str:
    plural = rng.random() < 0.5
    length = rng.randint(5, 14)
    body = []
    word = rng.choices(words, weights=zipf)[0]
    topic_at = rng.randrange(length)
    for i in range(length):
        # Mostly follow the Markov chain; sometimes jump to a Zipf draw; the topic appears once per sentence.
        word = (
            topic
            if i == topic_at
            else (rng.choice(successors[word]) if rng.random() < 0.7 else rng.choices(words, weights=zipf)[0])
        )
        body.append(word)
    if plural:
        body[-1] += "s"
    free = 1  # first word a quote may open at: quotes never cut into a parenthetical
    if length >= 8 and rng.random() < 0.4:  # a parenthetical clause of 2–4 words
        start = rng.randint(1, length - 5)
        free = start + rng.randint(2, 4)
        body[start] = "(" + body[start]
        body[free - 1] += ")"
    if free <= length - 2 and rng.random() < 0.2:  # quoted speech to the end of the sentence
        start = rng.randint(free, length - 2)
        body[start] = '"' + body[start]
        body[-1] += '"'
    text = ("many " if plural else "one ") + " ".join(body)
    return text + "." if rng.random() < 0.85 else text + ","
