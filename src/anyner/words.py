"""Text -> words, with character offsets.

The pattern is the one public GLiNER checkpoints were trained with (their
``whitespace`` splitter): a run of word characters, optionally joined by ``-`` or
``_``, or any single non-space character. Using the same pattern is what makes a
public checkpoint see the same words here as in the reference package.
"""

from __future__ import annotations

import re

from anyner.types import Word

WORD_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")

SUPPORTED_SPLITTERS = ("whitespace",)


def split_words(text: str) -> list[Word]:
    """Split ``text`` into words with half-open character offsets.

    Example:
        >>> [w.text for w in split_words("Hello, world!")]
        ['Hello', ',', 'world', '!']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [Word(m.group(), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]
