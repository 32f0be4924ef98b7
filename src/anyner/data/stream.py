"""Corpora that stay on disk: one pass builds an index of byte offsets, records are read when asked.

A training mix samples records at random from corpora that can be far larger than
memory. ``index_examples`` reads a file once with the ordinary reader (so every
check, skip and report is the same as ``read_examples``), keeps only where each
kept record starts, and returns an ``ExampleIndex``: a sequence whose item ``i``
seeks to the record and parses it again. Memory is a few bytes per record.

JSON-lines and CoNLL-style files are indexed this way. A JSON array has no record
boundary to seek to, so its records are held in memory (convert it to JSON lines
to stream it).
"""

from __future__ import annotations

import io
import itertools
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

from anyner.data.conll import parse_sentence, sentence_blocks
from anyner.data.gliner_json import gliner_record_to_example
from anyner.data.readers import Format, detect_format, iter_examples
from anyner.data.report import OnError, ReadReport, rename_labels
from anyner.types import Example

_BOM = b"\xef\xbb\xbf"


class ExampleIndex(Sequence[Example]):
    """The kept records of one file, read from disk by position.

    Attributes:
        path: the file.
        format: ``"gliner"`` or ``"conll"`` when streamed; any format when in memory.
        labels: span label -> count over the kept records (after the label map).
        streamed: False when the records are held in memory (JSON arrays).
    """

    def __init__(
        self,
        path: str | Path,
        format: Format,
        label_map: dict[str, str] | None,
        labels: Counter[str],
        offsets: np.ndarray | None = None,
        lines: np.ndarray | None = None,
        examples: list[Example] | None = None,
    ) -> None:
        self.path = str(path)
        self.format = format
        self.label_map = label_map
        self.labels = labels
        self._offsets = offsets
        self._lines = lines
        self._examples = examples

    @property
    def streamed(self) -> bool:
        return self._examples is None

    def __len__(self) -> int:
        return len(self._examples) if self._examples is not None else len(self._offsets)

    @overload
    def __getitem__(self, i: int) -> Example: ...
    @overload
    def __getitem__(self, i: slice) -> list[Example]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if self._examples is not None:
            return self._examples[i]
        n = len(self._offsets)
        if not -n <= i < n:
            raise IndexError(f"record {i} is out of range ({n} records)")
        return self._read(int(self._offsets[i]), int(self._lines[i]))

    def _read(self, offset: int, line: int) -> Example:
        with open(self.path, "rb") as raw:
            raw.seek(offset)
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            if self.format == "conll":
                block = next(sentence_blocks(text))
                example = parse_sentence([(n + line - 1, s) for n, s in block], self.path)
            else:
                where = f"{self.path}:{line}"
                example = gliner_record_to_example(json.loads(text.readline()), where, Counter())
        if self.label_map is not None:
            example = rename_labels(example, self.label_map, ReadReport(self.path))
        return example


def _line_starts(path: str | Path) -> np.ndarray:
    """Byte offset of every line, split where the readers split (``\\n``, ``\\r\\n`` or ``\\r``)."""
    with open(path, "rb") as raw:
        bom = raw.read(3) == _BOM
    starts = []
    position = len(_BOM) if bom else 0
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for line in handle:
            starts.append(position)
            position += len(line.encode("utf-8"))
    return np.asarray(starts, dtype=np.int64)


def _line_of(example: Example) -> int:
    """The first line of a record, from the ``path:line`` the readers put in ``source``."""
    return int(example.source.rsplit(":", 1)[1])


def _is_json_array(path: str | Path) -> bool:
    with open(path, encoding="utf-8-sig") as handle:
        return handle.read(4096).lstrip().startswith("[")


def index_examples(
    path: str | Path,
    *,
    format: Format | None = None,
    label_map: dict[str, str] | None = None,
    on_error: OnError = "raise",
    limit: int | None = None,
    keep: Callable[[Example], bool] | None = None,
) -> tuple[ExampleIndex, ReadReport]:
    """Index the records of a file for reading by position, with the read report.

    Args:
        path, format, label_map, on_error, limit: as for ``read_examples``.
        keep: called on every record read, in file order; records it refuses are
            left out of the index (and counted in the report as ``"not kept"``).

    Returns:
        ``(index, report)``: ``index[i]`` equals the i-th record ``read_examples``
        would give (among those ``keep`` accepts).
    """
    if format is None:
        format = detect_format(path)
    report = ReadReport(str(path))
    records: Iterator[Example] = iter_examples(
        path, format=format, label_map=label_map, on_error=on_error, report=report
    )
    labels: Counter[str] = Counter()
    streamed = format == "conll" or (format == "gliner" and not _is_json_array(path))
    kept_lines: list[int] = []
    kept_examples: list[Example] = []
    for example in itertools.islice(records, limit):
        if keep is not None and not keep(example):
            report.read -= 1
            report.skip("not kept")
            continue
        labels.update(span.label for span in example.spans)
        if streamed:
            kept_lines.append(_line_of(example))
        else:
            kept_examples.append(example)
    if not streamed:
        return ExampleIndex(path, format, label_map, labels, examples=kept_examples), report
    lines = np.asarray(kept_lines, dtype=np.int32)
    offsets = _line_starts(path)[lines - 1] if len(lines) else np.zeros(0, dtype=np.int64)
    return ExampleIndex(path, format, label_map, labels, offsets=offsets, lines=lines), report
