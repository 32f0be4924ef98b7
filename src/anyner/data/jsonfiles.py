"""JSON records one at a time, from a JSON array file or a JSON-lines file.

Which of the two a file is comes from its content, not its name: a file whose
first non-blank character is ``[`` is an array, anything else is JSON lines.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from anyner.data.report import OnError, ReadError, ReadReport, check_on_error
from anyner.types import Example

_SPACE = re.compile(r"\s*")


class JsonRecord(NamedTuple):
    """One record: where it is, its value, and why it failed to parse (or None)."""

    where: str
    value: Any
    error: str | None


def is_json_int(value: Any) -> bool:
    """Whether ``value`` is a JSON integer (``true``/``false`` load as bool, an int subclass)."""
    return isinstance(value, int) and not isinstance(value, bool)


def iter_json_records(path: str | Path) -> Iterator[JsonRecord]:
    """Yield the records of a JSON array or JSON-lines file with their ``path:line``.

    A JSON-lines line that is not valid JSON comes back with ``error`` set, so the
    caller can skip it. An array has no record boundary to resume from after bad
    JSON, so there the error is raised.

    Raises:
        ReadError: the file is an array and is not valid JSON.
    """
    source = str(path)
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        head = handle.read(4096)
        if head.lstrip().startswith("["):
            yield from _iter_array(head + handle.read(), source)
            return
        handle.seek(0)
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{source}:{number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield JsonRecord(where, None, f"invalid JSON: {err.msg} at column {err.colno}")
                continue
            yield JsonRecord(where, value, None)


Converter = Callable[[Any, str, Counter[str]], Example | None]


def iter_json_examples(
    path: str | Path, convert: Converter, *, on_error: OnError, report: ReadReport | None
) -> Iterator[Example]:
    """Stream ``convert(value, where, notes)`` over the records of a JSON file.

    ``convert`` returns None for a record with nothing to read (always skipped as
    ``"empty record"``) and raises ``ReadError`` for a malformed one. Its notes
    count only when the record is kept.
    """
    check_on_error(on_error)
    return _convert_records(path, convert, on_error, report if report is not None else ReadReport(str(path)))


def _convert_records(
    path: str | Path, convert: Converter, on_error: OnError, report: ReadReport
) -> Iterator[Example]:
    for record in iter_json_records(path):
        notes: Counter[str] = Counter()
        try:
            if record.error is not None:
                raise ReadError(record.where, "bad json", record.error)
            example = convert(record.value, record.where, notes)
        except ReadError as err:
            report.fail(err, on_error)
            continue
        if example is None:
            report.skip("empty record")
            continue
        report.notes.update(notes)
        report.read += 1
        yield example


def _iter_array(text: str, source: str) -> Iterator[JsonRecord]:
    decoder = json.JSONDecoder()
    pos = _SPACE.match(text, text.index("[") + 1).end()
    if text.startswith("]", pos):
        _expect_end(text, pos + 1, source)
        return
    line, counted, index = 1, 0, 0
    while True:
        line += text.count("\n", counted, pos)
        counted, index = pos, index + 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise ReadError(
                f"{source}:{err.lineno}", "bad json", f"invalid JSON: {err.msg} at column {err.colno}"
            ) from None
        yield JsonRecord(f"{source}:{line} [record {index}]", value, None)
        pos = _SPACE.match(text, pos).end()
        if text.startswith(",", pos):
            pos = _SPACE.match(text, pos + 1).end()
        elif text.startswith("]", pos):
            _expect_end(text, pos + 1, source)
            return
        else:
            line += text.count("\n", counted, pos)
            raise ReadError(
                f"{source}:{line}", "bad json", "invalid JSON: expected ',' or ']' after a record"
            )


def _expect_end(text: str, pos: int, source: str) -> None:
    if text[pos:].strip():
        line = text.count("\n", 0, pos) + 1
        raise ReadError(f"{source}:{line}", "bad json", "invalid JSON: extra data after the closing ']'")
