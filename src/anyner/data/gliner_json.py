"""GLiNER training records: ``{"tokenized_text": [...], "ner": [[start, end, label], ...]}``.

Word indices in ``ner`` are inclusive at both ends; they become half-open spans.
Other keys (``intent``, ``doc``, ...) are ignored. Nested spans and one span with
several labels are kept; only exact repeats are dropped, and counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from anyner.data.jsonfiles import is_json_int, iter_json_examples
from anyner.data.report import OnError, ReadError, ReadReport, unique_spans
from anyner.types import Example, Span


def gliner_record_to_example(value: Any, where: str, notes: Counter[str]) -> Example | None:
    """Turn one GLiNER record into an ``Example``; None for a record with no words.

    Raises:
        ReadError: the record is malformed or a span is out of range.
    """
    if not isinstance(value, dict):
        raise ReadError(where, "bad record", f"expected an object, got {type(value).__name__}")
    words = value.get("tokenized_text")
    if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
        raise ReadError(where, "bad record", "'tokenized_text' must be a list of strings")
    ner = value.get("ner")
    if not isinstance(ner, list):
        raise ReadError(where, "bad record", "'ner' must be a list of [start, end, label]")
    if not words and not ner:
        return None
    spans: list[Span] = []
    for item in ner:
        if not (
            isinstance(item, list | tuple)
            and len(item) == 3
            and is_json_int(item[0])
            and is_json_int(item[1])
        ):
            raise ReadError(
                where, "bad span", f"expected [start, end, label] with integer indices, got {item!r}"
            )
        start, end, label = item
        if not isinstance(label, str) or not label.strip():
            raise ReadError(
                where, "bad label", f"label must be a non-empty string, got {label!r} in {item!r}"
            )
        if end < start:
            raise ReadError(where, "bad span", f"span {item!r} ends before it starts")
        if start < 0 or end >= len(words):
            raise ReadError(
                where,
                "span out of range",
                f"span {item!r} is outside the {len(words)} words (indices are inclusive)",
            )
        spans.append(Span(start, end + 1, label))
    return Example(words=words, spans=unique_spans(spans, notes), source=where)


def iter_gliner_json(
    path: str | Path,
    *,
    on_error: OnError = "raise",
    report: ReadReport | None = None,
) -> Iterator[Example]:
    """Stream the records of a GLiNER ``.json`` (array) or ``.jsonl`` (one a line) file.

    Args:
        path: the file.
        on_error: ``"raise"`` a ``ReadError`` (a ``ValueError`` naming ``path:line``)
            on a malformed record, or ``"skip"`` it and count it. Records with no
            words are always skipped and counted as ``"empty record"``.
        report: filled in as records are read; pass one to see the counts.
    """
    return iter_json_examples(path, gliner_record_to_example, on_error=on_error, report=report)
