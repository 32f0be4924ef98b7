"""Prompted inputs -> one padded :class:`Batch`, the network's inputs; training targets beside it.

The batch holds numpy arrays, so that every runtime reads the same object: the torch
network takes :meth:`Batch.tensors`, an ONNX Runtime session takes :meth:`Batch.feed`,
and the ONNX graph's input names are the field names (:data:`INPUT_NAMES`). Nothing
here imports torch at module level.

Dimensions: B texts, T subwords, W words, K span widths, C labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from anyner.prompt import PromptedInput

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, slots=True)
class Batch:
    """The network's inputs for B sequences, padded.

    Padding words point at position 0 with ``word_present`` False; padding labels point
    at position 0. Integer fields are int64, ``word_present`` is bool.
    """

    input_ids: np.ndarray  # (B, T) subword ids of "<<ENT>> label ... <<SEP>> words"
    attention_mask: np.ndarray  # (B, T) 1 on real subwords
    word_index: np.ndarray  # (B, W) position of each word's first subword (0 where none)
    word_present: np.ndarray  # (B, W) True where the word has a subword; padding and empty words False
    text_lengths: np.ndarray  # (B,) words per sequence
    label_index: np.ndarray  # (B, C) position of each label's vector token
    # bi-encoders: (B, C, D) float32 label vectors (padding labels zero); None for uni-encoders
    label_vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def n_words(self) -> int:
        return int(self.word_index.shape[1])

    @property
    def n_labels(self) -> int:
        return int(self.label_index.shape[1])

    def tensors(self, device: Any = "cpu") -> dict[str, torch.Tensor]:
        """The fields as torch tensors on ``device``, keyed by field name (the network's arguments)."""
        import torch

        out = {name: torch.from_numpy(getattr(self, name)).to(device) for name in INPUT_NAMES}
        if self.label_vectors is not None:
            out["label_vectors"] = torch.from_numpy(self.label_vectors).to(device)
        return out

    def feed(self, names: Sequence[str] = ()) -> dict[str, np.ndarray]:
        """The fields as contiguous numpy arrays for ONNX Runtime (only ``names``, if given)."""
        return {name: np.ascontiguousarray(getattr(self, name)) for name in (names or INPUT_NAMES)}


# the inputs every network takes (and the ONNX graph's input names); bi-encoders add label_vectors
INPUT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Batch) if f.name != "label_vectors")


@dataclass(frozen=True, slots=True)
class Targets:
    """Training targets for a :class:`Batch`: which (span, label) pairs are gold, which are scored."""

    targets: np.ndarray  # (B, W, K, C) float32, 1.0 for a gold span-label pair
    mask: np.ndarray  # (B, W, K, C) float32, 1.0 for a pair that is scored (inside the text, a real label)

    def tensors(self, device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        return torch.from_numpy(self.targets).to(device), torch.from_numpy(self.mask).to(device)


def collate(items: Sequence[PromptedInput], pad_id: int) -> Batch:
    """Pad a batch of prompted inputs into one :class:`Batch`."""
    B = len(items)
    T = max(len(x.input_ids) for x in items)
    W = max(1, max(len(x.word_index) for x in items))
    C = max(len(x.label_index) for x in items)
    input_ids = np.full((B, T), pad_id, dtype=np.int64)
    attention_mask = np.zeros((B, T), dtype=np.int64)
    word_index = np.zeros((B, W), dtype=np.int64)
    word_present = np.zeros((B, W), dtype=np.bool_)
    label_index = np.zeros((B, C), dtype=np.int64)
    text_lengths = np.zeros(B, dtype=np.int64)
    for i, x in enumerate(items):
        input_ids[i, : len(x.input_ids)] = x.input_ids
        attention_mask[i, : len(x.input_ids)] = 1
        wi = np.asarray(x.word_index, dtype=np.int64)
        word_present[i, : len(wi)] = wi >= 0
        word_index[i, : len(wi)] = np.maximum(wi, 0)
        label_index[i, : len(x.label_index)] = x.label_index
        text_lengths[i] = len(x.word_index)
    return Batch(input_ids, attention_mask, word_index, word_present, text_lengths, label_index)


def span_targets(
    batch: Batch,
    spans: Sequence[Sequence[tuple[int, int, int]]],
    n_labels: Sequence[int],
    max_width: int,
) -> Targets:
    """Targets for ``batch``: ``spans[b]`` are row b's gold (start, end, label) word spans, half-open.

    A span wider than ``max_width`` or outside the row's words is a caller's error: the
    featurizer has already dropped (and counted) those.
    """
    B, W, C, K = len(batch), batch.n_words, batch.n_labels, max_width
    targets = np.zeros((B, W, K, C), dtype=np.float32)
    mask = np.zeros((B, W, K, C), dtype=np.float32)
    ends = np.arange(W)[:, None] + np.arange(K)[None, :]  # (W, K) last word of each span
    for b in range(B):
        n = int(batch.text_lengths[b])
        mask[b, :, :, : n_labels[b]] = (ends < n)[:, :, None]
        for s, e, c in spans[b]:
            assert 0 <= s < e <= n and e - s <= K and 0 <= c < n_labels[b], (s, e, c, n)
            targets[b, s, e - s - 1, c] = 1.0
    return Targets(targets, mask)


def token_targets(
    batch: Batch,
    spans: Sequence[Sequence[tuple[int, int, int]]],
    n_labels: Sequence[int],
    max_width: int,
) -> Targets:
    """Token-level targets (B, W, 3, C) for ``batch``: for each gold span (start, end, label),
    half-open in words, 1 at its first word's start score, its last word's end score and every
    one of its words' inside score. ``max_width`` is unused: token-level spans have no limit."""
    del max_width
    B, W, C = len(batch), batch.n_words, batch.n_labels
    targets = np.zeros((B, W, 3, C), dtype=np.float32)
    mask = np.zeros((B, W, 3, C), dtype=np.float32)
    for b in range(B):
        n = int(batch.text_lengths[b])
        mask[b, :n, :, : n_labels[b]] = 1.0
        for s, e, c in spans[b]:
            assert 0 <= s < e <= n and 0 <= c < n_labels[b], (s, e, c, n)
            targets[b, s, 0, c] = 1.0
            targets[b, e - 1, 1, c] = 1.0
            targets[b, s:e, 2, c] = 1.0
    return Targets(targets, mask)


__all__ = ["INPUT_NAMES", "Batch", "Targets", "collate", "span_targets", "token_targets"]
