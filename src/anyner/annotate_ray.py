"""``anyner annotate --ray``: the shards of :mod:`anyner.annotate` (:mod:`anyner.corpus`) as a Ray Data pipeline.

The shard list becomes a dataset (``ray.data.from_items``), one row a shard; ``map_batches``
runs it through an actor class that loads the model once per actor (``concurrency`` actors,
``num_cpus`` = the torch threads of each) and writes each shard's output file itself, as a
local worker does, so that the output folder, the manifest and resuming are the same. The
driver only sees each shard's counts. ``--ray local`` starts a Ray instance on this machine;
an address (``ray://host:10001`` or ``host:6379``, or ``auto``) joins a running cluster, whose
nodes must all see the input and output paths (a shared file system).

Why shards and not ``ray.data.read_json``: each output record keeps its file and line, bad
lines are counted where they are, and a killed run resumes at the shards it did not write.
Ray is the ``[scale]`` extra.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from anyner.corpus import Settings, Shard, ShardResult, ShardWorker


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise ImportError("anyner annotate --ray needs Ray Data: pip install 'anyner[scale]'") from e
    return ray


class _Actor:
    """One Ray actor: the model loaded once, then a shard a call."""

    def __init__(self, settings: dict[str, Any], out: str, threads: int):
        settings["labels"] = tuple(settings["labels"])
        self.worker = ShardWorker(Settings(**settings), out, threads)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"name": [], "records": [], "entities": [], "words": [], "errors": []}
        for i in range(len(batch["name"])):
            shard = Shard(
                int(batch["file_index"][i]), str(batch["path"][i]), str(batch["kind"][i]),
                int(batch["index"][i]), int(batch["start"][i]), int(batch["count"][i]),
            )  # fmt: skip
            r = self.worker(shard)
            for key in ("name", "records", "entities", "words"):
                out[key].append(getattr(r, key))
            out["errors"].append(json.dumps(r.errors))
        return out


def run_on_ray(
    todo: list[Shard], settings: Settings, out: str, address: str, workers: int, threads: int
) -> Iterator[ShardResult]:
    """Annotate ``todo`` on Ray (``address``: ``"local"`` or a cluster's); yield each shard's counts."""
    if not todo:
        return
    ray = _ray()
    started = False
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
        started = True
    try:
        rows = [asdict(s) | {"name": s.name} for s in todo]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        results = ds.map_batches(
            _Actor,
            fn_constructor_args=(settings.key(), out, threads),
            batch_size=1,
            concurrency=workers,
            num_cpus=threads,
            batch_format="numpy",
        )
        for row in results.iter_rows():
            yield ShardResult(
                str(row["name"]), int(row["records"]), int(row["entities"]), int(row["words"]),
                json.loads(str(row["errors"])),
            )  # fmt: skip
    finally:
        if started:
            ray.shutdown()


__all__ = ["run_on_ray"]
