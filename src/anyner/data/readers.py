"""One entry point for every file form: GLiNER JSON/JSONL, benchmark JSON, CoNLL.

``read_examples`` detects the form, streams the records, renames labels with an
optional label map and returns the records with a ``ReadReport``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Literal

from anyner.data.benchmark import iter_benchmark, read_benchmark_labels
from anyner.data.conll import iter_conll
from anyner.data.gliner_json import iter_gliner_json
from anyner.data.jsonfiles import iter_json_records
from anyner.data.report import OnError, ReadReport, check_on_error, rename_labels
from anyner.types import Example

Format = Literal["gliner", "benchmark", "conll"]
FORMATS: tuple[Format, ...] = ("gliner", "benchmark", "conll")

JSON_SUFFIXES = (".json", ".jsonl")
CONLL_SUFFIXES = ("", ".tsv", ".txt", ".conll", ".bio", ".iob", ".iob2")

_READERS = {"gliner": iter_gliner_json, "benchmark": iter_benchmark, "conll": iter_conll}


def detect_format(path: str | Path) -> Format:
    """The form of a file: ``"gliner"``, ``"benchmark"`` or ``"conll"``.

    ``.json``/``.jsonl`` files are told apart by the keys of their first record
    (``tokenized_text`` or ``sentence``). ``.tsv``, ``.txt``, ``.conll`` and files
    without an extension are CoNLL; other extensions are sniffed from the first line.

    Raises:
        ValueError: ``path`` is a folder, or a JSON file whose records are neither form.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder: pass one file, or use read_benchmark for a benchmark folder")
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES or (suffix not in CONLL_SUFFIXES and _starts_like_json(path)):
        return _json_format(path)
    return "conll"


def _starts_like_json(path: Path) -> bool:
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        for line in handle:
            if line.strip():
                first = line.strip()
                # "[<TAB>O" and "{ O" are CoNLL lines whose token is a bracket.
                return first.startswith(('{"', "[{", "[[")) or first in ("{", "[")
    return False


def _json_format(path: Path) -> Format:
    for record in iter_json_records(path):
        if isinstance(record.value, dict):
            if "tokenized_text" in record.value:
                return "gliner"
            if "sentence" in record.value:
                return "benchmark"
            keys = ", ".join(sorted(map(str, record.value)))
            raise ValueError(
                f"{record.where}: unknown JSON record with keys {keys}; expected 'tokenized_text' "
                "(GLiNER) or 'sentence' (benchmark)"
            )
    # Nothing to tell the forms apart by (an empty file, say): both read it the same.
    return "gliner"


def iter_examples(
    path: str | Path,
    *,
    format: Format | None = None,
    label_map: dict[str, str] | None = None,
    on_error: OnError = "raise",
    report: ReadReport | None = None,
) -> Iterator[Example]:
    """Stream the records of any supported file.

    Args:
        path: the file.
        format: ``"gliner"``, ``"benchmark"`` or ``"conll"``; None detects it.
        label_map: renames labels (publisher code -> natural name); labels it
            does not cover stay and are counted in ``report.unmapped``.
        on_error: ``"raise"`` a ``ValueError`` naming ``path:line`` on a malformed
            line or record, or ``"skip"`` it and count it in the report.
        report: filled in as records are read; pass one to see the counts.
    """
    check_on_error(on_error)
    if format is None:
        format = detect_format(path)
    elif format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS} or None, got {format!r}")
    report = report if report is not None else ReadReport(str(path))
    examples = _READERS[format](path, on_error=on_error, report=report)
    if label_map is None:
        return examples
    return (rename_labels(example, label_map, report) for example in examples)


def read_examples(
    path: str | Path,
    *,
    format: Format | None = None,
    label_map: dict[str, str] | None = None,
    on_error: OnError = "raise",
    limit: int | None = None,
) -> tuple[list[Example], ReadReport]:
    """Read the records of a file and a report of what was kept and skipped.

    Args:
        path: a GLiNER ``.json``/``.jsonl`` file, a benchmark split file, or a
            CoNLL-style file.
        format: ``"gliner"``, ``"benchmark"`` or ``"conll"``; None detects it.
        label_map: renames labels (publisher code -> natural name), e.g.
            ``load_label_map("bionlp13cg")``.
        on_error: ``"raise"`` or ``"skip"`` malformed lines and records.
        limit: stop after this many records (the report covers what was read).

    Returns:
        ``(examples, report)``.

    Example:
        ``examples, report = read_examples("train.tsv", label_map=load_label_map("bionlp13cg"))``;
        ``print(report)`` then shows e.g. ``train.tsv: 3034 read, 0 skipped``.
    """
    report = ReadReport(str(path))
    examples = iter_examples(path, format=format, label_map=label_map, on_error=on_error, report=report)
    return _take(examples, limit), report


def read_benchmark(
    path: str | Path,
    split: str = "test",
    *,
    label_map: dict[str, str] | None = None,
    on_error: OnError = "raise",
    limit: int | None = None,
) -> tuple[list[Example], list[str], ReadReport]:
    """Read a benchmark split and the label names of its folder.

    Args:
        path: the benchmark folder, or one split file inside it.
        split: which ``<split>.json`` to read when ``path`` is a folder.
        label_map: renames gold types and label names (code -> name).
        on_error: ``"raise"`` or ``"skip"`` malformed records.
        limit: stop after this many records.

    Returns:
        ``(examples, labels, report)``; labels keep the order of ``labels.json``.
        Character spans widened to whole words are counted in ``report.notes["widened"]``.
    """
    path = Path(path)
    split_path = path / f"{split}.json" if path.is_dir() else path
    labels = read_benchmark_labels(split_path.parent)
    if label_map is not None:
        labels = list(dict.fromkeys(label_map.get(label, label) for label in labels))
    report = ReadReport(str(split_path))
    examples = iter_examples(
        split_path, format="benchmark", label_map=label_map, on_error=on_error, report=report
    )
    return _take(examples, limit), labels, report


def _take(examples: Iterator[Example], limit: int | None) -> list[Example]:
    if limit is None:
        return list(examples)
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    # islice stops without pulling one record too many, so the report counts exactly what is returned.
    return list(islice(examples, limit))
