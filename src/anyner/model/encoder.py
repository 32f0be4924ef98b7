"""Subword ids -> contextual subword vectors, through any Hugging Face encoder."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from anyner.model.bert import BertConfig, BertModel

if TYPE_CHECKING:
    from transformers import PretrainedConfig


class Encoder(nn.Module):
    """A Hugging Face ``AutoModel`` plus the projection to the head's width.

    Given a :class:`anyner.model.bert.BertConfig` instead of a transformers config, the
    encoder is anyner's own BERT (same weights, same outputs, no transformers import).

    The projection is linear and per-token, so it is applied after the word and
    label vectors are gathered: the same result for far fewer rows.
    """

    def __init__(
        self, hf_config: PretrainedConfig | Any, hidden_size: int, pretrained_from: str | None = None
    ):
        super().__init__()
        if isinstance(hf_config, BertConfig):
            if pretrained_from is not None:
                raise ValueError(
                    "the built-in BERT module loads weights from a GLiNER folder, not a Hub encoder"
                )
            self.transformer: Any = BertModel(hf_config)
        elif pretrained_from is not None:
            from transformers import AutoModel

            self.transformer = AutoModel.from_pretrained(pretrained_from, config=hf_config)
        else:
            from transformers import AutoModel

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
