"""Weights stored as the difference from another weights file (a *delta*).

A model trained from another one with part of it fixed (``[train] freeze``) shares most of its
tensors with that model. Its folder may then hold ``model_delta.safetensors`` instead of
``model.safetensors``: only the tensors that differ, plus, for a tensor that only grew (a
vocabulary with a new token), just its new rows. The file's metadata names the base file
(a path relative to the delta's folder) and the base's SHA-256, so a delta never loads onto
other weights than the ones it was made from. The built-in relation model ships this way beside
the built-in entity model (13 MB instead of 50).

:func:`write_delta` makes such a file; :func:`iter_delta` yields the whole model's tensors from
it, as :func:`anyner.checkpoint.iter_weights` does for a full file (it is called from there).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anyner.fileio import atomic_write

DELTA_NAME = "model_delta.safetensors"


class DeltaError(ValueError):
    """A delta file that cannot be applied (its base is missing or another version); the
    checkpoint reader turns it into a ``CheckpointError``."""


FORMAT = "anyner-delta/1"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(path: Path) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file (empty when it has none), read from its header."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError("the file is shorter than a safetensors header")
        (n,) = struct.unpack("<Q", head)
        size = os.path.getsize(path)
        if n > size - 8:
            raise ValueError(f"header length {n} is past the end of the {size}-byte file")
        header = json.loads(f.read(n))
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return dict(meta) if isinstance(meta, dict) else {}


def is_delta(path: Path) -> bool:
    return path.suffix == ".safetensors" and read_metadata(path).get("format") == FORMAT


def write_delta(base: str | Path, full: str | Path, out: str | Path) -> dict[str, Any]:
    """Write ``out``: the tensors of ``full`` that differ from ``base`` (both safetensors files
    with the same key names), as a delta on ``base``. Returns counts: tensors ``kept`` from the
    base, ``changed``, ``new``, ``grown`` (rows appended), and the numbers stored.

    Raises:
        ValueError: ``base`` has a tensor that ``full`` lacks, or one whose dtype or shape
            changed in a way other than new rows (the delta could not rebuild ``full``).
    """
    import torch
    from safetensors.torch import load_file, save_file

    base, full, out = Path(base), Path(full), Path(out)
    old, new = load_file(str(base)), load_file(str(full))
    gone = sorted(set(old) - set(new))
    if gone:
        raise ValueError(f"{full} lacks {len(gone)} tensors of {base} (e.g. {gone[:3]}): not a delta of it")
    stored: dict[str, torch.Tensor] = {}
    grown: list[str] = []
    counts = {"kept": 0, "changed": 0, "new": 0, "grown": 0}
    for key, value in new.items():
        if key not in old:
            stored[key] = value
            counts["new"] += 1
            continue
        was = old[key]
        if value.dtype != was.dtype:
            raise ValueError(f"{key}: dtype {was.dtype} in {base}, {value.dtype} in {full}")
        if value.shape == was.shape:
            if torch.equal(value, was):
                counts["kept"] += 1
            else:
                stored[key] = value
                counts["changed"] += 1
            continue
        rows = was.shape[0] if was.dim() else 0
        if (
            value.dim() == was.dim() >= 1
            and value.shape[1:] == was.shape[1:]
            and value.shape[0] > rows
            and torch.equal(value[:rows], was)
        ):
            stored[key] = value[rows:].contiguous()
            grown.append(key)
            counts["grown"] += 1
            continue
        raise ValueError(f"{key}: shape {tuple(was.shape)} in {base}, {tuple(value.shape)} in {full}")
    meta = {
        "format": FORMAT,
        "base": os.path.relpath(base.resolve(), out.resolve().parent),
        "base_sha256": sha256(base),
        "grown": json.dumps(grown),
    }
    atomic_write(out, lambda tmp: save_file(stored, str(tmp), metadata=meta))
    counts["numbers"] = sum(t.numel() for t in stored.values())
    return counts


def base_of(path: Path) -> Path:
    """The base weights file a delta file rests on, checked against the SHA-256 it recorded."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT or "base" not in meta or "base_sha256" not in meta:
        raise DeltaError(f"{path} is not an anyner delta file (its metadata lacks format/base/base_sha256)")
    base = (path.parent / meta["base"]).resolve()
    if not base.is_file():
        raise DeltaError(f"{path} rests on {base}, which is missing: reinstall the model's files")
    if sha256(base) != meta["base_sha256"]:
        raise DeltaError(
            f"{path} was made from another version of {base} (SHA-256 differs): the two files do not "
            "belong together; reinstall the model's files"
        )
    return base


def iter_delta(path: Path, read: Callable[..., Iterator[tuple[str, Any]]]) -> Iterator[tuple[str, Any]]:
    """The whole model's tensors: the base's, replaced or extended by the delta's, then the
    delta's new ones. ``read(path, plain=...)`` reads a weights file tensor by tensor
    (``anyner.checkpoint.iter_weights``, which calls this; each tensor valid until the next)."""
    import torch

    base = base_of(path)
    try:
        grown = set(json.loads(read_metadata(path).get("grown", "[]")))
    except json.JSONDecodeError as e:
        raise DeltaError(f"{path}: its 'grown' metadata is not a JSON list: {e}") from e
    stored = {k: t.clone() for k, t in read(path, plain=True)}
    for key, tensor in read(base):
        if key in grown and key in stored:
            yield key, torch.cat([tensor, stored.pop(key).to(tensor.dtype)])
        elif key in stored:
            yield key, stored.pop(key)
        else:
            yield key, tensor
    yield from stored.items()


__all__ = ["DELTA_NAME", "is_delta", "iter_delta", "write_delta"]
