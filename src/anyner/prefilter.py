"""A span pre-filter for many labels: a cheap label-independent score keeps the top-k spans.

Scoring every span against every label costs (spans x labels x 4D) multiply-adds in the
``markerV0`` head: with thousands of labels that product is most of the work after the
label vectors are made. The pre-filter is one linear layer over the span's hidden vector
(the layer before the label dot product, so it costs one "label"), trained to say whether
the span is an entity of any type. At prediction, each sequence keeps its ``top_k``
best spans by that score and only those are scored against the labels; the others get no
score (probability 0), so they cannot be predicted.

It is off by default: ``model.span_prefilter = None``. Train its layer for a model with
:func:`anyner.train.prefilter.train_span_filter` (the encoder and head are frozen: a few hundred steps of the
training data), save it beside the weights with :meth:`SpanPrefilter.save`
(``span_filter.safetensors``, which the ``gliner`` package ignores), and switch it on with
``model.span_prefilter = SpanPrefilter.load(folder, top_k=64)``. ``benchmarks/prefilter.py``
measures its speed-up and F1 change with 1,000 and 10,000 labels.

Only the torch path of ``markerV0`` span models runs it (bi-encoders and uni-encoders alike);
an ONNX export scores every span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

FILTER_FILE = "span_filter.safetensors"


@dataclass
class SpanPrefilter:
    """The pre-filter's layer and how many spans a sequence keeps.

    Attributes:
        weight: (4D,) float32, over the ``markerV0`` span hidden vector (after its ReLU).
        bias: the layer's bias.
        top_k: spans kept per sequence (a window of a text; at most W x K).
    """

    weight: np.ndarray
    bias: float
    top_k: int

    def __post_init__(self) -> None:
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {self.top_k!r}")
        self.weight = np.asarray(self.weight, dtype=np.float32).reshape(-1)
        self._torch: dict[Any, torch.Tensor] = {}

    def with_top_k(self, top_k: int) -> SpanPrefilter:
        return SpanPrefilter(self.weight, self.bias, top_k)

    def tensor(self, like: torch.Tensor) -> torch.Tensor:
        """The weight as a tensor on ``like``'s device and dtype (made once per device and dtype)."""
        import torch

        key = (like.device, like.dtype)
        if key not in self._torch:
            self._torch[key] = torch.from_numpy(self.weight).to(like.device, like.dtype)
        return self._torch[key]

    @classmethod
    def load(cls, folder: str | Path, top_k: int) -> SpanPrefilter:
        """The layer saved in ``folder/span_filter.safetensors``, keeping ``top_k`` spans."""
        from safetensors.numpy import load_file

        path = Path(folder) / FILTER_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no {FILTER_FILE}: train one with anyner.train.prefilter.train_span_filter(model, "
                "train_config) and save it with its .save(folder)"
            )
        values = load_file(str(path))
        if set(values) != {"weight", "bias"}:
            raise ValueError(f"{path} is not a span filter (tensors {sorted(values)}, expected weight, bias)")
        return cls(values["weight"], float(values["bias"].reshape(-1)[0]), top_k)

    def save(self, folder: str | Path) -> Path:
        """Write the layer to ``folder/span_filter.safetensors`` (``top_k`` is chosen at load)."""
        from safetensors.numpy import save_file

        path = Path(folder) / FILTER_FILE
        save_file({"weight": self.weight, "bias": np.array([self.bias], dtype=np.float32)}, str(path))
        return path


def check_supported(model: Any) -> None:
    """The pre-filter needs a markerV0 span head on the torch path."""
    if model.model is None:
        raise NotImplementedError(
            "the span pre-filter runs on the torch backend only (an ONNX export scores every span)"
        )
    if model.config.span_mode != "markerV0" or not hasattr(model.model, "span"):
        raise NotImplementedError(
            f"the span pre-filter needs a span model with span_mode='markerV0'; this one has "
            f"model_type={model.config.model_type!r}, span_mode={model.config.span_mode!r}"
        )


def filtered_scores(
    h: torch.Tensor, valid: torch.Tensor, q: torch.Tensor, bias: torch.Tensor, prefilter: SpanPrefilter
) -> torch.Tensor:
    """Logits (B, W, K, C) where only each row's ``top_k`` spans by the pre-filter are scored.

    ``h`` (B, W, K, H): the span hidden vectors; ``valid`` (B, W, K): spans inside the text;
    ``q`` (B, C, H) and ``bias`` (B, C): the labels folded into the last layer. The spans not
    kept get ``-inf`` (probability 0).
    """
    import torch

    B, W, K, H = h.shape
    C = q.shape[1]
    score = (h @ prefilter.tensor(h)).masked_fill(~valid, -math.inf).view(B, W * K)
    k = min(prefilter.top_k, W * K)
    index = score.topk(k, dim=1).indices  # (B, k)
    kept = h.reshape(B, W * K, H).gather(1, index[..., None].expand(-1, -1, H))  # (B, k, H)
    logits = torch.baddbmm(bias[:, None, :], kept, q.transpose(1, 2))  # (B, k, C)
    # a row with fewer than k spans inside its text keeps some outside it: they stay unscored
    logits = logits.masked_fill(~valid.view(B, W * K).gather(1, index)[..., None], -math.inf)
    out = torch.full((B, W * K, C), -math.inf, dtype=logits.dtype, device=logits.device)
    out.scatter_(1, index[..., None].expand(-1, -1, C), logits)
    return out.view(B, W, K, C)


def span_hidden(net: Any, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The span hidden vectors (B, W, K, 4D) of a markerV0 network and which spans are inside the text."""

    inputs = {
        k: tensors[k] for k in ("input_ids", "attention_mask", "word_index", "word_present", "text_lengths")
    }
    if hasattr(net, "text_words"):  # bi-encoder
        words = net.text_words(**inputs)
    else:
        words, _ = net.words_and_labels(**inputs, label_index=tensors["label_index"])
    return net.span.hidden(words)


__all__ = [
    "FILTER_FILE",
    "SpanPrefilter",
    "check_supported",
    "filtered_scores",
    "span_hidden",
]
