"""Benchmark folders: ``<split>.json`` records with character spans, plus ``labels.json``.

A record is ``{"sentence": str, "entities": [{"name", "type", "pos": [start, end)}]}``
with half-open character offsets. The sentence is split with ``split_words`` and
each character span becomes the words it touches; a span that does not start at
a word start and end at a word end is widened to whole words and counted in the
report's ``notes["widened"]``.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from anyner.data.jsonfiles import is_json_int, iter_json_examples
from anyner.data.report import OnError, ReadError, ReadReport, unique_spans
from anyner.types import Example, Span
from anyner.words import split_words

LABELS_FILE = "labels.json"


def benchmark_record_to_example(value: Any, where: str, notes: Counter[str]) -> Example | None:
    """Turn one benchmark record into an ``Example`` with ``text`` set; None for a blank sentence.

    Raises:
        ReadError: the record is malformed or a span lies outside the sentence.
    """
    if not isinstance(value, dict) or not isinstance(value.get("sentence"), str):
        raise ReadError(where, "bad record", "expected an object with a 'sentence' string")
    entities = value.get("entities")
    if not isinstance(entities, list):
        raise ReadError(where, "bad record", "'entities' must be a list")
    sentence: str = value["sentence"]
    words = split_words(sentence)
    if not words and not entities:
        return None
    starts = [word.start for word in words]
    ends = [word.end for word in words]
    spans: list[Span] = []
    for entity in entities:
        pos = entity.get("pos") if isinstance(entity, dict) else None
        if not (
            isinstance(pos, list | tuple) and len(pos) == 2 and is_json_int(pos[0]) and is_json_int(pos[1])
        ):
            raise ReadError(where, "bad span", f"expected an entity with 'pos': [start, end], got {entity!r}")
        label = entity.get("type")
        if not isinstance(label, str) or not label.strip():
            raise ReadError(where, "bad label", f"'type' must be a non-empty string in {entity!r}")
        start, end = pos
        if end <= start:
            raise ReadError(where, "bad span", f"character span {pos!r} is empty or ends before it starts")
        if start < 0 or end > len(sentence):
            raise ReadError(
                where,
                "span out of range",
                f"character span {pos!r} is outside the {len(sentence)} characters",
            )
        first = bisect_right(ends, start)  # first word ending after the span starts
        last = bisect_left(starts, end) - 1  # last word starting before the span ends
        if first > last:
            raise ReadError(where, "span out of range", f"character span {pos!r} covers no word")
        if starts[first] != start or ends[last] != end:
            notes["widened"] += 1
        if "name" in entity and entity["name"] != sentence[start:end]:
            notes["name differs from text"] += 1
        spans.append(Span(first, last + 1, label))
    return Example(
        words=[word.text for word in words], spans=unique_spans(spans, notes), text=sentence, source=where
    )


def iter_benchmark(
    path: str | Path,
    *,
    on_error: OnError = "raise",
    report: ReadReport | None = None,
) -> Iterator[Example]:
    """Stream the records of one benchmark split file (e.g. ``test.json``).

    Args:
        path: the split file.
        on_error: ``"raise"`` a ``ReadError`` (a ``ValueError`` naming ``path:line``)
            on a malformed record, or ``"skip"`` it and count it. Records whose
            sentence has no words are always skipped as ``"empty record"``.
        report: filled in as records are read; pass one to see the counts.
    """
    return iter_json_examples(path, benchmark_record_to_example, on_error=on_error, report=report)


def read_benchmark_labels(folder: str | Path) -> list[str]:
    """The label names of a benchmark folder, from its ``labels.json``.

    Raises:
        FileNotFoundError: the folder has no ``labels.json``.
        ValueError: the file is not a JSON list of non-empty strings.
    """
    path = Path(folder) / LABELS_FILE
    with open(path, encoding="utf-8-sig") as handle:
        try:
            labels = json.load(handle)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(labels, list) or not all(isinstance(label, str) and label.strip() for label in labels):
        raise ValueError(f"{path}: expected a JSON list of non-empty label names")
    return labels
