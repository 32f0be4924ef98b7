"""The GLiNER span relation-extraction network (GLiNER's ``UniEncoderSpanRelexGLiNER``).

The entity part is the span network of :mod:`anyner.model.gliner`. Relations come after:

1. the spans the entity scores keep (any label above its threshold) are the graph's nodes;
   each node's vector is the span layer's span vector (GLiNER's span representation);
2. an adjacency layer (``relations_layer``: dot, mlp, attention/attn, bilinear, gcn, gat) scores
   every ordered pair of nodes; the pairs above the adjacency threshold are kept. With
   ``relations_layer="none"`` there is no adjacency layer and every ordered pair is kept;
3. a pair's vector is an MLP of the head's and the tail's vectors side by side; its score for a
   relation is the dot product with the relation's vector, which is the encoder's (projected)
   vector at that relation's ``<<REL>>`` token (or the token after it, ``embed_rel_token=False``).

The relation part runs one text at a time on that text's nodes only, so padding in a batch
never reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from anyner.config import AnyNERConfig
from anyner.model.gliner import GLiNERModel
from anyner.model.span import Marker, MarkerV0, mlp

if TYPE_CHECKING:
    from transformers import PretrainedConfig

RELATION_LAYERS = ("dot", "mlp", "attention", "attn", "bilinear", "gcn", "gat", "none")
GLINER_HEADS = 8  # GLiNER builds its attention layers with 8 heads


class _Dot(nn.Module):
    def __init__(self, d: int):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x @ x.T)


class _PairMLP(nn.Module):
    """sigmoid(MLP([x_i; x_j])): one hidden layer of width D."""

    def __init__(self, d: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        pairs = torch.cat([x[:, None, :].expand(n, n, -1), x[None, :, :].expand(n, n, -1)], dim=-1)
        return torch.sigmoid(self.mlp(pairs)[..., 0])


def _attention_weights(attn: nn.MultiheadAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head self-attention over the n nodes: (output (n, D), weights averaged over heads (n, n))."""
    out, weights = attn(x[None], x[None], x[None], need_weights=True, average_attn_weights=True)
    return out[0], weights[0]


class _Attention(nn.Module):
    """The attention weights themselves, averaged over the heads (no sigmoid)."""

    def __init__(self, d: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, GLINER_HEADS, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _attention_weights(self.attn, x)[1]


class _Bilinear(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.proj(x)
        return torch.sigmoid(z @ z.T)


class _GCNLayer(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.linear = nn.Linear(d, d)


class _GCN(nn.Module):
    """One graph convolution over the dot-product graph (self-loops, symmetric normalisation),
    then sigmoid(z_i . z_j) of a projection of the updated nodes."""

    def __init__(self, d: int):
        super().__init__()
        self.gcn = _GCNLayer(d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.sigmoid(x @ x.T) + torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
        norm = a.sum(-1).clamp(min=1e-6).pow(-0.5)  # D^-1/2
        h = torch.relu(self.gcn.linear((norm[:, None] * a * norm[None, :]) @ x))
        z = self.proj(h)
        return torch.sigmoid(z @ z.T)


class _GAT(nn.Module):
    """Self-attention updates the nodes; sigmoid(z_i . z_j) of a projection of them."""

    def __init__(self, d: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, GLINER_HEADS, batch_first=True)
        self.linear = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.linear(_attention_weights(self.attn, x)[0])
        return torch.sigmoid(z @ z.T)


_ADJACENCY = {
    "dot": _Dot,
    "mlp": _PairMLP,
    "attention": _Attention,
    "attn": _Attention,
    "bilinear": _Bilinear,
    "gcn": _GCN,
    "gat": _GAT,
}


def relations_layer(config: AnyNERConfig) -> str:
    """The config's ``relations_layer`` (lower case), checked."""
    mode = str(config.extra.get("relations_layer", "")).lower()
    if mode not in RELATION_LAYERS:
        raise NotImplementedError(
            f"relations_layer={config.extra.get('relations_layer')!r} is not supported; anyner implements "
            f"{', '.join(RELATION_LAYERS)}"
        )
    return mode


class RelexGLiNERModel(GLiNERModel):
    """The span network plus GLiNER's relation head: an adjacency layer and a pair MLP.

    ``forward`` takes the fields of :class:`anyner.batching.Batch` and returns the entity logits
    (B, W, K, C), as the span network does; :meth:`encode` also returns the word and relation
    vectors that :meth:`relations` reads.
    """

    def __init__(self, config: AnyNERConfig, hf_config: PretrainedConfig, pretrained_encoder: bool = False):
        super().__init__(config, hf_config, pretrained_encoder)
        D = config.hidden_size
        mode = relations_layer(config)
        if mode in ("attention", "attn", "gat") and D % GLINER_HEADS:
            raise ValueError(
                f"relations_layer={mode!r} needs hidden_size divisible by {GLINER_HEADS}, got {D}"
            )
        self.adjacency = _ADJACENCY[mode](D) if mode != "none" else None
        self.pair_proj = mlp(2 * D, 4 * D, D, config.dropout)

    def encode(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        word_present: torch.Tensor,
        text_lengths: torch.Tensor,
        label_index: torch.Tensor,
        relation_index: torch.Tensor,  # (B, R) position of each relation's vector token
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Entity logits (B, W, K, C), word vectors (B, W, D) and relation vectors (B, R, D)."""
        h = self.encoder(input_ids, attention_mask)  # (B, T, H)
        H = h.shape[-1]
        labels = self.encoder.project(h.gather(1, label_index[..., None].expand(-1, -1, H)))
        rels = self.encoder.project(h.gather(1, relation_index[..., None].expand(-1, -1, H)))
        words = self.word_vectors(h, word_index, word_present, text_lengths)
        return self.span(words, self.label_proj(labels)), words, rels

    def span_vectors(self, words: torch.Tensor, spans: torch.Tensor) -> torch.Tensor:
        """One text's words (W, D) and spans (n, 2) ``[start, end)`` -> the span layer's vectors (n, D)."""
        span = self.span
        if not isinstance(span, MarkerV0 | Marker):
            raise NotImplementedError(f"span vectors of {type(span).__name__}")
        start = span.project_start(words[spans[:, 0]])
        end = span.project_end(words[spans[:, 1] - 1])
        return span.out_project(torch.cat([start, end], dim=-1).relu())

    def pair_logits(
        self, words: torch.Tensor, spans: torch.Tensor, rels: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Every ordered pair of one text's spans, unfiltered (training reads them all).

        Returns:
            the adjacency scores (n, n) (None with ``relations_layer="none"``) and the relation
            logits (n, n, R) of pair (head i, tail j); the diagonal is meaningless.
        """
        x = self.span_vectors(words, spans)  # (n, D)
        n = x.shape[0]
        adjacency = self.adjacency(x) if self.adjacency is not None else None
        pairs = torch.cat([x[:, None, :].expand(n, n, -1), x[None, :, :].expand(n, n, -1)], dim=-1)
        return adjacency, self.pair_proj(pairs) @ rels.T

    def relations(
        self, words: torch.Tensor, spans: torch.Tensor, rels: torch.Tensor, adjacency_threshold: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One text's relation scores.

        Args:
            words: (W, D) word vectors of the text.
            spans: (n, 2) the entity spans ``[start, end)`` in words, in (start, end) order.
            rels: (R, D) relation vectors.
            adjacency_threshold: a pair is scored when its adjacency is above this.

        Returns:
            pairs (N, 2) (head, tail) indices into ``spans``, by head then tail; logits (N, R).
        """
        n = spans.shape[0]
        empty = torch.zeros((0, 2), dtype=torch.long, device=words.device)
        if n < 2:
            return empty, words.new_zeros((0, rels.shape[0]))
        x = self.span_vectors(words, spans)  # (n, D)
        off_diagonal = ~torch.eye(n, dtype=torch.bool, device=x.device)
        if self.adjacency is not None:
            keep = (self.adjacency(x) > adjacency_threshold) & off_diagonal
        else:
            keep = off_diagonal
        pairs = keep.nonzero()  # row-major: by head, then tail
        if not len(pairs):
            return empty, words.new_zeros((0, rels.shape[0]))
        pair = self.pair_proj(torch.cat([x[pairs[:, 0]], x[pairs[:, 1]]], dim=-1))  # (N, D)
        return pairs, pair @ rels.T


__all__ = ["RELATION_LAYERS", "RelexGLiNERModel", "relations_layer"]
