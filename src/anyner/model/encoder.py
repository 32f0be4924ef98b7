"""Subword ids -> contextual subword vectors, through any Hugging Face encoder."""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig


class Encoder(nn.Module):
    """A Hugging Face ``AutoModel`` plus the projection to the head's width.

    The projection is linear and per-token, so it is applied after the word and
    label vectors are gathered: the same result for far fewer rows.
    """

    def __init__(self, hf_config: PretrainedConfig, hidden_size: int, pretrained_from: str | None = None):
        super().__init__()
        if pretrained_from is not None:
            self.transformer = AutoModel.from_pretrained(pretrained_from, config=hf_config)
        else:
            self.transformer = AutoModel.from_config(hf_config)
        width = self.transformer.config.hidden_size
        self.projection = nn.Linear(width, hidden_size) if width != hidden_size else None

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        return out.last_hidden_state  # (B, T, H)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.projection is None else self.projection(x)  # (..., D)

    def resize_vocab(self, size: int) -> None:
        if self.transformer.get_input_embeddings().num_embeddings != size:
            self.transformer.resize_token_embeddings(size, mean_resizing=False)
