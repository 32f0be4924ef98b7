"""Property-based tests (hypothesis) of predict, predict_batch, predict_words, the CLI and HTTP.

Inputs are arbitrary unicode (emoji, combining marks, RTL, CJK, zero-width and control
characters, NUL, lone surrogates), empty, blank and one-word texts, labels that hold or
equal prompt tokens (``<<ENT>>``, ``[SEP]``, ...), duplicate labels and thresholds 0 and 1;
100k-character texts and 1,000 labels are explicit examples. The properties:

* the only exceptions are ValueError and TypeError, exactly when an argument is invalid;
* every entity has valid offsets with ``text[start:end] == entity.text``, a label that
  was asked for and a score above its threshold; flat results never overlap, nested
  ones never cross;
* the same call twice gives the same result; predict_batch equals predict per text;
  the CLI and the HTTP service give what the library gives.

The models are random GLiNER heads spread by ``conftest.spread_head``, so that they find
entities at the default threshold (each property test asserts that entities were found).
Most cases run on a 1-layer BERT whose window is cut to 64 subwords and 24 words, so that
short generated texts cross windows and small label sets split into prompt groups.

Two hypothesis profiles, chosen by the environment variable ANYNER_FUZZ:

* ``ci`` (the default): seeded (derandomize), 150 cases per property (the MiniLM one 30,
  the stdin one 75), about 1,000 in all; about 30 s of CPU.
* ``long``: random seeds, 2,500 cases per property (500 and 1,250), over 14,000 in all;
  a few minutes. ``-rP`` prints each property's count of cases, valid cases and entities::

      ANYNER_FUZZ=long nice -n 10 python -m pytest tests/test_properties.py -q -rP

The profiles are applied per test (not loaded globally), so other test files keep theirs.
A failure prints the seed and the blob to reproduce it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import io
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from fractions import Fraction
from numbers import Real
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from anyner import AnyNER, Entity, cli
from anyner.decode import Candidates, greedy
from tests.conftest import brute_force, check_entities, same_entities, spread_head

# others share the machine; one thread is also the fastest for tiny models
pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---------------------------------------------------------------------- hypothesis profiles

_COMMON = dict(
    deadline=None,
    database=None,  # nothing is written into the working tree; failures print their seed/blob
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", derandomize=True, max_examples=150, **_COMMON)
settings.register_profile("long", derandomize=False, max_examples=2500, **_COMMON)
FUZZ = os.environ.get("ANYNER_FUZZ", "ci")
if FUZZ not in ("ci", "long"):
    raise ValueError(f"ANYNER_FUZZ must be 'ci' or 'long', got {FUZZ!r}")
PROFILE = settings.get_profile(FUZZ)  # applied per test, so other test files keep their settings


def fuzz(share: float = 1.0) -> settings:
    """The selected profile, with ``share`` of its cases (for the costlier tests)."""
    return settings(PROFILE, max_examples=max(10, int(PROFILE.max_examples * share)))


# ---------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir) -> AnyNER:
    """1-layer BERT (hidden 32), BiLSTM, spread random head; the encoder's full 512 subwords."""
    torch.manual_seed(0)
    return spread_head(AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=1))


@pytest.fixture(scope="module")
def small(tiny) -> AnyNER:
    """``tiny`` with windows of at most 64 subwords and 24 words: windows and label groups come early."""
    net = copy.deepcopy(tiny.model)
    hf_config = copy.deepcopy(tiny.hf_config)
    hf_config.max_position_embeddings = 64
    model = AnyNER(net, tiny.tokenizer, hf_config, config=dataclasses.replace(net.config, max_len=24))
    assert model.max_tokens == 64
    return model


@pytest.fixture(scope="module")
def minilm(minilm_dir) -> AnyNER:
    """The MiniLM encoder with a spread head, as in test_pipeline: a realistic encoder."""
    torch.manual_seed(0)
    return spread_head(AnyNER.from_encoder(minilm_dir, hidden_size=128, num_rnn_layers=1))


# ---------------------------------------------------------------------- strategies

ODD = [
    "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "e\u0301", "\u0301", "\u0308\u0308a", "שלום", "مرحبا", "\u200f", "\u200e",
    "\u202e", "東京", "漢字かなカナ", "한국어", "\u200b", "\u200c", "\u200d", "\ufeff", "\u2060", "\x00", "\x01",
    "\x1b[31m", "\x7f", "\x85", "\u2028", "\ufffd", "ǅ", "ﬁ", "İ", "ß", "\U0001d400", "\U00010000", "<<ENT>>",
    "<<SEP>>", "[SEP]", "[CLS]", "[ENT]", "[MASK]", "[PAD]", "[UNK]", "[FLERT]", "<b>", "&amp;", '"', "'",
    "-", "_", "x-y", "a_b", "Bill", "Gates", "Microsoft", "Paris", "April", "1975", ",", ".", "3.14",
    "supercalifragilisticexpialidocious", "a" * 120,
]  # fmt: skip
SURROGATES = ["\ud800", "\udcff", "a\udfffb"]  # lone surrogates: str, but not UTF-8 text
SEPARATORS = [" ", " ", " ", "  ", "\n", "\t", "\r\n", "", "\u00a0", "\u3000", "\u2029", "\x0b", "\x1c"]


def texts(surrogates: bool = True) -> st.SearchStrategy[str]:
    pieces = st.sampled_from(ODD + (SURROGATES if surrogates else [])) | st.text(max_size=8)
    tokens = st.lists(st.tuples(pieces, st.sampled_from(SEPARATORS)), max_size=60)
    return st.one_of(
        tokens.map(lambda xs: "".join(a + b for a, b in xs)),
        st.text(max_size=150),  # any code point but surrogates
        st.sampled_from(["", " ", " \n\t\u3000 ", "\u200b", "word", "😀", "Microsoft."]),
    )


LABEL_WORDS = [
    "person", "organization", "date", "location", "drug", "programming language", "Person", " person ",
    "<<ENT>>", "<<SEP>>", "[SEP]", "[CLS]", "[ENT]", "[PAD]", "[MASK]", "[UNK]", "[FLERT]", "<<ENT>> person",
    "a <<SEP>> b", "<<ent>>", "<ENT>", "<<ENT", "", " ", "\t\n", "\u200b", "\x00", "😀", "東京", "שלום",
    "e\u0301", "x,y",
]  # fmt: skip
LABEL = st.sampled_from(LABEL_WORDS) | st.text(max_size=12)
VALID_LABEL = st.sampled_from([x for x in LABEL_WORDS if x.strip() and "<<" not in x]) | st.text(
    min_size=1, max_size=12
).filter(lambda x: x.strip() and "<<ENT>>" not in x and "<<SEP>>" not in x)
STR_LABELS = st.one_of(
    st.lists(VALID_LABEL, min_size=1, max_size=8),  # valid: repeated samples are duplicates
    st.lists(VALID_LABEL, min_size=1, max_size=8),  # (listed twice: drawn twice as often)
    st.dictionaries(VALID_LABEL, VALID_LABEL, min_size=1, max_size=6),
    st.lists(st.sampled_from(["person", "organization", "date", "location"]), min_size=1, max_size=4),
    st.lists(LABEL, max_size=8),  # anything: often empty, blank or holding a prompt token
    st.dictionaries(LABEL, LABEL, max_size=6),
)
BAD_TYPED_LABELS = st.sampled_from(["person", None, 3, [1], [None], {"a": 1}, {1: "a"}, b"ab", {"person"}])
ANY_LABELS = STR_LABELS | BAD_TYPED_LABELS
GOOD_NUMBERS = st.sampled_from([0, 0.0, 1, 1.0, 0.5, -0.0, 1e-300]) | st.floats(0, 1)
ODD_NUMBERS = st.sampled_from(
    [np.float32(0.25), np.float64(0.75), np.int64(1), Fraction(1, 3), -0.1, 1.5, math.nan, math.inf, True,
     False, None, "0.5", [0.5]]
)  # fmt: skip


def label_error(labels) -> bool:
    """Whether ``labels`` is invalid, by the documented rules (not by calling the library)."""
    if isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, Mapping)):
        return True
    pairs = list(labels.items()) if isinstance(labels, Mapping) else [(x, x) for x in labels]
    if not pairs:
        return True
    for value in (v for pair in pairs for v in pair):
        if not isinstance(value, str) or not value.strip() or "<<ENT>>" in value or "<<SEP>>" in value:
            return True
    return False


def names_of(labels) -> list[str]:
    return list(dict.fromkeys(labels))  # a dict's keys, or a list without its duplicates


def number_ok(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and 0 <= v <= 1


def threshold_ok(threshold, names) -> bool:
    if isinstance(threshold, Mapping):
        return set(threshold) <= set(names) and all(number_ok(v) for v in threshold.values())
    return number_ok(threshold)


def threshold_of(threshold, label: str) -> float:
    return float(threshold.get(label, 0.5)) if isinstance(threshold, Mapping) else float(threshold)


@st.composite
def thresholds(draw, names: list[str]):
    kind = draw(st.integers(0, 9))
    if kind < 5 or not names:
        return draw(GOOD_NUMBERS) if kind < 8 else draw(ODD_NUMBERS)
    if kind < 8:
        return draw(st.dictionaries(st.sampled_from(names), GOOD_NUMBERS, max_size=len(names)))
    keys = st.sampled_from(names) | st.sampled_from(["not asked", 1, None])
    return draw(st.dictionaries(keys, GOOD_NUMBERS | ODD_NUMBERS, min_size=1, max_size=3))


@st.composite
def labels_and_threshold(draw, labels=ANY_LABELS):
    labels = draw(labels)
    names = [] if label_error(labels) else names_of(labels)
    return labels, draw(thresholds(names))


# ---------------------------------------------------------------------- checks


def assert_same(a: list[Entity], b: list[Entity], threshold, tol: float = 1e-4) -> None:
    """Two predictions of one text agree, up to float noise from padding in another batch.

    Padding changes scores in the last bits. Entities may then differ only where that noise
    decides: a score within ``tol`` of its threshold, or two clashing candidates within
    ``tol`` of each other.
    """
    ka = {(e.start, e.end, e.label): e.score for e in a}
    kb = {(e.start, e.end, e.label): e.score for e in b}
    if ka.keys() == kb.keys():
        assert all(abs(ka[k] - kb[k]) <= tol for k in ka), (a, b)
        return
    diff = [(k, s) for k, s in ka.items() if k not in kb] + [(k, s) for k, s in kb.items() if k not in ka]
    note(f"batch and single differ in {diff}")
    near_threshold = any(abs(s - threshold_of(threshold, k[2])) <= tol for k, s in diff)
    everything = list(ka.items()) + list(kb.items())
    near_tie = any(
        abs(s1 - s2) <= tol and k1 != k2 and k1[0] < k2[1] and k2[0] < k1[1]
        for k1, s1 in diff
        for k2, s2 in everything
    )
    assert near_threshold or near_tie, f"predictions differ beyond float noise: {diff}"


class Found:
    """Counts a property's cases and the entities found in them: a property that saw no entity
    asserted little. The counts are printed (``-rP`` shows them)."""

    def __init__(self, name: str) -> None:
        self.name, self.runs, self.cases, self.entities = name, 0, 0, 0

    def counted(self, check):
        @functools.wraps(check)
        def run(*args, **kwargs):
            self.runs += 1
            return check(*args, **kwargs)

        return run

    def add(self, results) -> None:
        n = sum(len(r) for r in results)
        self.entities += n
        self.cases += 1
        event("valid arguments: " + ("entities found" if n else "no entities"))

    def check(self) -> None:
        print(f"{self.name}: {self.runs} cases, {self.cases} with valid arguments, {self.entities} entities")
        assert self.cases > 0 and self.entities > 0, f"no entities in {self.cases} valid cases"


# ---------------------------------------------------------------------- the library


@pytest.mark.slow
def test_predict_properties(small):
    found = Found("test_predict_properties")

    @fuzz()
    @given(text=texts(), lt=labels_and_threshold(), flat=st.booleans(), multi_label=st.booleans())
    @example(text="", lt=(["person"], 0.5), flat=True, multi_label=False)
    @example(text=" \n\t\u3000\u200b ", lt=(["person", "person"], 0), flat=True, multi_label=False)
    @example(text="Microsoft", lt=(["organization"], 0), flat=True, multi_label=True)
    @example(text="Bill Gates founded Microsoft.", lt=(["person", "date"], 1), flat=False, multi_label=True)
    @example(
        text="a b", lt=(["[SEP]", "[CLS]", "[ENT]", "[UNK]", "[FLERT]"], 0.0), flat=True, multi_label=False
    )
    @example(text="a b", lt=(["<<ENT>>"], 0.5), flat=True, multi_label=False)
    @example(text="a b", lt=({"x": "a <<SEP>> b"}, 0.5), flat=True, multi_label=False)
    @example(text="a \ud800 b", lt=(["\udcff", "x"], {"x": 0.1}), flat=True, multi_label=False)
    @found.counted
    def check(text, lt, flat, multi_label):
        labels, threshold = lt
        args = dict(threshold=threshold, flat=flat, multi_label=multi_label)
        if label_error(labels) or not threshold_ok(threshold, names_of(labels)):
            event("invalid arguments")
            with pytest.raises((ValueError, TypeError)):
                small.predict(text, labels, **args)
            return
        ents = small.predict(text, labels, **args)
        check_entities(text, ents, names_of(labels), threshold, flat, multi_label, split=True)
        assert small.predict(text, labels, **args) == ents, "the same call gives the same result"
        if isinstance(labels, list):
            assert small.predict(text, labels + labels, **args) == ents, "duplicate labels collapse"
        found.add([ents])

    check()
    found.check()


@pytest.mark.slow
def test_predict_batch_equals_predict(small):
    found = Found("test_predict_batch_equals_predict")
    label_lists = st.lists(st.sampled_from(LABEL_WORDS[:10]), min_size=1, max_size=6)

    @fuzz()
    @given(
        texts_=st.lists(texts(), max_size=5),
        shared=st.booleans(),
        data=st.data(),
        batch_size=st.integers(1, 5),
        flat=st.booleans(),
        multi_label=st.booleans(),
    )
    @found.counted
    def check(texts_, shared, data, batch_size, flat, multi_label):
        if shared:
            labels, threshold = data.draw(labels_and_threshold(STR_LABELS), "labels, threshold")
            per_text = [labels] * len(texts_)
        else:
            per_text = data.draw(st.lists(label_lists, min_size=len(texts_), max_size=len(texts_)), "labels")
            labels = per_text
            threshold = data.draw(GOOD_NUMBERS | ODD_NUMBERS, "threshold")
        args = dict(threshold=threshold, flat=flat, multi_label=multi_label)
        bad = [label_error(x) or not threshold_ok(threshold, names_of(x)) for x in per_text]
        if not texts_:  # nothing to run, but the arguments are checked all the same
            bad = [label_error(labels) or not threshold_ok(threshold, names_of(labels))]
        if any(bad):
            event("invalid arguments")
            with pytest.raises((ValueError, TypeError)):
                small.predict_batch(texts_, labels, batch_size=batch_size, **args)
            return
        out = small.predict_batch(texts_, labels, batch_size=batch_size, **args)
        assert len(out) == len(texts_)
        assert small.predict_batch(texts_, labels, batch_size=batch_size, **args) == out, "deterministic"
        for text, lab, ents in zip(texts_, per_text, out, strict=True):
            check_entities(text, ents, names_of(lab), threshold, flat, multi_label, split=True)
            assert_same(ents, small.predict(text, lab, **args), threshold)
        found.add(out)

    check()
    found.check()


@pytest.mark.slow
def test_predict_words_properties(small):
    found = Found("test_predict_words_properties")
    word = (st.sampled_from(ODD + SURROGATES) | st.text(min_size=1, max_size=10)).filter(
        lambda w: not w.isspace()
    )

    @fuzz()
    @given(words=st.lists(st.lists(word, max_size=40), max_size=3), flat=st.booleans())
    @example(words=[["<<ENT>>", "a"], ["[SEP]"], [], ["a b", "c"]], flat=True)
    @found.counted
    def check(words, flat):
        labels = ["person", "organization", "date"]
        out = small.predict_words(words, labels, flat=flat)
        assert small.predict_words(words, labels, flat=flat) == out
        for ws, ents in zip(words, out, strict=True):
            check_entities(" ".join(ws), ents, labels, 0.5, flat, False, split=False)
        found.add(out)

    check()
    found.check()


@pytest.mark.slow
def test_predict_on_minilm(minilm):
    """Fewer cases on a real 6-layer encoder with its full window."""
    found = Found("test_predict_on_minilm")

    @fuzz(0.2)
    @given(texts_=st.lists(texts(), min_size=1, max_size=3), lt=labels_and_threshold(STR_LABELS))
    @example(texts_=["Bill Gates founded Microsoft on April 4, 1975."], lt=(["person", "organization"], 0.5))
    @found.counted
    def check(texts_, lt):
        labels, threshold = lt
        if label_error(labels) or not threshold_ok(threshold, names_of(labels)):
            event("invalid arguments")
            with pytest.raises((ValueError, TypeError)):
                minilm.predict_batch(texts_, labels, threshold=threshold)
            return
        out = minilm.predict_batch(texts_, labels, threshold=threshold)
        assert minilm.predict_batch(texts_, labels, threshold=threshold) == out
        for text, ents in zip(texts_, out, strict=True):
            check_entities(text, ents, names_of(labels), threshold, True, False, split=True)
            assert_same(ents, minilm.predict(text, labels, threshold=threshold), threshold)
        found.add(out)

    check()
    found.check()


# ---------------------------------------------------------------------- explicit extremes

LONG_TEXTS = {
    "words": ("Bill Gates founded Microsoft on April 4, 1975 in Albuquerque. " * 2000)[:100_000],
    "one word": "a" * 100_000,
    "cjk run": "東京漢字" * 25_000,
    "blank and zero-width": (" \u200b\n\t\u3000\ufeff\u200d" * 15_000)[:100_000],
    "mixed unicode": ("😀 e\u0301 שלום مرحبا 東京 \x00 [SEP] <<ENT>> \u202eabc x-y_z " * 3000)[:100_000],
}
# fewer, longer words: for the CLI and HTTP round trips, where the words' number only costs time
UNICODE_100K = ("Ada Lovelace👩\u200d💻 naïve-café e\u0301clair שלום東京都庁 Microsoft\u200bCorp\n" * 2000)[
    :100_000
]


@pytest.mark.slow
@pytest.mark.parametrize("name", LONG_TEXTS)
def test_100k_character_texts(tiny, name):
    text = LONG_TEXTS[name]
    assert len(text) == 100_000
    labels = ["person", "organization", "date"]
    ents = tiny.predict(text, labels)
    check_entities(text, ents, labels, 0.5, True, False, split=True)
    if name in ("words", "mixed unicode"):
        assert ents and ents[-1].start > 90_000, "entities are found to the end of the text"
    if name == "words":  # the same again, in a batch with a short text
        assert_same(tiny.predict_batch([text, "Bill Gates"], labels)[0], ents, 0.5)


@pytest.mark.slow
@pytest.mark.parametrize("model_name", ["tiny", "small"])
def test_1000_labels(request, model_name):
    model = request.getfixturevalue(model_name)
    text = "Bill Gates founded Microsoft on April 4, 1975 in Albuquerque, New Mexico."
    labels = [f"type {i}" for i in range(1000)]
    assert len(model.featurizer.label_groups(model.featurizer.label_set(labels))) > 1
    ents = model.predict(text, labels, threshold=0.5, flat=False, multi_label=True)
    check_entities(text, ents, labels, 0.5, False, True, split=True)
    assert ents
    assert model.predict(text, labels, threshold=0.5, flat=False, multi_label=True) == ents


def test_thresholds_zero_and_one(small):
    text = "Bill Gates founded Microsoft on April 4, 1975 in Albuquerque, New Mexico."
    labels = ["person", "organization", "date"]
    assert small.predict(text, labels, threshold=1) == []
    assert small.predict(text, labels, threshold={"person": 1.0, "organization": 1, "date": 1.0}) == []
    everything = small.predict(text, labels, threshold=0, flat=False, multi_label=True)
    check_entities(text, everything, labels, 0.0, False, True, split=True)
    assert len(everything) > len(small.predict(text, labels)), "threshold 0 keeps more than 0.5"


def test_special_token_labels(small):
    text = "Bill Gates founded Microsoft."
    specials = ["[SEP]", "[CLS]", "[ENT]", "[PAD]", "[MASK]", "[UNK]", "[FLERT]", "<ENT>", "<<ent>>"]
    ents = small.predict(text, specials, threshold=0.0, multi_label=True)
    check_entities(text, ents, specials, 0.0, True, True, split=True)
    assert ents
    for bad in (["<<ENT>>"], ["<<SEP>>"], ["x <<ENT>>"], {"x": "<<SEP>> y"}, ["person", "<<ENT>>person"]):
        with pytest.raises(ValueError, match="prompt token"):
            small.predict(text, bad)


# ---------------------------------------------------------------------- regressions for bugs found here


@pytest.mark.parametrize("text", ["a \ud800 b", "\udcff", "Bill \udc80Gates"])
def test_lone_surrogates_in_texts_and_labels(small, text):
    """Bug: a lone surrogate (e.g. from bytes read with surrogateescape) made the tokenizer raise
    an obscure TypeError. It is now read as U+FFFD, one character for one, so offsets hold."""
    labels = ["person", "\ud800x"]
    ents = small.predict(text, labels, threshold=0.0)
    check_entities(text, ents, labels, 0.0, True, False, split=True)
    assert ents
    assert small.predict_words([text.split()], labels, threshold=0.0)[0]


@pytest.mark.parametrize("labels", [["word " * 600], {"x": "word " * 600}, ["person", "東" * 520]])
def test_a_label_too_long_for_the_encoder_is_a_value_error(small, tiny, labels):
    """Bug: a label (or description) longer than the encoder's window crashed with a RuntimeError
    from the position embeddings. It is now a ValueError naming the label, whatever the texts."""
    for model in (small, tiny):
        for texts_ in (["Bill Gates"], [""], []):
            with pytest.raises(ValueError, match="too long for the encoder") as info:
                model.predict_batch(texts_, labels)
            assert len(str(info.value)) < 300, "the message shortens the label"
    assert small.predict("Bill Gates", {"x": "word " * 40}) is not None  # long, but it fits


def test_threshold_errors_name_the_problem(small):
    """Bug: a threshold dict with keys of mixed types raised TypeError from sorted(); numpy
    scalars were refused as "not a number"."""
    with pytest.raises(ValueError, match="not asked for"):
        small.predict("a b", ["person"], threshold={1: 0.5, "x": 0.2, None: 0.1})
    text, labels = "Bill Gates founded Microsoft.", ["person", "organization"]
    plain = small.predict(text, labels, threshold=0.25)
    assert small.predict(text, labels, threshold=np.float32(0.25)) == plain
    assert small.predict(text, labels, threshold={"person": np.float64(0.25), "organization": 0.25}) == plain
    for bad in (True, np.float32("nan"), "0.25", None):
        with pytest.raises(ValueError, match="threshold"):
            small.predict(text, labels, threshold=bad)


def test_multi_label_decoding_is_not_quadratic_in_labels():
    """Bug: with multi_label, greedy stored a kept span once per label, and each clash check
    scanned them all: 1,000 labels on a 14-word text took over a minute. Each span is now
    stored once; the choice is the same (checked against the brute force in conftest.py)."""
    rng = np.random.default_rng(0)

    def all_spans(n: int, n_labels: int) -> Candidates:
        rows = [(a, a + k + 1, c) for a in range(n) for k in range(min(12, n - a)) for c in range(n_labels)]
        s, e, c = (np.array(x) for x in zip(*rows, strict=True))
        return Candidates(s, e, c, rng.random(len(rows)).astype(np.float32))

    small_case = all_spans(6, 20)
    rows = list(zip(*(x.tolist() for x in (small_case.start, small_case.end, small_case.label)), strict=True))
    rows = [(*r, float(p)) for r, p in zip(rows, small_case.score.astype(np.float64).tolist(), strict=True)]
    for flat in (True, False):
        got = greedy(small_case, 6, flat=flat, multi_label=True)
        assert sorted((x.start, x.end, x.label) for x in got) == sorted(brute_force(rows, flat, True))
    big = all_spans(14, 1000)
    start = time.perf_counter()
    kept = greedy(big, 14, flat=False, multi_label=True)
    assert time.perf_counter() - start < 10, "0.2 s on a quiet machine; it took over a minute"
    assert len(kept) > 1000


# ---------------------------------------------------------------------- the CLI


def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    """``anyner.cli.main(argv)`` in this process: (exit status, stdout, stderr).

    stdout is UTF-8 bytes like a real one, so output that cannot be written would fail here too.
    """
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="\n", write_through=True)
    err = io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8")
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        mock.patch.object(sys, "stdin", fake_stdin),
    ):
        status = cli.main(argv)
    return status, out.buffer.getvalue().decode("utf-8"), err.getvalue()


@contextlib.contextmanager
def cli_model(model: AnyNER):
    """The CLI loads ``model`` instead of reading a folder (the loading is tested once below)."""
    with mock.patch.object(AnyNER, "from_pretrained", lambda *args, **kwargs: model):
        yield


def assert_same_output(got: list[dict], texts_: list[str], want: list[list[Entity]], threshold) -> None:
    """The CLI's JSON records hold the texts as given and the library's entities. (The CLI runs
    --batch-size texts at a time as it reads them, so scores may differ in the last bits.)"""
    assert [r["text"] for r in got] == texts_
    for record, ents in zip(got, want, strict=True):
        assert all(record["text"][e["start"] : e["end"]] == e["text"] for e in record["entities"])
        assert_same([Entity(**e) for e in record["entities"]], ents, threshold)


def expected_cli_labels(arg: str) -> list[str]:
    return [x.strip() for x in arg.split(",") if x.strip()]


CLI_LABELS = st.lists(st.sampled_from(LABEL_WORDS) | st.text(max_size=10), min_size=1, max_size=6).map(
    ",".join
)
CLI_THRESHOLDS = st.sampled_from(["0", "1", "0.5", "0.0", "1.0", "nan", "1.5", "-0.1", "inf"]) | st.floats(
    0, 1
).map(repr)


@pytest.mark.slow
def test_cli_predict_on_arguments(small):
    found = Found("test_cli_predict_on_arguments")

    @fuzz()
    @given(
        texts_=st.lists(texts(surrogates=False), min_size=1, max_size=3),
        labels=CLI_LABELS,
        threshold=CLI_THRESHOLDS,
        fmt=st.sampled_from(["json", "jsonl", "table", "html"]),
        nested=st.booleans(),
        multi_label=st.booleans(),
        batch_size=st.integers(1, 4),
    )
    @example(
        texts_=["Bill Gates founded Microsoft.", "", "-x", "--labels"], labels="person,,date, person",
        threshold="0.5", fmt="json", nested=False, multi_label=False, batch_size=2,
    )  # fmt: skip
    @found.counted
    def check(texts_, labels, threshold, fmt, nested, multi_label, batch_size):
        argv = ["predict", f"--labels={labels}", f"--threshold={threshold}", f"--format={fmt}"]
        argv += [f"--batch-size={batch_size}"] + ["--nested"] * nested + ["--multi-label"] * multi_label
        status, out, err = run_cli([*argv, "--", *texts_])
        names = expected_cli_labels(labels)
        th = float(threshold)
        if not names or label_error(names) or not 0 <= th <= 1:
            # (stdout may hold the start of the output: the CLI streams, and the labels are
            # checked by the first batch)
            assert status == 2 and err.startswith("anyner: error: "), (status, err)
            return
        assert status == 0, err
        want = small.predict_batch(
            texts_, names, batch_size=batch_size, threshold=th, flat=not nested, multi_label=multi_label
        )
        if fmt in ("json", "jsonl"):
            # JSONL lines end at "\n" only: a text's U+2028 or U+0085 is written as is
            got = json.loads(out) if fmt == "json" else [json.loads(x) for x in out.split("\n")[:-1]]
            assert_same_output(got, texts_, want, th)
        elif fmt == "table":
            for ents in want:
                for e in ents:
                    assert f"[{e.start}:{e.end}]\n" in out
        else:
            assert out.startswith("<!DOCTYPE html>") and "<b>" not in out and "<<ENT>>" not in out
        found.add(want)

    with cli_model(small):
        check()
    found.check()


@pytest.mark.slow
def test_cli_predict_on_jsonl_stdin(small):
    found = Found("test_cli_predict_on_jsonl_stdin")

    @fuzz(0.5)
    @given(texts_=st.lists(texts(surrogates=False), min_size=1, max_size=4), plain=st.booleans())
    @found.counted
    def check(texts_, plain):
        if plain:  # one text per line; a line starting with "{" would be read as JSON
            texts_ = [t for t in texts_ if t.splitlines() == [t] and not t.lstrip().startswith("{")]
            lines = texts_
        else:
            lines = [json.dumps({"text": t, "id": i}) for i, t in enumerate(texts_)]
        status, out, err = run_cli(
            ["predict", "--labels", "person,organization", "--format", "json"], "\n".join(lines)
        )
        assert status == 0, err
        want = small.predict_batch(texts_, ["person", "organization"])
        assert_same_output(json.loads(out), texts_, want, 0.5)
        found.add(want)

    with cli_model(small):
        check()
    found.check()


@pytest.mark.slow
def test_cli_extremes_and_a_real_model_folder(tiny, tmp_path):
    folder = tiny.save_pretrained(tmp_path / "model")
    many = ",".join(f"type {i}" for i in range(1000))
    for text, labels in ((UNICODE_100K, "person,date"), ("Bill Gates founded Microsoft.", many)):
        status, out, err = run_cli(
            ["predict", "--model", str(folder), "--labels", labels, "--format=json", text]
        )
        assert status == 0, err
        (got,) = json.loads(out)
        assert got["text"] == text and got["entities"]
        # the folder loads into anyner's own BERT module: the same entities, scores to float error
        same_entities(got["entities"], tiny.predict(text, labels.split(",")))
    status, out, err = run_cli(["predict", "--model", str(folder), "--labels=<<SEP>>", "a"])
    assert status == 2 and "prompt token" in err


# ---------------------------------------------------------------------- HTTP

try:
    with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 to httpx
        warnings.filterwarnings("ignore", message=".*httpx", category=UserWarning)
        from fastapi.testclient import TestClient

    from anyner.serve import Limits, create_app

    LIMITS = Limits()
except ImportError:  # the library's tests above still run
    TestClient = None
needs_server = pytest.mark.skipif(TestClient is None, reason="the server needs FastAPI and httpx")


@pytest.fixture(scope="module")
def client(small):
    with TestClient(create_app(small, max_wait_ms=0), raise_server_exceptions=False) as c:
        yield c


def post(client, body) -> tuple[int, dict | str]:
    """POST /v1/entities with the body as JSON (ASCII escapes: lone surrogates go through as they would)."""
    content = json.dumps(body, ensure_ascii=True, allow_nan=True).encode()
    r = client.post("/v1/entities", content=content, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.status_code, r.json()


def jsonable(threshold):
    """What a client can send: numpy scalars and fractions become strings (which are refused)."""
    if isinstance(threshold, dict):
        return {k: jsonable(v) for k, v in threshold.items()}
    if isinstance(threshold, (np.generic, Fraction)):
        return str(threshold)
    return threshold


def http_expected_error(body) -> bool:
    texts_ = [body["text"]] if "text" in body else body["texts"]
    labels, threshold = body["labels"], body.get("threshold", 0.5)
    strings = [*texts_, *labels, *(labels.values() if isinstance(labels, dict) else [])]
    if isinstance(threshold, dict):
        strings += list(threshold)
    if any("\ud800" <= c <= "\udfff" for s in strings for c in s):
        return True  # not Unicode text: refused before anything else
    numbers = threshold.values() if isinstance(threshold, dict) else [threshold]
    if not all(isinstance(v, (int, float)) and number_ok(v) for v in numbers):
        return True  # HTTP thresholds are JSON numbers in [0, 1], checked before anything runs
    if len(labels) > LIMITS.max_labels or any(
        len(s) > LIMITS.max_label_chars for s in strings[len(texts_) :]
    ):
        return True
    return label_error(labels) or not threshold_ok(threshold, names_of(labels))


@pytest.mark.slow
@needs_server
def test_http_properties(client, small):
    found = Found("test_http_properties")

    @fuzz()
    @given(
        texts_=st.lists(texts(), max_size=4),
        single=st.booleans(),
        lt=labels_and_threshold(STR_LABELS),
        flat=st.sampled_from([{}, {"flat": True}, {"flat": False}, {"nested": True}, {"nested": False}]),
        multi_label=st.booleans(),
        html=st.booleans(),
    )
    @example(
        texts_=["Bill Gates founded Microsoft."], single=True, lt=(["person", "person", "[SEP]"], 0),
        flat={}, multi_label=False, html=True,
    )  # fmt: skip
    @example(texts_=["a \ud800"], single=True, lt=(["person"], 0.5), flat={}, multi_label=False, html=False)
    @example(
        texts_=[], single=False, lt=([], 0), flat={}, multi_label=False, html=False
    )  # empty batch, no labels
    @found.counted
    def check(texts_, single, lt, flat, multi_label, html):
        labels, threshold = lt
        single = single and len(texts_) == 1
        body = {"labels": labels, "threshold": threshold, **flat, "multi_label": multi_label, "html": html}
        body.update({"text": texts_[0]} if single else {"texts": texts_})
        if isinstance(threshold, dict) and not all(isinstance(k, str) for k in threshold):
            return  # JSON object keys are strings
        body["threshold"] = threshold = jsonable(threshold)
        status, got = post(client, body)
        if http_expected_error(body):
            assert status == 422, got
            assert got["detail"]
            return
        assert status == 200, got
        nested = flat.get("nested", not flat.get("flat", True))
        args = dict(threshold=threshold, flat=not nested, multi_label=multi_label)
        want = small.predict_batch(texts_, labels, **args) if texts_ else []
        results = [got] if single else got["results"]
        assert [r["entities"] for r in results] == [[e.to_dict() for e in ents] for ents in want]
        assert all(("html" in r) == html and ("table" in r) == html for r in results)
        found.add(want)

    check()
    found.check()


@pytest.mark.slow
@needs_server
def test_http_100k_text_and_1000_labels(tiny):
    limits = Limits(max_text_chars=100_000, max_labels=1000, max_body_bytes=4_000_000)
    labels = [f"type {i}" for i in range(1000)]
    with TestClient(create_app(tiny, limits=limits), raise_server_exceptions=False) as c:
        status, got = post(c, {"text": UNICODE_100K, "labels": ["person", "date"]})
        assert status == 200 and got["entities"]
        assert all(UNICODE_100K[e["start"] : e["end"]] == e["text"] for e in got["entities"])
        status, got = post(
            c, {"text": "Bill Gates founded Microsoft.", "labels": labels, "multi_label": True}
        )
        assert status == 200 and {e["label"] for e in got["entities"]} <= set(labels)


@needs_server
@pytest.mark.parametrize(
    "body, needle",
    [
        ({"text": "a \ud800 b", "labels": ["person"]}, "lone surrogate"),
        ({"texts": ["ok", "\udcff"], "labels": ["person"]}, "texts[1] holds a lone surrogate"),
        ({"text": "a", "labels": {"person": "\ud800"}}, "description of labels[0]"),
        ({"text": "a", "labels": ["person"], "threshold": {"\ud800": 0.5}}, "lone surrogate"),
        ({"text": "a", "labels": ["\udc00"], "unknown": "\udc00"}, "extra"),  # echoed input
        ({"text": "a", "labels": ["person"], "threshold": math.nan}, "finite"),
        ({"text": "a", "labels": ["person"], "threshold": {"person": math.inf}}, "finite"),
        ({"text": "a", "labels": ["person"], "threshold": True}, "valid number"),
        ({"text": "a", "labels": ["person"], "threshold": "0.5"}, "valid number"),
    ],
)
def test_http_odd_json_gets_422_not_500(client, body, needle):
    """Bugs: lone surrogates (JSON "\\ud800") in a text or label made the answer unwritable (500);
    NaN or Infinity in a threshold made the 422 answer unwritable (500); `true` and "0.5" were
    taken as thresholds, which the library refuses."""
    status, got = post(client, body)
    assert status == 422, got
    assert needle in json.dumps(got)


# ---------------------------------------------------------------------- relation extraction

RELATION_WORDS = [
    "works for", "located in", "part of", "founded", "person", "organization", "<<REL>>", "a <<REL>> b",
    "<<SEP>> x", "<<ENT>>", "", " ", "\t", "東京", "x,y", "😀", "e\u0301",
]  # fmt: skip
GOOD_RELATIONS = ["works for", "located in", "part of", "founded", "born in", "東京", "x,y", "e\u0301"]
RELATION_SETS = st.one_of(
    st.lists(st.sampled_from(GOOD_RELATIONS), min_size=1, max_size=5),  # valid (duplicates collapse)
    st.lists(st.sampled_from(GOOD_RELATIONS), min_size=1, max_size=5),  # (listed twice: drawn twice as often)
    st.dictionaries(st.sampled_from(GOOD_RELATIONS), st.sampled_from(GOOD_RELATIONS), min_size=1, max_size=3),
    st.lists(st.sampled_from(RELATION_WORDS) | st.text(max_size=10), max_size=6),  # anything
    st.dictionaries(st.sampled_from(RELATION_WORDS), st.sampled_from(RELATION_WORDS), max_size=4),
    st.sampled_from(["works for", None, 3, [1], [None], {"a": 1}, b"ab"]),
    st.just([f"relation number {i}" for i in range(3000)]),  # far more than one prompt holds
)
SENTENCES = [
    "Bill Gates founded Microsoft in Albuquerque, New Mexico, on April 4, 1975.",
    "Angela Merkel met Emmanuel Macron in Paris to discuss the European Union budget.",
    "Apple hired Tim Cook from Compaq , and he later ran the company from Cupertino .",
]


def relation_error(relations, labels) -> bool:
    """Whether ``relations`` is invalid beside valid ``labels``, by the documented rules."""
    if isinstance(relations, (str, bytes)) or not isinstance(relations, (Sequence, Mapping)):
        return True
    pairs = list(relations.items()) if isinstance(relations, Mapping) else [(x, x) for x in relations]
    if not pairs:
        return True
    for value in (v for pair in pairs for v in pair):
        if not isinstance(value, str) or not value.strip():
            return True
        if any(tok in value for tok in ("<<ENT>>", "<<SEP>>", "<<REL>>")):
            return True
    return bool(set(names_of(relations)) & set(names_of(labels)))


@pytest.mark.slow
def test_predict_relations_properties(relex_dot):
    """predict_relations (nested entities) on arbitrary texts and relation sets (empty, blank,
    holding prompt tokens, named as a label, 3,000 of them, wrongly typed): a ValueError or TypeError exactly when the
    relations are invalid (or too many for one prompt, which the message says), else entities as
    predict checks them and relations between two different returned entities, with a name that
    was asked for and a score above the relation threshold; fewer than two entities, no relation."""
    model = AnyNER.from_pretrained(relex_dot)
    found = Found("test_predict_relations_properties")
    labels = ["person", "organization", "location"]

    @fuzz(0.2)
    @given(
        text=st.sampled_from(SENTENCES) | texts(surrogates=False),
        relations=RELATION_SETS,
        threshold=st.sampled_from([0.3, 0.5, 0.7, 1.0]),
    )
    @example(text=SENTENCES[0], relations=["founded", "located in"], threshold=0.3)
    @example(text=SENTENCES[1], relations={"met": "met with", "located in": "is in"}, threshold=0.3)
    @example(text="Bill Gates founded Microsoft in Albuquerque.", relations=["founded"], threshold=0.5)
    @example(text="Paris", relations=["located in"], threshold=0.0)
    @example(text="", relations=["founded"], threshold=0.5)
    @found.counted
    def check(text, relations, threshold):
        try:
            ents, rels = model.predict_relations(
                text,
                labels,
                relations,
                threshold=threshold,
                relation_threshold=0.1,
                adjacency_threshold=0.1,
                flat=False,
            )  # a random head: nested entities and low relation thresholds, so that relations are found
        except (ValueError, TypeError) as e:
            event("invalid arguments")
            assert relation_error(relations, labels) or "subwords" in str(e), (relations, e)
            return
        assert not relation_error(relations, labels), relations
        check_entities(text, ents, labels, threshold, False, False, split=True)
        names = names_of(relations)
        for r in rels:
            assert r.head_index != r.tail_index
            assert ents[r.head_index] is r.head and ents[r.tail_index] is r.tail
            assert r.label in names and 0.1 < r.score <= 1.0
        if len(ents) < 2:
            assert rels == []
        found.add([ents])
        n_relations.append(len(rels))

    n_relations: list[int] = []
    check()
    found.check()
    print(f"{sum(n_relations)} relations")
    assert sum(n_relations) > 0, "no relation in any valid case: the property asserted little"
