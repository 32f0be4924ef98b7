"""Corpus annotation: many input files -> one output record per input record, in shards.

``anyner annotate`` reads JSONL, Parquet and plain-text files (one record a line), cuts
them into shards of ``shard_size`` records in input order, and has workers predict each
shard and write it: local processes (``workers``) or the actors of a Ray cluster
(:mod:`anyner.annotate_ray`). The same shards, the same batches within a shard and the
same threads per worker give the same output whatever runs them.

Exactly once, across kills: a worker writes a shard to a temporary name and renames it,
so a shard file is there whole or not at all; the coordinator then records it in
``manifest.json`` (also written by rename). A run started again with the same command
skips the shards whose files are there and does the rest; a run with other settings (model,
labels, inputs, shard size) into the same folder is refused. Records that cannot be read (bad
JSON, no text field, not UTF-8) are reported with file and line, counted per shard in the
manifest, and skipped (``on_error="skip"``) or stop the run (``"fail"``).

Output (``DIR/part-FFFFF-SSSSSS.jsonl`` or ``.parquet``; file index, shard index): one record
per input record: ``id`` (the ``id_field`` value as a string, else ``"<file>:<line>"``),
``source`` (the input file), ``line`` (1-based line or row) and ``entities`` (``start``,
``end``, ``text``, ``label``, ``score``). Parquet schema: ``id: string, source: string,
line: int64, entities: list<struct<start: int64, end: int64, text: string, label: string,
score: double>>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from anyner.corpus import (
    FORMATS,
    AnnotateError,
    Settings,
    Shard,
    ShardResult,
    ShardWorker,
    expand_inputs,
    kind_of,
    parquet_schema,
    plan,
    read_shard,
    require_pyarrow,
)
from anyner.fileio import atomic_write_text

MANIFEST = "manifest.json"
ON_ERROR = ("skip", "fail")


# ---------------------------------------------------------------------------- the run


class Manifest:
    """``manifest.json``: the settings, the inputs and each finished shard's counts."""

    def __init__(self, out: Path, settings: Settings, inputs: list[str]):
        self.path = out / MANIFEST
        self.fingerprint = hashlib.sha256(
            json.dumps({"settings": settings.key(), "inputs": inputs}, sort_keys=True).encode()
        ).hexdigest()
        self.data: dict[str, Any] = {"settings": settings.key(), "inputs": inputs, "fingerprint": self.fingerprint,
                                     "shards": {}, "complete": False}  # fmt: skip
        if self.path.is_file():
            old = json.loads(self.path.read_text(encoding="utf-8"))
            if old.get("fingerprint") != self.fingerprint:
                raise AnnotateError(
                    f"{out} holds a run with other settings or inputs ({self.path}): use another --out "
                    "folder, or the same command as that run to finish it"
                )
            self.data = old

    @property
    def shards(self) -> dict[str, Any]:
        return self.data["shards"]

    def add(self, r: ShardResult) -> None:
        self.shards[r.name] = {"records": r.records, "entities": r.entities, "words": r.words,
                               "errors": len(r.errors), "error_lines": r.errors[:100]}  # fmt: skip
        self.save()

    def save(self) -> None:
        totals = {
            k: sum(s[k] for s in self.shards.values()) for k in ("records", "entities", "words", "errors")
        }
        self.data["totals"] = totals
        atomic_write_text(self.path, json.dumps(self.data, indent=1) + "\n")


def annotate(
    inputs: Sequence[str],
    settings: Settings,
    out: str | Path,
    *,
    workers: int | None = None,
    threads: int | None = None,
    ray: str | None = None,
    on_error: str = "skip",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Annotate ``inputs`` into ``out``; returns the manifest's totals and the run's time.

    ``workers``: local processes (default: one per core); ``threads``: torch threads of each
    (default: cores // workers); ``ray``: ``"local"`` or a cluster address to run on Ray instead.
    """
    from anyner.validate import positive_int

    log = log or (lambda msg: print(msg, file=sys.stderr))
    if settings.format not in FORMATS:
        raise AnnotateError(f"format must be one of {', '.join(FORMATS)}, got {settings.format!r}")
    if on_error not in ON_ERROR:
        raise AnnotateError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    positive_int(settings.shard_size, "shard_size")
    positive_int(settings.batch_size, "batch_size")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = positive_int(workers, "workers") if workers is not None else cores
    threads = positive_int(threads, "threads") if threads is not None else max(1, cores // workers)
    if settings.format == "parquet":
        require_pyarrow()
    paths = expand_inputs(inputs)
    if any(kind_of(p) == "parquet" for p in paths):
        require_pyarrow()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out, settings, [str(p) for p in paths])
    # what a killed run was writing: a shard, or the manifest (its last version stands)
    for stale in [*out.glob(".part-*.tmp"), *out.glob(f".{MANIFEST}.*.tmp")]:
        stale.unlink()
    shards = plan(paths, settings.shard_size)
    done = {p.stem for p in out.glob(f"part-*.{settings.format}")}
    todo = [s for s in shards if s.name not in done]
    total_records = sum(s.count for s in shards)
    left = sum(s.count for s in todo)
    log(f"{len(paths)} files, {total_records:,} records in {len(shards)} shards; "
        f"{len(shards) - len(todo)} done already, {len(todo)} to do")  # fmt: skip
    # shards on disk but not in the manifest (the run was killed between the two): count them from their files
    for name in sorted(done - set(manifest.shards)):
        log(f"{name}: written by an earlier run; recounting it")
        manifest.add(_recount(out / f"{name}.{settings.format}", settings.format))
    start = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(
        total=left, unit="rec", desc="annotate", disable=not progress, file=sys.stderr, dynamic_ncols=True
    )
    words = 0
    failed: list[str] = []
    try:
        if ray is not None:
            from anyner.annotate_ray import run_on_ray

            results = run_on_ray(todo, settings, str(out), ray, workers, threads)
        else:
            results = _run_local(todo, settings, str(out), workers, threads)
        for r in results:
            manifest.add(r)
            words += r.words
            for e in r.errors:
                log(f"anyner: skipped {e}")
            failed += r.errors
            bar.update(r.records + len(r.errors))
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.set_postfix_str(
                f"{bar.n / elapsed:,.0f} rec/s, {words / elapsed:,.0f} words/s", refresh=False
            )
            if failed and on_error == "fail":
                raise AnnotateError(f"{failed[0]} (--on-error fail)")
    finally:
        bar.close()
    manifest.data["complete"] = len(manifest.shards) == len(shards)
    manifest.save()
    totals = dict(manifest.data["totals"])
    totals["seconds"] = time.perf_counter() - start
    return totals


def _recount(path: Path, fmt: str) -> ShardResult:
    if fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    else:
        rows = require_pyarrow().parquet.read_table(str(path)).to_pylist()
    return ShardResult(path.stem, len(rows), sum(len(r["entities"]) for r in rows), 0, [])


_WORKER: ShardWorker | None = None


def _init_worker(settings: Settings, out: str, threads: int) -> None:
    global _WORKER
    _WORKER = ShardWorker(settings, out, threads)


def _work(shard: Shard) -> ShardResult:
    assert _WORKER is not None
    return _WORKER(shard)


def _run_local(
    todo: list[Shard], settings: Settings, out: str, workers: int, threads: int
) -> Iterator[ShardResult]:
    if not todo:
        return
    if workers == 1:
        worker = ShardWorker(settings, out, threads)
        for shard in todo:
            yield worker(shard)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter per worker: no torch state forked
    with ctx.Pool(workers, initializer=_init_worker, initargs=(settings, out, threads)) as pool:
        yield from pool.imap(_work, todo)  # in shard order, as they finish


def read_output(out: str | Path) -> list[dict[str, Any]]:
    """Every output record of a folder, in input order (for tests and small runs)."""
    out = Path(out)
    rows: list[dict[str, Any]] = []
    for path in sorted(out.glob("part-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for path in sorted(out.glob("part-*.parquet")):
        rows += require_pyarrow().parquet.read_table(str(path)).to_pylist()
    return rows


__all__ = ["FORMATS", "MANIFEST", "AnnotateError", "Settings", "Shard", "ShardResult", "ShardWorker", "annotate", "parquet_schema",
           "plan", "read_output", "read_shard"]  # fmt: skip
