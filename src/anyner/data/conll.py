"""CoNLL-style files: one token a line, the tag in the last column.

Columns are tab separated when a line holds a tab, else separated by runs of
spaces; middle columns (POS tags, ``_`` placeholders) are ignored. A blank line,
a ``-DOCSTART-`` line or a comment line ends a sentence. Tags may follow BIO/IOB2,
IOB1 (a span may start with ``I-``), IO or BIOES (``E-``, ``S-``/``U-``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from anyner.data.report import OnError, ReadError, ReadReport, check_on_error
from anyner.types import Example, Span

TAG_PATTERN = re.compile(r"([BIESU])-(\S.*)")

_Line = tuple[int, str]


def parse_tag(tag: str) -> tuple[str, str] | None:
    """Split a tag into (prefix, label); None for ``O``.

    Raises:
        ValueError: ``tag`` is neither ``O`` nor ``[BIESU]-label``.
    """
    if tag == "O":
        return None
    match = TAG_PATTERN.fullmatch(tag)
    if match is None:
        raise ValueError(f"bad tag {tag!r}: expected 'O' or one of B-, I-, E-, S-, U- and a label")
    return match.group(1), match.group(2)


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """Decode a sentence's tags into half-open word spans.

    An ``I-X`` that does not continue an open ``X`` span starts a new one (IOB1),
    so BIO, IOB1, IO and BIOES tags all decode with one rule set.

    Example:
        >>> tags_to_spans(["I-PER", "I-PER", "O", "B-LOC", "I-ORG"])
        [Span(start=0, end=2, label='PER'), Span(start=3, end=4, label='LOC'), Span(start=4, end=5, label='ORG')]

    Raises:
        ValueError: a tag is neither ``O`` nor ``[BIESU]-label``.
    """
    return _decode([parse_tag(tag) for tag in tags])


def _decode(parsed: Sequence[tuple[str, str] | None]) -> list[Span]:
    spans: list[Span] = []
    open_start, open_label = -1, ""
    for index, item in enumerate(parsed):
        prefix, label = item if item is not None else ("O", "")
        continues = open_start >= 0 and label == open_label and prefix in ("I", "E")
        if open_start >= 0 and not continues:
            spans.append(Span(open_start, index, open_label))
            open_start = -1
        if prefix == "O":
            continue
        if prefix in ("S", "U") or (prefix == "E" and not continues):
            spans.append(Span(index, index + 1, label))
        elif prefix == "E":
            spans.append(Span(open_start, index + 1, label))
            open_start = -1
        elif not continues:
            open_start, open_label = index, label
    if open_start >= 0:
        spans.append(Span(open_start, len(parsed), open_label))
    return spans


def _is_tag(field: str) -> bool:
    return field == "O" or TAG_PATTERN.fullmatch(field) is not None


def _is_header(fields: list[str]) -> bool:
    """A ``-DOCSTART-`` line or a comment such as MultiCoNER's ``# id <uuid> domain=en``.

    ``#`` is also a real token (``#<TAB>O``), so a line starting with a lone ``#``
    is a comment only when its last column is not a tag.
    """
    if fields[0] == "-DOCSTART-":
        return True
    return fields[0] == "#" and (len(fields) == 1 or not _is_tag(fields[-1]))


def _columns(line: str) -> list[str]:
    if "\t" in line:
        return [field.strip() for field in line.split("\t")]
    return line.split()


def sentence_blocks(lines: Iterator[str]) -> Iterator[list[_Line]]:
    """Group token lines into sentences, dropping headers and comments.

    An empty list stands for a ``# id`` header with no token line after it: a
    record of the source with no words, which the caller counts.
    """
    block: list[_Line] = []
    header_open = False  # a "# id" header seen, and no token line since
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip()
        fields = line.split()
        if fields and not _is_header(fields):
            block.append((number, line))
            header_open = False
            continue
        if block:
            yield block
            block = []
        if len(fields) > 1 and fields[0] == "#" and fields[1] == "id":
            if header_open:
                yield []
            header_open = True
    if block:
        yield block
    elif header_open:
        yield []


def parse_sentence(block: list[_Line], source: str) -> Example:
    words: list[str] = []
    parsed: list[tuple[str, str] | None] = []
    for number, line in block:
        fields = _columns(line)
        where = f"{source}:{number}"
        if len(fields) < 2:
            raise ReadError(where, "missing tag", f"expected a token and a tag, got {line!r}")
        if not fields[0]:
            raise ReadError(where, "empty token", f"empty token in {line!r}")
        try:
            parsed.append(parse_tag(fields[-1]))
        except ValueError as err:
            raise ReadError(where, "bad tag", str(err)) from None
        words.append(fields[0])
    return Example(words=words, spans=_decode(parsed), source=f"{source}:{block[0][0]}")


def iter_conll(
    path: str | Path,
    *,
    on_error: OnError = "raise",
    report: ReadReport | None = None,
) -> Iterator[Example]:
    """Stream the sentences of a CoNLL-style file.

    Args:
        path: the file.
        on_error: ``"raise"`` a ``ReadError`` (a ``ValueError`` naming ``path:line``)
            on a malformed line, or ``"skip"`` the sentence holding it and count it.
        report: filled in as records are read; pass one to see the counts.

    Yields:
        One ``Example`` per sentence, spans in order of their first word.
    """
    check_on_error(on_error)
    return _iter_conll(path, on_error, report if report is not None else ReadReport(str(path)))


def _iter_conll(path: str | Path, on_error: OnError, report: ReadReport) -> Iterator[Example]:
    source = str(path)
    # utf-8-sig drops a byte-order mark; universal newlines take CRLF files as they are.
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        for block in sentence_blocks(handle):
            if not block:
                report.skip("empty record")
                continue
            try:
                example = parse_sentence(block, source)
            except ReadError as err:
                report.fail(err, on_error)
                continue
            report.read += 1
            yield example
