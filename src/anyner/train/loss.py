"""Binary cross-entropy (or focal loss) over every span x label pair, padding masked."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def span_label_loss(
    logits: torch.Tensor,  # (B, W, K, C)
    targets: torch.Tensor,  # (B, W, K, C) 1 for a gold (span, label) pair
    mask: torch.Tensor,  # (B, W, K, C) 1 for pairs that exist (span inside its text, label in its prompt)
    kind: str = "bce",
    alpha: float = 0.75,
    gamma: float = 2.0,
    reduction: str = "sum",
) -> torch.Tensor:
    """The training loss.

    ``focal`` down-weights easy pairs by ``(1 - p_t) ** gamma`` and weighs positives by
    ``alpha`` (negatives by ``1 - alpha``; alpha < 0 turns the weighting off).
    ``sum`` adds over pairs as GLiNER does; ``mean`` divides by the number of pairs.
    """
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets, reduction="none")
    if kind == "focal":
        p = torch.sigmoid(logits.float())
        p_t = p * targets + (1 - p) * (1 - targets)
        loss = loss * (1 - p_t) ** gamma
        if alpha >= 0:
            loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    loss = loss * mask
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / mask.sum().clamp(min=1)
