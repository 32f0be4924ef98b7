"""GLiNER bi-encoder networks: the text and the labels read by two encoders.

A bi-encoder checkpoint (``labels_encoder`` in its config, e.g. knowledgator/gliner-bi-*)
reads the text alone, without a label prompt, and each label on its own through a
second encoder whose subword vectors are mean-pooled (padding excluded) into one vector
per label. A label's vector depends on nothing else, so it can be computed once and
reused for every text (:meth:`anyner.pipeline.AnyNER.encode_labels`): the network's
forward takes the label vectors as an input, ``label_vectors`` (B, C, D), and the
label encoder runs only in :meth:`encode_labels`.

The heads are the uni-encoder ones: a span head after the label MLP (``bi_encoder_span``)
or the token-level scorer (``bi_encoder_token``).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch

from anyner.config import AnyNERConfig
from anyner.model.encoder import Encoder
from anyner.model.gliner import GLiNERModel
from anyner.model.span import is_tracing
from anyner.model.token import TokenScorer

if TYPE_CHECKING:
    from transformers import PretrainedConfig

PROJECTED_CACHE = 64  # label groups (of up to 512 labels) whose projection is kept


class _BiEncoder(GLiNERModel):
    def __init__(self, config: AnyNERConfig, hf_config: PretrainedConfig, pretrained_encoder: bool = False):
        from anyner.checkpoint import labels_hf_config

        super().__init__(config, hf_config, pretrained_encoder=pretrained_encoder)
        self._projected: dict = {}  # project_labels' cache: not a parameter, not saved
        self.label_encoder = Encoder(
            labels_hf_config(config),
            config.hidden_size,
            pretrained_from=config.labels_encoder if pretrained_encoder else None,
        )

    def encode_labels(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Label subword ids (L, T) -> one vector per label (L, D): projected, then mean-pooled."""
        h = self.label_encoder.project(self.label_encoder(input_ids, attention_mask))  # (L, T, D)
        mask = attention_mask[..., None].to(h.dtype)
        return (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def text_words(self, input_ids, attention_mask, word_index, word_present, text_lengths) -> torch.Tensor:
        """Word vectors (B, W, D) of the text. At inference, rows that repeat (one window read
        with several groups of labels: each group is a row) are encoded once."""
        B = input_ids.shape[0]
        if B > 1 and not torch.is_grad_enabled() and not is_tracing():
            key = torch.cat([input_ids, attention_mask, word_index, word_present.to(input_ids.dtype)], dim=1)
            unique, inverse = torch.unique(key, dim=0, return_inverse=True)
            if len(unique) < B:
                pick = torch.zeros(len(unique), dtype=torch.long, device=input_ids.device)
                pick.scatter_(0, inverse, torch.arange(B, device=input_ids.device))  # one row of each kind
                words = self._words(
                    input_ids[pick], attention_mask[pick], word_index[pick], word_present[pick]
                )
                return words[inverse]
        return self._words(input_ids, attention_mask, word_index, word_present)

    def _words(self, input_ids, attention_mask, word_index, word_present) -> torch.Tensor:
        # No BiLSTM: the reference (gliner 0.2.29) builds one for a bi-encoder with num_rnn_layers > 0
        # but never runs it, and its checkpoints are trained and scored that way. The weights are
        # kept, so that a re-saved folder has every tensor it was loaded with.
        h = self.encoder(input_ids, attention_mask)
        return self.word_vectors(h, word_index, word_present, None, rnn=False)


class BiEncoderSpanModel(_BiEncoder):
    """Text encoder -> words -> optional BiLSTM -> span x label logits (B, W, K, C) against label vectors."""

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) subword ids of the words alone
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        word_present: torch.Tensor,
        text_lengths: torch.Tensor,
        label_index: torch.Tensor,  # (B, C) unused: the labels come as vectors
        label_vectors: torch.Tensor,  # (B, C, D) from encode_labels
    ) -> torch.Tensor:
        words = self.text_words(input_ids, attention_mask, word_index, word_present, text_lengths)
        return self.span(words, self.project_labels(label_vectors.to(words.dtype)))

    def forget_labels(self) -> None:
        """Empty the cache of projected label groups (:meth:`project_labels`)."""
        self._projected.clear()

    def project_labels(self, label_vectors: torch.Tensor) -> torch.Tensor:
        """The label MLP over (B, C, D) label vectors. At inference each row's result is kept (a
        small cache keyed by the row's values): the same label group recurs in every batch of a
        prediction, and with thousands of labels the MLP over them costs more than the text."""
        if torch.is_grad_enabled() or is_tracing() or self.training:
            return self.label_proj(label_vectors)
        rows = []
        for row in label_vectors:
            key = (
                row.shape,
                row.dtype,
                row.device,
                hashlib.blake2b(row.cpu().numpy().tobytes(), digest_size=16).digest(),
            )
            hit = self._projected.get(key)
            if hit is None:
                hit = self.label_proj(row)
                if len(self._projected) >= PROJECTED_CACHE:
                    self._projected.pop(next(iter(self._projected)))  # the oldest
                self._projected[key] = hit
            rows.append(hit)
        return torch.stack(rows)


class BiEncoderTokenModel(_BiEncoder):
    """Text encoder -> words -> optional BiLSTM -> start/end/inside logits (B, W, 3, C)."""

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
        label_vectors: torch.Tensor,
    ) -> torch.Tensor:
        words = self.text_words(input_ids, attention_mask, word_index, word_present, text_lengths)
        return self.scorer(words, label_vectors.to(words.dtype))
