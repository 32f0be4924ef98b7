"""What a reader kept, skipped and changed, and the error it raises."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from anyner.types import Example, Span

OnError = Literal["raise", "skip"]
ON_ERROR_CHOICES = ("raise", "skip")


class ReadError(ValueError):
    """A malformed record: the message starts with ``path:line``.

    Attributes:
        where: ``path:line`` (JSON arrays add ``[record N]``) of the bad input.
        reason: short category the report counts when the record is skipped,
            e.g. ``"bad tag"`` or ``"span out of range"``.
    """

    def __init__(self, where: str, reason: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.where = where
        self.reason = reason


@dataclass
class ReadReport:
    """Counts of one read: nothing a reader drops or changes goes unrecorded.

    Attributes:
        path: the file (or folder) read.
        read: records kept.
        skipped: records left out; ``sum(reasons.values()) == skipped``.
        reasons: why records were left out, reason -> count.
        notes: changes made to kept records, e.g. ``"widened"`` (a character
            span that did not fall on word boundaries) or ``"duplicate span"``.
        unmapped: labels a label map did not cover (kept unchanged), label -> count.
    """

    path: str
    read: int = 0
    skipped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)
    unmapped: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        """Count one record left out for ``reason``."""
        self.skipped += 1
        self.reasons[reason] += 1

    def fail(self, error: ReadError, on_error: OnError) -> None:
        """Raise ``error``, or count it as a skipped record when ``on_error == "skip"``."""
        if on_error == "raise":
            raise error
        self.skip(error.reason)

    def __str__(self) -> str:
        text = f"{self.path}: {self.read} read, {self.skipped} skipped"
        if self.reasons:
            text += f" ({_counts(self.reasons)})"
        if self.notes:
            text += f"; notes: {_counts(self.notes)}"
        if self.unmapped:
            text += f"; unmapped labels: {_counts(self.unmapped)}"
        return text


def format_counts(counter: Counter[str]) -> str:
    """``"key: count, ..."``, most common first (the reports' reason lists)."""
    return ", ".join(f"{key}: {count}" for key, count in counter.most_common())


_counts = format_counts


def check_on_error(on_error: str) -> None:
    """Reject an ``on_error`` value other than ``"raise"`` or ``"skip"``."""
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error must be one of {ON_ERROR_CHOICES}, got {on_error!r}")


def unique_spans(spans: list[Span], notes: Counter[str]) -> list[Span]:
    """``spans`` without exact repeats, in order; repeats are counted in ``notes``.

    Nested spans and one span with several labels are distinct and stay.
    """
    unique = list(dict.fromkeys(spans))
    if len(unique) != len(spans):
        notes["duplicate span"] += len(spans) - len(unique)
    return unique


def rename_labels(example: Example, label_map: dict[str, str], report: ReadReport) -> Example:
    """Rename the labels of ``example`` in place; labels not in the map stay and are counted."""
    renamed = []
    for span in example.spans:
        name = label_map.get(span.label)
        if name is None:
            report.unmapped[span.label] += 1
            renamed.append(span)
        else:
            renamed.append(Span(span.start, span.end, name))
    # Two codes can share a name, so one span may now carry the same label twice.
    example.spans = unique_spans(renamed, report.notes)
    return example
