"""Text -> words, with character offsets.

The default pattern is the one public GLiNER checkpoints were trained with (their
``whitespace`` splitter): a run of word characters, optionally joined by ``-`` or
``_``, or any single non-space character. Using the same pattern is what makes a
public checkpoint see the same words here as in the reference package.

A checkpoint may name another splitter in ``words_splitter_type`` (GLiNER's names):
``spacy`` (spaCy's blank English tokenizer), ``jieba`` (Chinese, the ``jieba3``
package), ``janome`` (Japanese), ``mecab`` (Korean, ``python-mecab-ko``), ``camel``
(Arabic, ``camel-tools``), ``hindi`` (``indic-nlp-library``), ``stanza`` and ``universal``
(the language detected with ``langdetect``, then that language's splitter). Each needs
its package, an optional extra; a missing one raises ImportError naming the extra.
The words are the reference's: the same tokens at the same offsets.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from functools import cache

from anyner.types import Word

WORD_PATTERN = re.compile(r"\w+(?:[-_]\w+)*|\S")

# splitter name -> (module to import, the pip package, the anyner extra)
_NEEDS = {
    "spacy": ("spacy", "spacy", "spacy"),
    "jieba": ("jieba3", "jieba3", "chinese"),
    "janome": ("janome", "janome", "japanese"),
    "mecab": ("mecab", "python-mecab-ko", "korean"),
    "camel": ("camel_tools", "camel-tools", "arabic"),
    "hindi": ("indicnlp", "indic-nlp-library", "hindi"),
    "stanza": ("stanza", "stanza", "stanza"),
    "universal": ("langdetect", "langdetect", "universal"),
}
SUPPORTED_SPLITTERS = ("whitespace", *_NEEDS)

Splitter = Callable[[str], list[Word]]


def split_words(text: str) -> list[Word]:
    """Split ``text`` into words with half-open character offsets (GLiNER's default splitter).

    Example:
        >>> [w.text for w in split_words("Hello, world!")]
        ['Hello', ',', 'world', '!']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return [Word(m.group(), m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]


def word_span(starts: Sequence[int], ends: Sequence[int], start: int, end: int) -> tuple[int, int] | None:
    """The words that the characters ``[start, end)`` touch, as a half-open word range.

    ``starts`` and ``ends`` are the words' character offsets, in order (``Word.start`` and
    ``Word.end``). A span that cuts into a word is widened to the whole word; None when the
    span is empty or touches no word (it lies in the space between two).

    Example:
        >>> words = split_words("New York City")
        >>> word_span([w.start for w in words], [w.end for w in words], 4, 10)
        (1, 3)
    """
    first = bisect_right(ends, start)
    last = bisect_left(starts, end) - 1
    return (first, last + 1) if end > start and first <= last else None


def get_splitter(name: str | None) -> Splitter:
    """The splitter GLiNER calls ``name`` (None: the default).

    Raises:
        ValueError: an unknown name.
        ImportError: the splitter's package is not installed (the message names the extra).
    """
    if name in (None, "whitespace"):
        return split_words
    if name not in _NEEDS:
        raise ValueError(f"words_splitter_type={name!r} is not one of {', '.join(SUPPORTED_SPLITTERS)}")
    return _make(name)


@cache
def _make(name: str) -> Splitter:
    import importlib

    module, package, extra = _NEEDS[name]
    try:
        importlib.import_module(module)
        tokens = _TOKENIZERS[name]()
    except ImportError as e:
        raise ImportError(
            f"words_splitter_type={name!r} needs the {package} package: pip install 'anyner[{extra}]'"
        ) from e
    return lambda text: _checked(text, tokens)


def _checked(text: str, tokens: Callable[[str], list[Word]]) -> list[Word]:
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return tokens(text)


def _located(text: str, pieces: Iterable[str]) -> list[Word]:
    """Words of a tokenizer that returns strings: each found after the previous one, as GLiNER
    finds them (a piece not found in the text is dropped rather than given offset -1)."""
    out, last = [], 0
    for piece in pieces:
        start = text.find(piece, last)
        if start < 0 or not piece:
            continue
        last = start + len(piece)
        out.append(Word(piece, start, last))
    return out


def _spacy(lang: str = "en") -> Callable[[str], list[Word]]:
    import spacy

    nlp = spacy.blank(lang)
    return lambda text: [Word(t.text, t.idx, t.idx + len(t.text)) for t in nlp(text)]


def _jieba() -> Callable[[str], list[Word]]:
    import jieba3

    tagger = jieba3.jieba3()
    return lambda text: _located(text, tagger.cut_text(text))


def _janome() -> Callable[[str], list[Word]]:
    from janome.tokenizer import Tokenizer

    tok = Tokenizer()
    return lambda text: _located(text, tok.tokenize(text, wakati=True))


def _mecab() -> Callable[[str], list[Word]]:
    import mecab

    tagger = mecab.MeCab()
    return lambda text: _located(text, tagger.morphs(text))


def _camel() -> Callable[[str], list[Word]]:
    from camel_tools.tokenizers.word import simple_word_tokenize

    return lambda text: _located(text, simple_word_tokenize(text))


def _hindi() -> Callable[[str], list[Word]]:
    from indicnlp.tokenize import indic_tokenize

    return lambda text: _located(text, indic_tokenize.trivial_tokenize(text, lang="hi"))


def _stanza() -> Callable[[str], list[Word]]:
    import stanza
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0
    pipelines: dict[str, object] = {}

    def pipeline(lang: str):
        if lang not in pipelines:
            try:
                pipelines[lang] = stanza.Pipeline(lang=lang, processors="tokenize", verbose=False)
            except Exception as e:  # stanza downloads its models on first use
                raise OSError(
                    f"stanza has no tokenizer model for {lang!r} here and could not download one ({e}); "
                    f"run stanza.download({lang!r}) where there is a network"
                ) from e
        return pipelines[lang]

    def split(text: str) -> list[Word]:
        try:
            lang = detect(text)
        except LangDetectException:
            lang = "en"
        doc = pipeline(lang.split("-")[0])(text)
        return [Word(w.text, w.start_char, w.end_char) for s in doc.sentences for w in s.words]

    return split


def _universal() -> Callable[[str], list[Word]]:
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0
    by_lang = {"ko": "mecab", "ja": "janome", "hi": "hindi", "zh-cn": "jieba", "zh-tw": "jieba", "zh": "jieba",
               "ar": "camel"}  # fmt: skip
    fallback: list[Callable[[str], list[Word]]] = []

    def split(text: str) -> list[Word]:
        try:
            lang = detect(text)
        except LangDetectException:
            lang = "unknown"
        if lang in by_lang:
            return _make(by_lang[lang])(text)  # built on first use: only the languages seen need packages
        if not fallback:
            try:
                fallback.append(_spacy("xx"))  # the reference's universal fallback
            except ImportError as e:
                raise ImportError(
                    "words_splitter_type='universal' needs spacy: pip install 'anyner[spacy]'"
                ) from e
        return fallback[0](text)

    return split


_TOKENIZERS: dict[str, Callable[[], Callable[[str], list[Word]]]] = {
    "spacy": _spacy, "jieba": _jieba, "janome": _janome, "mecab": _mecab, "camel": _camel,
    "hindi": _hindi, "stanza": _stanza, "universal": _universal,
}  # fmt: skip


__all__ = ["SUPPORTED_SPLITTERS", "WORD_PATTERN", "get_splitter", "split_words", "word_span"]
