"""Dropout with cheaper random masks on CPU, for training.

torch's CPU dropout draws its Bernoulli mask element by element from one mt19937
stream: about 11 ns an element on the 2-core test machine, a quarter of a GLiNER
training step (the encoder's attention probabilities alone are B x heads x T x T).
Here the mask comes from 16-bit uniform integers drawn in bulk by NumPy's SFC64
generator: an element is kept when its integer is at or above ``round(p * 65536)``,
so the drop rate is ``p`` to within 2**-17, and kept elements are scaled by
``1 / (1 - p)`` as usual. The generator is seeded from torch's on every call, so a
seeded run repeats and a resumed run (which restores torch's RNG state) continues
exactly. Other devices, and eval mode, behave as ``torch.nn.functional.dropout``.

:func:`use_fast_dropout` puts it into a network: every ``nn.Dropout`` module, and the
attention-probability dropout of encoders whose attention goes through transformers'
``AttentionInterface`` (BERT, MiniLM, RoBERTa, ...). With dropout off, that attention
is transformers' own SDPA function, unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ATTENTION = "anyner_sdpa"


def keep_mask(shape: tuple[int, ...], p: float) -> torch.Tensor:
    """A CPU bool tensor of ``shape``, each element True with probability ``1 - p``."""
    seed = int(torch.randint(0, 2**62, (1,)))  # from torch's generator: reproducible and resumable
    n = int(np.prod(shape))
    bits = np.random.Generator(np.random.SFC64(seed)).integers(-32768, 32768, n, dtype=np.int16)
    return torch.from_numpy(bits).view(shape) >= round(p * 65536) - 32768


def scaled_keep(like: torch.Tensor, p: float) -> torch.Tensor:
    """A dropout mask shaped and typed like ``like``: 0 with probability ``p``, else 1 / (1 - p)."""
    if like.device.type == "cpu":
        return keep_mask(tuple(like.shape), p).to(like.dtype).mul_(1 / (1 - p))
    from anyner.model.span import bernoulli_keep

    return bernoulli_keep(like, p)


def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    return torch.where(keep_mask(tuple(x.shape), p), x * (1.0 / (1.0 - p)), 0.0)


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask with :func:`keep_mask`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def _attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):  # noqa: ANN001
    """transformers' SDPA attention, except that training-time dropout uses :func:`fast_dropout`."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if dropout == 0.0 or query.device.type != "cpu" or kwargs.get("is_causal"):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    if key.shape[1] != query.shape[1]:  # grouped key/value heads
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    weights = (query @ key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = fast_dropout(weights.softmax(dim=-1), dropout)
    return (weights @ value).transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(ATTENTION, _attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def use_fast_dropout(net: nn.Module) -> nn.Module:
    """Give ``net`` the fast masks in place (same rates, same modules otherwise); returns it.

    That covers every ``nn.Dropout``, the encoder's attention dropout, and the span
    layers' mask function (``keep_mask``, see :class:`anyner.model.span.MarkerV0`).
    """
    for module in net.modules():
        if hasattr(module, "keep_mask"):
            module.keep_mask = scaled_keep
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p, child.inplace).train(child.training))
    for module in net.modules():
        config = getattr(module, "config", None)
        if (
            hasattr(module, "set_attn_implementation")
            and getattr(config, "_attn_implementation", None) == "sdpa"
            and getattr(module, "_supports_attention_backend", False)
        ):
            _register()
            module.set_attn_implementation(ATTENTION)
    return net


def use_torch_dropout(net: nn.Module) -> nn.Module:
    """Undo :func:`use_fast_dropout` (before a model is saved or handed to users)."""
    from anyner.model.span import bernoulli_keep

    for module in net.modules():
        if getattr(module, "keep_mask", None) is scaled_keep:
            module.keep_mask = bernoulli_keep
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is Dropout:
                setattr(parent, name, nn.Dropout(child.p, child.inplace).train(child.training))
    for module in net.modules():
        config = getattr(module, "config", None)
        if (
            hasattr(module, "set_attn_implementation")
            and getattr(config, "_attn_implementation", None) == ATTENTION
        ):
            module.set_attn_implementation("sdpa")
    return net
