"""The GLiNER token-level network: per word and label, a start, an end and an inside score.

A token-level model (``span_mode: "token_level"``: NuNER_Zero, the gliner_token models)
reads the same prompt as a span model and makes the same word and label vectors. Its
head scores every (word, label) pair instead of every (span, label) pair, so entities
have no width limit: a span is a start word, an end word and inside words between them
that all score above the threshold (decoded in :func:`anyner.decode.token_candidates`).

The scorer projects each word vector ``t`` and each label vector ``q`` to two halves,
``t = (t0, t1)`` and ``q = (q0, q1)``, and feeds ``[t0, q0, t1 * q1]`` to an MLP with three
outputs. Its first Linear is split by those three blocks: ``A t0 + B q0 + C (t1 * q1) + b``.
The first two are computed once per word and once per label, not once per pair, which
takes two thirds of the FLOPs out of the pair-sized product; the sum equals the Linear on
the concatenation up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

from anyner.config import AnyNERConfig
from anyner.model.gliner import GLiNERModel
from anyner.model.span import mlp

START, END, INSIDE = 0, 1, 2  # the score axis of the logits (B, W, 3, C)


class TokenScorer(nn.Module):
    """(word vectors (B, W, D), label vectors (B, C, D)) -> logits (B, W, 3, C).

    Parameter names follow GLiNER checkpoints (``proj_token``, ``proj_label``, ``out_mlp.0``
    and ``out_mlp.3``), so weights load without renaming.
    """

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        D = hidden_size
        self.proj_token = nn.Linear(D, 2 * D)
        self.proj_label = nn.Linear(D, 2 * D)
        self.out_mlp = mlp(3 * D, 4 * D, 3, dropout)

    def forward(self, words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        D = self.proj_token.in_features  # a constant in an export: the weight blocks stay weights
        t0, t1 = self.proj_token(words).split(D, dim=-1)  # (B, W, D) each
        q0, q1 = self.proj_label(labels).split(D, dim=-1)  # (B, C, D) each
        first = self.out_mlp[0]
        a, b, c = first.weight.split(D, dim=1)  # (4D, D) each: the blocks of [t0, q0, t1 * q1]
        per_word = t0 @ a.T + first.bias  # (B, W, 4D)
        per_label = q0 @ b.T  # (B, C, 4D)
        pair = torch.einsum("bwd,bcd->bwcd", t1, q1) @ c.T  # (B, W, C, 4D)
        hidden = pair + per_word[:, :, None] + per_label[:, None]
        out = self.out_mlp[3](self.out_mlp[2](self.out_mlp[1](hidden)))  # (B, W, C, 3)
        return out.permute(0, 1, 3, 2)  # (B, W, 3, C): labels last, as in every variant


class TokenGLiNERModel(GLiNERModel):
    """Encoder -> word and label vectors -> optional BiLSTM -> start/end/inside logits (B, W, 3, C)."""

    def _build_head(self, config: AnyNERConfig) -> None:
        self.scorer = TokenScorer(config.hidden_size, config.dropout)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        word_present: torch.Tensor,
        text_lengths: torch.Tensor,
        label_index: torch.Tensor,
    ) -> torch.Tensor:
        words, labels = self.words_and_labels(
            input_ids, attention_mask, word_index, word_present, text_lengths, label_index
        )
        return self.scorer(words, labels)  # (B, W, 3, C)
