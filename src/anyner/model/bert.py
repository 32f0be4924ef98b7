"""A BERT encoder in plain torch, for inference that starts fast.

Importing transformers' modelling code costs about 4 s on the 2-core test machine
(generation utilities, distributed tensors, scikit-learn where it is installed), three
times what importing torch does. The built-in model and every GLiNER checkpoint on a
BERT-family encoder (MiniLM, BERT, ...) need none of it to run: this module computes
what ``transformers.BertModel`` computes (absolute positions, post-layer-norm blocks,
exact GELU, the same scaled dot-product attention), with the same parameter names, so
the same ``model.safetensors`` loads into either and saves back unchanged. A test
checks it against ``BertModel`` on real weights.

:func:`supports` says which encoder configs it covers; anything else (DeBERTa, the
encoders of most public GLiNER checkpoints, BERT variants with relative positions)
goes through transformers as before. anyner loads it only for inference
(``AnyNER.from_pretrained``); training builds transformers' module, whose attention
dropout the training loop replaces with its faster one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

_ACTIVATIONS = {"gelu": F.gelu}


def supports(encoder_config: Mapping[str, Any] | None) -> bool:
    """True when ``encoder_config`` (a checkpoint's ``encoder_config``) describes a BERT this
    module computes exactly: ``model_type`` bert, absolute positions, exact GELU, an encoder only."""
    if not isinstance(encoder_config, Mapping):
        return False
    c = encoder_config
    return (
        c.get("model_type") == "bert"
        and c.get("position_embedding_type", "absolute") == "absolute"
        and c.get("hidden_act", "gelu") in _ACTIVATIONS
        and not c.get("is_decoder", False)
        and not c.get("add_cross_attention", False)
        and c.get("chunk_size_feed_forward", 0) == 0
        and all(isinstance(c.get(k), int) for k in ("vocab_size", "hidden_size", "num_hidden_layers"))
        and all(isinstance(c.get(k), int) for k in ("num_attention_heads", "intermediate_size"))
        and c["hidden_size"] % c["num_attention_heads"] == 0
    )


class BertConfig:
    """The encoder config as read from a checkpoint: its values as attributes, ``to_dict()``
    giving them back for the file, ``model_type`` "bert"."""

    model_type = "bert"

    def __init__(self, values: Mapping[str, Any]):
        values = dict(values)
        values.pop("model_type", None)
        self.__dict__["_values"] = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__["_values"][name] = value

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__["_values"].get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__["_values"])


class _Output:
    def __init__(self, last_hidden_state: torch.Tensor):
        self.last_hidden_state = last_hidden_state


def _embedding(rows: int, width: int, std: float, padding_idx: int | None = None) -> nn.Embedding:
    # The weight is made here rather than by nn.Embedding's own initialisation: on the meta
    # device (where anyner builds a network before loading its weights) that initialisation
    # goes through torch's Python reference kernels, whose first use imports sympy and the
    # compiler stack (about 1.3 s).
    weight = torch.empty(rows, width)
    if weight.device.type != "meta":
        with torch.no_grad():
            weight.normal_(0.0, std)
            if padding_idx is not None:
                weight[padding_idx] = 0
    return nn.Embedding(rows, width, padding_idx=padding_idx, _weight=weight)


class _Embeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        std = c.get("initializer_range", 0.02)
        self.word_embeddings = _embedding(c.vocab_size, c.hidden_size, std, c.get("pad_token_id"))
        self.position_embeddings = _embedding(c.get("max_position_embeddings", 512), c.hidden_size, std)
        self.token_type_embeddings = _embedding(c.get("type_vocab_size", 2), c.hidden_size, std)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.get("layer_norm_eps", 1e-12))
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.1))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        positions = torch.arange(T, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)[None]
        x = x + self.token_type_embeddings.weight[0]  # token type 0 everywhere, as GLiNER passes none
        return self.dropout(self.LayerNorm(x))


class _SelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.heads = c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.p = c.get("attention_probs_dropout_prob", 0.1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, self.heads, H // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0,
            scale=1 / math.sqrt(H // self.heads),
        )  # fmt: skip
        return out.transpose(1, 2).reshape(B, T, H)


class _AddNorm(nn.Module):
    """``dense``, dropout, then layer norm of the sum with the block's input (BertSelfOutput, BertOutput)."""

    def __init__(self, c: BertConfig, width_in: int):
        super().__init__()
        self.dense = nn.Linear(width_in, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.get("layer_norm_eps", 1e-12))
        self.dropout = nn.Dropout(c.get("hidden_dropout_prob", 0.1))

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class _Attention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = _SelfAttention(c)  # transformers' parameter names: attention.self.query
        self.output = _AddNorm(c, c.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.act = _ACTIVATIONS[c.get("hidden_act", "gelu")]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class _Layer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = _Attention(c)
        self.intermediate = _Intermediate(c)
        self.output = _AddNorm(c, c.intermediate_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.output(self.intermediate(x), x)


class _Stack(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(_Layer(c) for _ in range(c.num_hidden_layers))


class _Pooler(nn.Module):
    """Kept for the checkpoint's pooler weights (loaded and saved); GLiNER never uses its output."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)


class BertModel(nn.Module):
    """``transformers.BertModel``'s forward for the configs :func:`supports` accepts:
    ``(input_ids, attention_mask)`` -> an object with ``last_hidden_state`` (B, T, H)."""

    def __init__(self, config: BertConfig | Mapping[str, Any]):
        super().__init__()
        self.config = config if isinstance(config, BertConfig) else BertConfig(config)
        self.embeddings = _Embeddings(self.config)
        self.encoder = _Stack(self.config)
        self.pooler = _Pooler(self.config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, return_dict: bool = True) -> Any:
        x = self.embeddings(input_ids)
        # The mask is built once for every layer, additive: (B, 1, 1, T), 0 where a key may be
        # attended, the dtype's minimum elsewhere. (A boolean mask gives the same values, but an
        # ONNX export turns it into a Where and a NaN guard in every layer.)
        keep = attention_mask.bool()[:, None, None, :]
        mask = torch.zeros(keep.shape, dtype=x.dtype, device=x.device).masked_fill(
            ~keep, torch.finfo(x.dtype).min
        )
        for layer in self.encoder.layer:
            x = layer(x, mask)
        return _Output(x)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings
