"""The GLiNER span network: tensors in, span-by-label logits out.

It sees neither strings nor words: the prompt builder has already located each
word's first subword and each label's ``<<ENT>>`` token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from anyner.config import AnyNERConfig
from anyner.model.encoder import Encoder
from anyner.model.span import SPAN_LAYERS, mlp

if TYPE_CHECKING:
    from transformers import PretrainedConfig


class BiLSTM(nn.Module):
    """A bidirectional LSTM over the word vectors of each text (padding excluded)."""

    def __init__(self, hidden_size: int, num_layers: int):
        super().__init__()
        self.lstm = nn.LSTM(
            hidden_size, hidden_size // 2, num_layers=num_layers, bidirectional=True, batch_first=True
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, W, _ = x.shape
        if not torch.is_grad_enabled() and (B == 1 or bool((lengths == W).all())):
            # No padding, so packing would change nothing. Only at inference: oneDNN's
            # LSTM backward on unpacked input is many times slower than the packed one.
            return self.lstm(x)[0]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=W)
        return out  # (B, W, D), zeros past each length


class GLiNERModel(nn.Module):
    """Encoder -> word and label vectors -> optional BiLSTM -> span x label logits."""

    def __init__(self, config: AnyNERConfig, hf_config: PretrainedConfig, pretrained_encoder: bool = False):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.encoder = Encoder(hf_config, D, pretrained_from=config.encoder if pretrained_encoder else None)
        self.rnn = BiLSTM(D, config.num_rnn_layers) if config.num_rnn_layers > 0 else None
        self._build_head(config)

    def _build_head(self, config: AnyNERConfig) -> None:
        D = config.hidden_size
        self.span = SPAN_LAYERS[config.span_mode](D, config.max_width, config.dropout)
        self.label_proj = mlp(D, 4 * D, D, config.dropout)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) subword ids of "<<ENT>> label ... <<SEP>> words"
        attention_mask: torch.Tensor,  # (B, T)
        word_index: torch.Tensor,  # (B, W) position of each word's first subword (0 where none)
        word_present: torch.Tensor,  # (B, W) 1 where the word has a subword; padding and empty words 0
        text_lengths: torch.Tensor,  # (B,) words per text
        label_index: torch.Tensor,  # (B, C) position of each label's <<ENT>> token
    ) -> torch.Tensor:
        words, labels = self.words_and_labels(
            input_ids, attention_mask, word_index, word_present, text_lengths, label_index
        )
        return self.span(words, self.label_proj(labels))  # (B, W, K, C)

    def words_and_labels(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        word_index: torch.Tensor,
        word_present: torch.Tensor,
        text_lengths: torch.Tensor,
        label_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Word vectors (B, W, D), after the BiLSTM if any, and label vectors (B, C, D) before
        any label head: what every uni-encoder variant computes before its own scoring."""
        h = self.encoder(input_ids, attention_mask)  # (B, T, H)
        H = h.shape[-1]
        labels = self.encoder.project(h.gather(1, label_index[..., None].expand(-1, -1, H)))  # (B, C, D)
        return self.word_vectors(h, word_index, word_present, text_lengths), labels

    def word_vectors(
        self,
        h: torch.Tensor,
        word_index: torch.Tensor,
        word_present: torch.Tensor,
        text_lengths: torch.Tensor,
        rnn: bool = True,
    ) -> torch.Tensor:
        """Subword vectors (B, T, H) -> each word's first-subword vector (B, W, D), after the BiLSTM
        (if the model has one and ``rnn``)."""
        H = h.shape[-1]
        words = h.gather(1, word_index[..., None].expand(-1, -1, H))  # (B, W, H)
        words = self.encoder.project(words) * word_present[..., None].to(h.dtype)  # (B, W, D)
        if rnn and self.rnn is not None:
            words = self.rnn(words, text_lengths)
        return words
