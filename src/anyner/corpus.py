"""Corpus records in shards: reading inputs, annotating a shard, writing it atomically.

The work :mod:`anyner.annotate` hands to its workers (local processes or Ray actors,
:mod:`anyner.annotate_ray`): a shard is a run of records of one input file; a
:class:`ShardWorker` loads the model once and turns each shard into one output file.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anyner.fileio import atomic_write

FORMATS = ("jsonl", "parquet")
TEXT_SUFFIXES = {".txt", ".text"}
PARQUET_SUFFIXES = {".parquet", ".pq"}


class AnnotateError(ValueError):
    """Bad arguments or inputs, or a resumed run that does not match the first."""


@dataclass(frozen=True)
class Settings:
    """What a run computes: a resumed run must have the same."""

    model: str
    labels: tuple[str, ...]
    threshold: float | str = 0.5  # or "auto": the model's calibrated thresholds
    flat: bool = True
    text_field: str = "text"
    id_field: str = "id"
    batch_size: int = 8
    shard_size: int = 1000
    format: str = "jsonl"
    backend: str = "auto"

    def key(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Shard:
    """Records ``start`` .. ``start + count - 1`` (0-based record index) of input file ``file``."""

    file_index: int
    path: str
    kind: str  # "jsonl", "text" or "parquet"
    index: int
    start: int
    count: int

    @property
    def name(self) -> str:
        return f"part-{self.file_index:05d}-{self.index:06d}"


@dataclass
class ShardResult:
    name: str
    records: int = 0
    entities: int = 0
    words: int = 0
    errors: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- inputs


def expand_inputs(patterns: Sequence[str]) -> list[Path]:
    """Files named by paths and globs, each once, in the order given (a glob's matches sorted)."""
    out: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise AnnotateError(f"{pattern}: no file matches")
        for m in matches:
            p = Path(m)
            if not p.is_file():
                raise AnnotateError(f"{m}: no such file")
            if p.resolve() not in {q.resolve() for q in out}:
                out.append(p)
    if not out:
        raise AnnotateError("no input files")
    return out


def kind_of(path: Path) -> str:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet"
    if path.suffix.lower() in TEXT_SUFFIXES:
        return "text"
    return "jsonl"


def count_records(path: Path, kind: str) -> int:
    if kind == "parquet":
        return require_pyarrow().parquet.ParquetFile(str(path)).metadata.num_rows
    n = 0
    with open(path, "rb") as f:
        for _ in f:
            n += 1
    return n


def plan(paths: Sequence[Path], shard_size: int) -> list[Shard]:
    """The shards of the inputs, in input order."""
    shards = []
    for i, path in enumerate(paths):
        kind = kind_of(path)
        n = count_records(path, kind)
        for j, start in enumerate(range(0, n, shard_size)):
            shards.append(Shard(i, str(path), kind, j, start, min(shard_size, n - start)))
    return shards


def read_shard(shard: Shard, text_field: str, id_field: str) -> Iterator[tuple[int, str | None, str, str]]:
    """(line, id, text, error) for each record of a shard: text "" and an error message for a bad one."""
    if shard.kind == "parquet":
        pq = require_pyarrow().parquet
        table = pq.read_table(shard.path)
        if text_field not in table.column_names:
            raise AnnotateError(
                f"{shard.path}: no column {text_field!r} (columns: {', '.join(table.column_names)})"
            )
        part = table.slice(shard.start, shard.count)
        texts = part.column(text_field).to_pylist()
        ids = part.column(id_field).to_pylist() if id_field in table.column_names else [None] * len(texts)
        for k, (text, rid) in enumerate(zip(texts, ids, strict=True)):
            line = shard.start + k + 1
            if not isinstance(text, str):
                yield line, None, "", f"{shard.path}:{line}: column {text_field!r} is not a string"
            else:
                yield line, None if rid is None else str(rid), text, ""
        return
    with open(shard.path, "rb") as f:
        for _ in range(shard.start):
            f.readline()
        for k in range(shard.count):
            raw = f.readline()
            line = shard.start + k + 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line, None, "", f"{shard.path}:{line}: not UTF-8 text ({e.reason})"
                continue
            text = text.rstrip("\r\n")
            if line == 1:
                text = text.removeprefix("\ufeff")
            if shard.kind == "text":
                yield line, None, text, ""
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                yield line, None, "", f"{shard.path}:{line}: not valid JSON: {e.msg}"
                continue
            if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
                yield line, None, "", f"{shard.path}:{line}: no string field {text_field!r}"
                continue
            rid = record.get(id_field)
            yield line, None if rid is None else str(rid), record[text_field], ""


# ---------------------------------------------------------------------------- work


class ShardWorker:
    """Loads the model once; annotates shards and writes each atomically into ``out``."""

    def __init__(self, settings: Settings, out: str, threads: int | None = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        from anyner.pipeline import AnyNER

        self.settings = settings
        self.out = Path(out)
        self.model = AnyNER.from_pretrained(settings.model, backend=settings.backend)  # "builtin" included

    def __call__(self, shard: Shard) -> ShardResult:
        s = self.settings
        rows, result = [], ShardResult(shard.name)
        good = []
        for line, rid, text, error in read_shard(shard, s.text_field, s.id_field):
            if error:
                result.errors.append(error)
                continue
            good.append((line, rid if rid is not None else f"{shard.path}:{line}", text))
        found = self.model.predict_batch(
            [t for _, _, t in good],
            list(s.labels),
            threshold=s.threshold,
            flat=s.flat,
            batch_size=s.batch_size,
        )
        for (line, rid, text), ents in zip(good, found, strict=True):
            entities = [
                {"start": e.start, "end": e.end, "text": e.text, "label": e.label, "score": float(e.score)}
                for e in ents
            ]
            rows.append({"id": rid, "source": shard.path, "line": line, "entities": entities})
            result.entities += len(entities)
            result.words += len(text.split())
        result.records = len(rows)
        write_shard(self.out, shard.name, rows, s.format)
        return result


def write_shard(out: Path, name: str, rows: list[dict[str, Any]], fmt: str) -> Path:
    """Write one shard's rows to ``out/name.<fmt>`` through a temporary file and a rename."""

    def write(tmp: Path) -> None:
        if fmt == "jsonl":
            with open(tmp, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            pa = require_pyarrow()
            pa.parquet.write_table(pa.Table.from_pylist(rows, schema=parquet_schema()), str(tmp))

    return atomic_write(out / f"{name}.{fmt}", write)


def parquet_schema() -> Any:
    pa = require_pyarrow()
    entity = pa.struct([("start", pa.int64()), ("end", pa.int64()), ("text", pa.string()),
                        ("label", pa.string()), ("score", pa.float64())])  # fmt: skip
    return pa.schema([("id", pa.string()), ("source", pa.string()), ("line", pa.int64()),
                      ("entities", pa.list_(entity))])  # fmt: skip


def require_pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as e:
        raise ImportError("Parquet input or output needs pyarrow: pip install 'anyner[scale]'") from e
    return pyarrow


__all__ = ["FORMATS", "AnnotateError", "Settings", "Shard", "ShardResult", "ShardWorker", "expand_inputs", "kind_of",
           "parquet_schema", "plan", "read_shard", "require_pyarrow", "write_shard"]  # fmt: skip
