"""Word splitting and offsets on hard text."""

from __future__ import annotations

import re

import pytest

from anyner.words import split_words

GLINER_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")


@pytest.mark.parametrize(
    "text, words",
    [
        ("Hello, world!", ["Hello", ",", "world", "!"]),
        ("state-of-the-art snake_case", ["state-of-the-art", "snake_case"]),
        ("...!!?", [".", ".", ".", "!", "!", "?"]),
        ("a\tb\nc\r\nd", ["a", "b", "c", "d"]),
        ("naïve café — Zürich", ["naïve", "café", "—", "Zürich"]),
        ("東京タワーに行った", ["東京タワーに行った"]),
        ("I ❤️ NY 🗽!", ["I", "❤", "️", "NY", "🗽", "!"]),
        ("e\u0301te\u0301", ["e", "\u0301", "te", "\u0301"]),
        ("  ", []),
        ("", []),
        ("U.S.A. $5,000", ["U", ".", "S", ".", "A", ".", "$", "5", ",", "000"]),
        ("zero\u200bwidth", ["zero", "\u200b", "width"]),
    ],
)
def test_split_words(text, words):
    assert [w.text for w in split_words(text)] == words


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!",
        "a\tb\nc",
        "東京 and Zürich 🗽 e\u0301",
        "مرحبا بالعالم",
        "x" * 1000,
        "\x00a\x01b",
        "--a--",
    ],
)
def test_offsets_slice_back_and_match_gliner(text):
    words = split_words(text)
    for w in words:
        assert text[w.start : w.end] == w.text
    assert [(w.text, w.start, w.end) for w in words] == [
        (m.group(), m.start(), m.end()) for m in GLINER_PATTERN.finditer(text)
    ]
    assert all(a.end <= b.start for a, b in zip(words, words[1:], strict=False))


def test_rejects_non_strings():
    with pytest.raises(TypeError):
        split_words(None)  # type: ignore[arg-type]
