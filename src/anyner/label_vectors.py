"""Label vectors of bi-encoder models: computed once, reused, saved.

A bi-encoder reads each label on its own, so a label's vector depends only on its text
(the label, or its description). :class:`LabelEmbeddings` holds the vectors of one label
set, as :meth:`anyner.pipeline.AnyNER.encode_labels` returns them: pass it as ``labels``
to any ``predict`` method to skip the label encoder, or save it (safetensors) and load it
in another process. :class:`LabelCache` is the bounded cache every bi-encoder model keeps,
keyed by label text, so that repeated label sets are encoded once.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class LabelEmbeddings:
    """The vectors of one label set for one bi-encoder model.

    Attributes:
        names: the labels entities carry.
        prompts: the text the label encoder read for each (the label, or its description).
        vectors: (L, D) float32, one row per label.
        model: a fingerprint of the model that made them (see :meth:`AnyNER.encode_labels`);
            predicting with another model's vectors is refused.
    """

    names: tuple[str, ...]
    prompts: tuple[str, ...]
    vectors: np.ndarray
    model: str

    def __post_init__(self) -> None:
        if (
            len(self.names) != len(self.prompts)
            or self.vectors.ndim != 2
            or len(self.vectors) != len(self.names)
        ):
            raise ValueError(
                f"LabelEmbeddings: {len(self.names)} names, {len(self.prompts)} prompts and vectors of shape "
                f"{self.vectors.shape} do not match"
            )

    def __len__(self) -> int:
        return len(self.names)

    def save(self, path: str | Path) -> Path:
        """Write the vectors and their labels to one safetensors file."""
        from safetensors.numpy import save_file

        path = Path(path)
        meta = {
            "names": json.dumps(list(self.names)),
            "prompts": json.dumps(list(self.prompts)),
            "model": self.model,
        }
        save_file({"vectors": np.ascontiguousarray(self.vectors, dtype=np.float32)}, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabelEmbeddings:
        """Read a file written by :meth:`save`.

        Raises:
            ValueError: the file is not such a file.
        """
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                vectors = f.get_tensor("vectors")
            return cls(
                tuple(json.loads(meta["names"])), tuple(json.loads(meta["prompts"])), vectors, meta["model"]
            )
        except Exception as e:  # safetensors raises its own SafetensorError for a damaged file
            if isinstance(e, FileNotFoundError):
                raise
            raise ValueError(f"{path} is not a file written by LabelEmbeddings.save: {e}") from e


class LabelCache:
    """A least-recently-used map label text -> vector, bounded by ``size`` entries."""

    def __init__(self, size: int = 16384):
        self.size = size
        self._store: OrderedDict[str, np.ndarray] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Forget every vector (the hit and miss counts stay)."""
        self._store.clear()

    def vectors(self, prompts: Sequence[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
        """(L, D) vectors of ``prompts``; the ones not cached are encoded (one call) and cached."""
        missing = list(dict.fromkeys(p for p in prompts if p not in self._store))
        absent = set(missing)
        n_missing = sum(1 for p in prompts if p in absent)
        self.hits += len(prompts) - n_missing
        self.misses += n_missing
        fresh = dict(zip(missing, encode(missing), strict=True)) if missing else {}
        out = []
        for p in prompts:
            v = fresh.get(p)
            if v is None:
                v = self._store[p]
                self._store.move_to_end(p)
            out.append(v)
        for p, v in fresh.items():
            self._store[p] = v
            if len(self._store) > self.size:
                self._store.popitem(last=False)
        return np.stack(out) if out else np.zeros((0, 0), dtype=np.float32)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._store), "size": self.size, "hits": self.hits, "misses": self.misses}


__all__ = ["LabelCache", "LabelEmbeddings"]
