"""Prompted inputs -> padded tensors for the model."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from anyner.prompt import PromptedInput


def collate(
    items: Sequence[PromptedInput], pad_id: int, device: torch.device | str = "cpu"
) -> dict[str, torch.Tensor]:
    """Pad a batch of prompted inputs into the tensors :class:`GLiNERModel` takes.

    Returns input_ids/attention_mask (B, T), word_index/word_present (B, W),
    text_lengths (B,) and label_index (B, C). Padding words point at position 0
    with ``word_present`` 0; padding labels point at position 0.
    """
    B = len(items)
    T = max(len(x.input_ids) for x in items)
    W = max(1, max(len(x.word_index) for x in items))
    C = max(len(x.label_index) for x in items)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((B, T), dtype=torch.long)
    word_index = torch.zeros((B, W), dtype=torch.long)
    word_present = torch.zeros((B, W), dtype=torch.bool)
    label_index = torch.zeros((B, C), dtype=torch.long)
    text_lengths = torch.zeros(B, dtype=torch.long)
    for i, x in enumerate(items):
        input_ids[i, : len(x.input_ids)] = torch.tensor(x.input_ids)
        attention_mask[i, : len(x.input_ids)] = 1
        wi = torch.tensor(x.word_index, dtype=torch.long)
        word_present[i, : len(wi)] = wi >= 0
        word_index[i, : len(wi)] = wi.clamp(min=0)
        label_index[i, : len(x.label_index)] = torch.tensor(x.label_index, dtype=torch.long)
        text_lengths[i] = len(x.word_index)
    out = dict(
        input_ids=input_ids,
        attention_mask=attention_mask,
        word_index=word_index,
        word_present=word_present,
        text_lengths=text_lengths,
        label_index=label_index,
    )
    return {k: v.to(device) for k, v in out.items()}
