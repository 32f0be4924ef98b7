"""The registry of model types: one row per GLiNER variant that anyner runs.

A row says, for one model type, how its ``gliner_config.json`` is translated into an
:class:`~anyner.config.AnyNERConfig` (and back), which network is built from that
config, and how the network's scores become candidate spans. Everything that
depends on the variant goes through this table: :mod:`anyner.checkpoint` asks it
which type a config implies, :class:`~anyner.pipeline.AnyNER` builds the network
and decodes through the row. Adding a variant means adding a row and its modules.

The row's parts are named as ``"module:attribute"`` strings, resolved on first use
(as spaCy's registry names its functions): this module imports nothing of anyner,
so the checkpoint reader, the config and the pipeline can all read it without an
import circle, and ``import anyner`` stays free of torch.

The GLiNER fields that select a variant, and what each implies, are in
:func:`implied_model_type`; a config that implies a type with no row fails with
``NotImplementedError`` naming the field and its value.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

#: The model type of span relation-extraction models (GLiNER's ``uni_encoder_span_relex``):
#: entities and the relations between them, :meth:`anyner.pipeline.AnyNER.predict_relations`.
RELEX = "uni_encoder_span_relex"


@dataclass(frozen=True)
class ModelType:
    """One supported model type.

    Attributes:
        name: the registry key, also ``AnyNERConfig.model_type``.
        gliner_name: GLiNER's ``model_type`` value written into saved configs.
        config_reader: ``"module:function"``, ``(raw dict, source name) -> AnyNERConfig``.
        config_writer: ``"module:function"``, ``(AnyNERConfig, hf_config) -> dict`` for the file.
        network: ``"module:class"``, built as ``cls(config, hf_config, pretrained_encoder=...)``;
            its ``forward`` takes the fields of :class:`anyner.batching.Batch` and returns
            logits (B, W, S, C): S is the span width K for span models, the three
            start/end/inside scores for token-level ones; labels are always last.
        candidates: ``"module:function"``, ``(probabilities (W, S, C), n_words, thresholds (C,))``
            -> :class:`anyner.decode.Candidates`.
        targets: ``"module:function"``, ``(batch, gold spans per row, labels per row, max_width)``
            -> :class:`anyner.batching.Targets` shaped like the network's logits (training).
        description: one line for error messages and docs.
        span_modes: the ``span_mode`` values a config of this type may hold.
    """

    name: str
    gliner_name: str
    config_reader: str
    config_writer: str
    network: str
    candidates: str
    targets: str
    description: str
    span_modes: tuple[str, ...] = ("markerV0", "marker")
    max_span_words: str = "max_width"  # the config field bounding a trainable gold span's width
    labels_in_prompt: bool = True  # uni-encoder: labels are read in the text's prompt; bi-encoder: apart

    def part(self, which: str) -> Callable[..., Any]:
        """The resolved callable of one of the ``"module:attribute"`` fields."""
        return _resolve(getattr(self, which))


@cache
def _resolve(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


MODEL_TYPES: dict[str, ModelType] = {
    "uni_encoder_span": ModelType(
        name="uni_encoder_span",
        gliner_name="gliner_uni_encoder_span",
        config_reader="anyner.checkpoint:span_config_from_gliner",
        config_writer="anyner.checkpoint:span_config_to_gliner",
        network="anyner.model.gliner:GLiNERModel",
        candidates="anyner.decode:candidates",
        targets="anyner.batching:span_targets",
        description="uni-encoder span model (span_mode marker or markerV0)",
    ),
    "uni_encoder_token": ModelType(
        name="uni_encoder_token",
        gliner_name="gliner_uni_encoder_token",
        config_reader="anyner.checkpoint:token_config_from_gliner",
        config_writer="anyner.checkpoint:span_config_to_gliner",
        network="anyner.model.token:TokenGLiNERModel",
        candidates="anyner.decode:token_candidates",
        targets="anyner.batching:token_targets",
        description="uni-encoder token-level model (span_mode token_level: start, end and inside scores per word)",
        span_modes=("token_level",),
        max_span_words="max_len",  # no width limit: a span only has to fit in the window
    ),
    "bi_encoder_span": ModelType(
        name="bi_encoder_span",
        gliner_name="gliner_bi_encoder_span",
        config_reader="anyner.checkpoint:bi_config_from_gliner",
        config_writer="anyner.checkpoint:span_config_to_gliner",
        network="anyner.model.biencoder:BiEncoderSpanModel",
        candidates="anyner.decode:candidates",
        targets="anyner.batching:span_targets",
        description="bi-encoder span model (labels_encoder: labels read by their own encoder, cacheable)",
        labels_in_prompt=False,
    ),
    "bi_encoder_token": ModelType(
        name="bi_encoder_token",
        gliner_name="gliner_bi_encoder_token",
        config_reader="anyner.checkpoint:bi_config_from_gliner",
        config_writer="anyner.checkpoint:span_config_to_gliner",
        network="anyner.model.biencoder:BiEncoderTokenModel",
        candidates="anyner.decode:token_candidates",
        targets="anyner.batching:token_targets",
        description="bi-encoder token-level model (labels_encoder and span_mode token_level)",
        span_modes=("token_level",),
        max_span_words="max_len",
        labels_in_prompt=False,
    ),
    RELEX: ModelType(
        name=RELEX,
        gliner_name="gliner_uni_encoder_span_relex",
        config_reader="anyner.checkpoint:relex_config_from_gliner",
        config_writer="anyner.checkpoint:span_config_to_gliner",
        network="anyner.model.relex:RelexGLiNERModel",
        candidates="anyner.decode:candidates",
        targets="anyner.batching:span_targets",
        description="uni-encoder span model with relation extraction (relations_layer: entities and the "
        "relations between them, AnyNER.predict_relations)",
    ),
}

# GLiNER's own ``model_type`` names (gliner >= 0.2.20 writes one) -> the type they mean here.
_GLINER_NAMES = {
    "gliner": "uni_encoder_span",
    "gliner_uni_encoder_span": "uni_encoder_span",
    "gliner_uni_encoder_token": "uni_encoder_token",
    "gliner_bi_encoder_span": "bi_encoder_span",
    "gliner_bi_encoder_token": "bi_encoder_token",
    "gliner_uni_encoder_span_decoder": "uni_encoder_span_decoder",
    "gliner_uni_encoder_span_relex": RELEX,
}


def implied_model_type(raw: Mapping[str, Any]) -> tuple[str, str | None, Any]:
    """The model type a parsed ``gliner_config.json`` implies, and the field that says so.

    Returns ``(type name, field, value)``; field is None when nothing in the file selects
    a variant (a plain span model, as every file before the field existed).
    """

    def on(key: str) -> bool:
        return bool(raw.get(key))

    token = raw.get("span_mode") == "token_level"
    if on("relations_layer"):
        return RELEX, "relations_layer", raw["relations_layer"]
    for key in ("labels_decoder", "decoder_mode"):
        if on(key):
            return "uni_encoder_span_decoder", key, raw[key]
    if on("labels_encoder"):
        return ("bi_encoder_token" if token else "bi_encoder_span"), "labels_encoder", raw["labels_encoder"]
    if token:
        return "uni_encoder_token", "span_mode", raw["span_mode"]
    declared = raw.get("model_type")
    if declared is not None:
        return _GLINER_NAMES.get(declared, str(declared)), "model_type", declared
    return "uni_encoder_span", None, None


def model_type_for(raw: Mapping[str, Any], source: str = "gliner_config.json") -> ModelType:
    """The registry row for a parsed config.

    Raises:
        NotImplementedError: the config implies a variant with no row; the message names
            the config field and its value.
    """
    name, key, value = implied_model_type(raw)
    row = MODEL_TYPES.get(name)
    if row is None:
        supported = "; ".join(f"{t.name}: {t.description}" for t in MODEL_TYPES.values())
        raise NotImplementedError(
            f"{source}: {key}={value!r} selects the GLiNER variant {name!r}, which anyner does not "
            f"implement (supported: {supported})"
        )
    return row


def build_network(config: Any, hf_config: Any, *, pretrained_encoder: bool = False) -> Any:
    """The network of ``config.model_type`` (a torch module), with random or pretrained encoder weights."""
    return get(config.model_type).part("network")(config, hf_config, pretrained_encoder=pretrained_encoder)


def get(name: str) -> ModelType:
    """The row named ``name`` (``AnyNERConfig.model_type``)."""
    try:
        return MODEL_TYPES[name]
    except KeyError:
        raise NotImplementedError(
            f"model_type={name!r} is not supported; anyner implements {', '.join(MODEL_TYPES)}"
        ) from None


__all__ = ["MODEL_TYPES", "ModelType", "build_network", "get", "implied_model_type", "model_type_for"]
