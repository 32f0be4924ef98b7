"""GLiNER checkpoints in and out: the only module that knows GLiNER's file format.

* ``gliner_config.json`` <-> :class:`AnyNERConfig`, with every generation of the
  format seen on the Hub (v0 ``marker`` files, the 2024 v1/v2/v2.1 files with no
  token ids, library re-saves, v2.5, 2025 files with a full ``encoder_config``).
* GLiNER state-dict keys <-> anyner module names, with every shape checked.
* Hub ids are fetched with ``huggingface_hub`` into its usual cache; nothing else
  in anyner touches the network.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import struct
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyner import model_types
from anyner.config import SPAN_MODES, AnyNERConfig
from anyner.optional import OptionalModule, available
from anyner.words import SUPPORTED_SPLITTERS

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

# Imported on first use: reading a config and resolving a folder need neither (the light install).
torch = OptionalModule("torch", "reading torch weights")
transformers = OptionalModule("transformers", "the torch backend")

CONFIG_NAME = "gliner_config.json"
SAFETENSORS_NAME = "model.safetensors"
PICKLE_FREE_BIN_NAME = "pytorch_model.bin"  # read with torch.load(weights_only=True): no code is unpickled
FLERT_TOKEN = "[FLERT]"
LABELS_TOKENIZER_DIR = "labels_tokenizer"  # a bi-encoder's label tokenizer, as GLiNER saves it

# GLiNER prefix -> anyner prefix. Longest GLiNER prefixes first.
KEY_MAP = (
    ("token_rep_layer.labels_encoder.model.", "label_encoder.transformer."),  # bi-encoders
    ("token_rep_layer.labels_projection.", "label_encoder.projection."),
    ("token_rep_layer.bert_layer.model.", "encoder.transformer."),
    ("token_rep_layer.projection.", "encoder.projection."),
    ("span_rep_layer.span_rep_layer.", "span."),
    ("prompt_rep_layer.", "label_proj."),
    ("rnn.", "rnn."),
    ("scorer.", "scorer."),  # token-level models' start/end/inside scorer
    ("relations_rep_layer.relation_rep_layer.", "adjacency."),  # span relex: the adjacency layer
    ("pair_rep_layer.", "pair_proj."),  # span relex: the pair MLP
)

# Options of a span model that anyner does not implement (the variant itself, token-level,
# bi-encoder, decoder or relation extraction, is chosen in anyner.model_types):
# field -> predicate telling whether the value is the supported one.
_UNSUPPORTED = {
    "post_fusion_schema": lambda v: not v,
    "fuse_layers": lambda v: not v,
    "span_encoder_config": lambda v: not v,
    "precomputed_prompts_mode": lambda v: not v,
    "subtoken_pooling": lambda v: v in (None, "first"),
    "represent_spans": lambda v: not v,  # token-level models with an extra span head
}
# Fields that select the variant: read by anyner.model_types, never kept in ``extra``.
_VARIANT_FIELDS = {"labels_encoder", "labels_decoder", "decoder_mode", "relations_layer", "model_type"}
# (labels_encoder is read into AnyNERConfig by the bi-encoder reader)

# Fields that describe the network: read into AnyNERConfig. All others are kept in ``extra``.
_NETWORK_FIELDS = {
    "model_name", "encoder_config", "hidden_size", "max_width", "span_mode", "num_rnn_layers", "has_rnn",
    "dropout", "ent_token", "sep_token", "class_token_index", "vocab_size", "max_len", "max_types",
    "embed_ent_token", "name", "transformers_version", "labels_encoder_config",
}  # fmt: skip


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not match its config."""


# ---------------------------------------------------------------------------- config


def config_from_gliner(raw: dict[str, Any], source: str = CONFIG_NAME) -> AnyNERConfig:
    """Translate a parsed ``gliner_config.json`` into :class:`AnyNERConfig`, through the
    reader of the model type it implies (:func:`anyner.model_types.model_type_for`).

    Raises:
        NotImplementedError: the file describes a variant anyner does not implement
            (token-level, bi-encoder, decoder, relation extraction, ...).
        CheckpointError: the file is not a valid config.
    """
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: expected a JSON object, got {type(raw).__name__}")
    return model_types.model_type_for(raw, source).part("config_reader")(raw, source)


def span_config_from_gliner(raw: dict[str, Any], source: str = CONFIG_NAME) -> AnyNERConfig:
    """The ``uni_encoder_span`` reader: a span model's ``gliner_config.json`` -> AnyNERConfig."""
    span_mode = raw.get("span_mode", "markerV0")
    if span_mode not in SPAN_MODES:
        raise NotImplementedError(
            f"{source}: span_mode={span_mode!r} is not supported (anyner implements span models with "
            f"span_mode {' or '.join(SPAN_MODES)}, and token-level models with span_mode 'token_level')"
        )
    return _read_config(raw, source, span_mode, "uni_encoder_span")


def token_config_from_gliner(raw: dict[str, Any], source: str = CONFIG_NAME) -> AnyNERConfig:
    """The ``uni_encoder_token`` reader: a token-level model's ``gliner_config.json`` -> AnyNERConfig."""
    return _read_config(raw, source, "token_level", "uni_encoder_token")


def bi_config_from_gliner(raw: dict[str, Any], source: str = CONFIG_NAME) -> AnyNERConfig:
    """The ``bi_encoder_span`` and ``bi_encoder_token`` reader: ``labels_encoder`` names the
    encoder of the labels; ``span_mode`` chooses between the span and the token-level head."""
    token = raw.get("span_mode") == "token_level"
    span_mode = "token_level" if token else raw.get("span_mode", "markerV0")
    if not token and span_mode not in SPAN_MODES:
        raise NotImplementedError(f"{source}: span_mode={span_mode!r} is not supported")
    labels_config = raw.get("labels_encoder_config")
    if labels_config is not None and not isinstance(labels_config, dict):
        raise CheckpointError(f"{source}: labels_encoder_config must be an object or null")
    return _read_config(raw, source, span_mode, "bi_encoder_token" if token else "bi_encoder_span",
                        labels_encoder=str(raw["labels_encoder"]), labels_encoder_config=labels_config)  # fmt: skip


def relex_config_from_gliner(raw: dict[str, Any], source: str = CONFIG_NAME) -> AnyNERConfig:
    """The ``uni_encoder_span_relex`` reader: a span relation-extraction model's config.

    ``relations_layer`` and the relation prompt's settings (``rel_token``, ``rel_token_index``,
    ``embed_rel_token``) are kept in ``extra``, where the network and the prompt read them.
    """
    from anyner.model.relex import RELATION_LAYERS

    span_mode = raw.get("span_mode", "markerV0")
    if span_mode not in SPAN_MODES:
        raise NotImplementedError(
            f"{source}: span_mode={span_mode!r} is not supported for relation extraction (anyner implements "
            f"span_mode {' or '.join(SPAN_MODES)})"
        )
    layer = raw.get("relations_layer")
    if not isinstance(layer, str) or layer.lower() not in RELATION_LAYERS:
        raise NotImplementedError(
            f"{source}: relations_layer={layer!r} is not supported; anyner implements {', '.join(RELATION_LAYERS)}"
        )
    if raw.get("triples_layer"):
        raise NotImplementedError(
            f"{source}: triples_layer={raw['triples_layer']!r} selects a triple-scoring relation head, which "
            "anyner does not implement (it implements relations_layer with the pair MLP)"
        )
    rel_token = raw.get("rel_token", "<<REL>>")
    if not isinstance(rel_token, str) or not rel_token:
        raise CheckpointError(f"{source}: rel_token must be a non-empty string, got {rel_token!r}")
    config = _read_config(raw, source, span_mode, model_types.RELEX)
    if rel_token in (config.ent_token, config.sep_token):
        raise CheckpointError(f"{source}: rel_token {rel_token!r} is also the entity or separator token")
    extra = dict(config.extra, relations_layer=layer, rel_token=rel_token)
    extra["embed_rel_token"] = bool(raw.get("embed_rel_token", True))
    extra["rel_token_index"] = int(raw.get("rel_token_index", -1))
    return dataclasses.replace(config, extra=extra)


def add_relation_token(tokenizer: PreTrainedTokenizerBase, config: AnyNERConfig) -> AnyNERConfig:
    """Make sure the tokenizer knows a relex model's ``rel_token`` (after :func:`add_prompt_tokens`);
    returns the config with its id in ``extra["rel_token_index"]``.

    GLiNER adds it right after the entity and separator tokens; a tokenizer that lacks it gets it
    added when that gives the id the config names (or when the config names none).
    """
    rel, index = config.extra["rel_token"], int(config.extra.get("rel_token_index", -1))
    if rel not in tokenizer.get_vocab():
        if index not in (-1, len(tokenizer)):
            raise CheckpointError(
                f"rel_token_index={index} does not fit the tokenizer ({len(tokenizer)} tokens, no {rel!r}): "
                "the config and the tokenizer come from different models"
            )
        tokenizer.add_tokens([rel], special_tokens=True)
    found = tokenizer.convert_tokens_to_ids(rel)
    if index not in (-1, found):
        raise CheckpointError(
            f"rel_token_index={index} but the tokenizer gives {rel!r} id {found}: "
            "the config and the tokenizer come from different models"
        )
    extra = dict(config.extra, rel_token_index=found)
    vocab = max(config.vocab_size, len(tokenizer))
    return dataclasses.replace(config, extra=extra, vocab_size=vocab)


def _read_config(
    raw: dict[str, Any], source: str, span_mode: str, model_type: str, **fields: Any
) -> AnyNERConfig:
    """The fields every variant shares (encoder, head sizes, prompt tokens, ...), read and checked once."""
    for key, ok in _UNSUPPORTED.items():
        if key in raw and not ok(raw[key]):
            raise NotImplementedError(
                f"{source}: {key}={raw[key]!r} selects a GLiNER variant anyner does not implement "
                "(it supports span, token-level and bi-encoder models)"
            )
    splitter = raw.get("words_splitter_type", "whitespace")
    if splitter not in (None, *SUPPORTED_SPLITTERS):
        # The splitter changes how text is cut into words, not the network: load the model,
        # keep the value for re-saves, and say that words here come from GLiNER's default pattern.
        warnings.warn(
            f"{source}: words_splitter_type={splitter!r} is not a splitter anyner knows; words are split with "
            "GLiNER's default pattern instead, which matches for space-separated text but may differ "
            "for other scripts (e.g. Chinese, Japanese, Thai)",
            stacklevel=3,
        )
    if "num_rnn_layers" in raw:
        rnn_layers = int(raw["num_rnn_layers"])
    elif "has_rnn" in raw:
        rnn_layers = 1 if raw["has_rnn"] else 0
    else:
        rnn_layers = 1  # every GLiNER generation before the field existed had one BiLSTM layer
    encoder_config = raw.get("encoder_config")
    if encoder_config is not None and not isinstance(encoder_config, dict):
        raise CheckpointError(f"{source}: encoder_config must be an object or null")
    try:
        return AnyNERConfig(
            encoder=raw.get("model_name", "microsoft/deberta-v3-small"),
            encoder_config=encoder_config,
            hidden_size=int(raw.get("hidden_size", 512)),
            max_width=int(raw.get("max_width", 12)),
            span_mode=span_mode,
            num_rnn_layers=rnn_layers,
            dropout=float(raw.get("dropout", 0.4)),
            ent_token=raw.get("ent_token", "<<ENT>>"),
            sep_token=raw.get("sep_token", "<<SEP>>"),
            class_token_index=int(raw.get("class_token_index", -1)),
            vocab_size=int(raw.get("vocab_size", -1)),
            max_len=int(raw.get("max_len", 384)),
            max_types=int(raw.get("max_types", 25)),
            embed_ent_token=bool(raw.get("embed_ent_token", True)),
            model_type=model_type,
            name=str(raw.get("name", "gliner")),
            **fields,
            extra={
                k: v
                for k, v in raw.items()
                if k not in _NETWORK_FIELDS and k not in _UNSUPPORTED and k not in _VARIANT_FIELDS
            },
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from e


def config_to_gliner(config: AnyNERConfig, hf_config: PretrainedConfig) -> dict[str, Any]:
    """The ``gliner_config.json`` contents for a model, loadable by anyner and by ``gliner``."""
    return model_types.get(config.model_type).part("config_writer")(config, hf_config)


def span_config_to_gliner(config: AnyNERConfig, hf_config: PretrainedConfig) -> dict[str, Any]:
    """The ``uni_encoder_span`` writer."""
    encoder_config = hf_config.to_dict()
    encoder_config["model_type"] = hf_config.model_type
    out = dict(config.extra)
    out.update(
        model_name=config.encoder,
        encoder_config=encoder_config,
        name=config.name,
        hidden_size=config.hidden_size,
        max_width=config.max_width,
        span_mode=config.span_mode,
        num_rnn_layers=config.num_rnn_layers,
        dropout=config.dropout,
        ent_token=config.ent_token,
        sep_token=config.sep_token,
        class_token_index=config.class_token_index,
        vocab_size=config.vocab_size,
        max_len=config.max_len,
        max_types=config.max_types,
        embed_ent_token=config.embed_ent_token,
        words_splitter_type=config.extra.get("words_splitter_type", "whitespace"),
        subtoken_pooling="first",
        fuse_layers=False,
        post_fusion_schema="",
        model_type=model_types.get(config.model_type).gliner_name,
    )
    if config.labels_encoder is not None:
        out.update(labels_encoder=config.labels_encoder, labels_encoder_config=config.labels_encoder_config)
    return out


def read_config(folder: Path, check_encoder: bool = True) -> AnyNERConfig:
    """The folder's config; with ``check_encoder`` (and transformers installed) its encoder_config
    is built once, so that an invalid one is reported naming the file."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_NAME}: it is not a GLiNER/anyner model folder")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path} is not UTF-8 text (byte {e.start}): the file is damaged") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    config = config_from_gliner(raw, str(path))
    if check_encoder:
        check_encoder_config(folder, config)
    return config


def check_encoder_config(folder: Path, config: AnyNERConfig) -> None:
    """Build the encoder's transformers config once (where transformers is installed), so that an
    invalid ``encoder_config`` is reported naming the file."""
    if config.encoder_config is not None and available("transformers"):
        try:
            encoder_hf_config(config)
        except Exception as e:  # unknown model_type, a field of the wrong type, inconsistent sizes
            path = folder / CONFIG_NAME
            raise CheckpointError(f"{path}: its encoder_config is not valid: {type(e).__name__}: {e}") from e


def labels_hf_config(config: AnyNERConfig) -> PretrainedConfig:
    """A bi-encoder's label encoder config: from ``labels_encoder_config``, else from ``labels_encoder``."""
    if config.labels_encoder_config is not None:
        return _hf_config_from_dict(config.labels_encoder_config, "labels_encoder_config")
    try:
        return transformers.AutoConfig.from_pretrained(config.labels_encoder)
    except OSError as e:
        raise OSError(_offline_message(config.labels_encoder, "the label encoder's config", e)) from e


def _hf_config_from_dict(values: dict[str, Any], field: str) -> PretrainedConfig:
    values = dict(values)
    model_type = values.pop("model_type", "deberta-v2")  # GLiNER's default for an untyped config
    mapping = transformers.models.auto.CONFIG_MAPPING
    if model_type not in mapping:
        raise CheckpointError(f"{field} has an unknown model_type {model_type!r}")
    return mapping[model_type](**values)


def load_labels_tokenizer(folder: Path | None, config: AnyNERConfig) -> PreTrainedTokenizerBase:
    """A bi-encoder's label tokenizer: the folder's ``labels_tokenizer/``, else the label encoder's."""
    sub = folder / LABELS_TOKENIZER_DIR if folder is not None else None
    source = (
        str(sub) if sub is not None and (sub / "tokenizer_config.json").is_file() else config.labels_encoder
    )
    try:
        return transformers.AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise OSError(_offline_message(str(config.labels_encoder), "the label tokenizer", e)) from e


def encoder_hf_config(config: AnyNERConfig) -> PretrainedConfig:
    """The encoder's transformers config: from ``encoder_config`` when present, else from ``encoder``."""
    if config.encoder_config is not None:
        values = dict(config.encoder_config)
        model_type = values.pop("model_type", "deberta-v2")  # GLiNER's default for an untyped encoder_config
        mapping = transformers.models.auto.CONFIG_MAPPING
        if model_type not in mapping:
            raise CheckpointError(f"encoder_config has an unknown model_type {model_type!r}")
        hf_config = mapping[model_type](**values)
    else:
        try:
            hf_config = transformers.AutoConfig.from_pretrained(config.encoder)
        except OSError as e:
            raise OSError(_offline_message(config.encoder, "the encoder's config", e)) from e
    if config.vocab_size != -1:
        hf_config.vocab_size = config.vocab_size
    return hf_config


# ---------------------------------------------------------------------------- tokenizer


def load_tokenizer(folder: Path | None, config: AnyNERConfig) -> PreTrainedTokenizerBase:
    """The folder's tokenizer, or the encoder's when the folder holds none (GLiNER v1/v2/v2.1 repos)."""
    source = (
        str(folder) if folder is not None and (folder / "tokenizer_config.json").is_file() else config.encoder
    )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source)
    except OSError as e:
        raise OSError(_offline_message(config.encoder, "the tokenizer", e)) from e
    except ImportError:
        raise
    except Exception as e:  # a damaged tokenizer file (the tokenizers library raises plain Exception)
        raise CheckpointError(
            f"cannot load the tokenizer from {_damaged_json(Path(source)) or source}: {type(e).__name__}: {e}"
        ) from e
    # GLiNER asks sentencepiece tokenizers for their bos/eos tokens; do the same so ids match.
    if getattr(tokenizer, "add_bos_token", None) is not None and tokenizer.bos_token_id is not None:
        tokenizer.add_bos_token = True
    if getattr(tokenizer, "add_eos_token", None) is not None and tokenizer.eos_token_id is not None:
        tokenizer.add_eos_token = True
    return tokenizer


def _damaged_json(folder: Path) -> Path | None:
    """The first of a folder's tokenizer JSON files that does not parse, if any."""
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json"):
        try:
            json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8
            if not isinstance(e, FileNotFoundError | NotADirectoryError):
                return folder / name
    return None


def add_prompt_tokens(tokenizer: PreTrainedTokenizerBase, config: AnyNERConfig) -> AnyNERConfig:
    """Make sure the tokenizer knows the prompt tokens; returns the config with their ids.

    A config with ``class_token_index: -1`` (the 2024 v1/v2/v2.1 files, or a new model)
    gets ``[FLERT]``, the entity and the separator token added, as GLiNER does. A config
    with explicit ids is checked against the tokenizer; when the tokenizer lacks the
    tokens they are added so that the ids come out as the config says.
    """
    ent, sep = config.ent_token, config.sep_token
    vocab = tokenizer.get_vocab()
    if config.class_token_index == -1 or config.vocab_size == -1:
        extra = [FLERT_TOKEN] if config.add_flert_token else []
        tokenizer.add_tokens([*extra, ent, sep], special_tokens=True)
        return dataclasses.replace(
            config, class_token_index=tokenizer.convert_tokens_to_ids(ent), vocab_size=len(tokenizer)
        )
    if ent not in vocab:
        n = len(tokenizer)
        if config.class_token_index == n + 1:
            tokenizer.add_tokens([FLERT_TOKEN, ent, sep], special_tokens=True)
        elif config.class_token_index == n:
            tokenizer.add_tokens([ent, sep], special_tokens=True)
        else:
            raise CheckpointError(
                f"class_token_index={config.class_token_index} does not fit the tokenizer ({n} tokens, no "
                f"{ent!r}): the config and the tokenizer come from different models"
            )
    found = tokenizer.convert_tokens_to_ids(ent)
    if found != config.class_token_index:
        raise CheckpointError(
            f"class_token_index={config.class_token_index} but the tokenizer gives {ent!r} id {found}: "
            "the config and the tokenizer come from different models"
        )
    if sep not in tokenizer.get_vocab():
        raise CheckpointError(f"the tokenizer has {ent!r} but not the separator token {sep!r}")
    return config


# ---------------------------------------------------------------------------- weights


def gliner_to_anyner_key(key: str) -> str | None:
    """Map a GLiNER state-dict key to anyner's, or None for keys with no place here."""
    key = re.sub(r"(^|\.)_orig_mod\.", r"\1", key)
    if key.startswith("model.") and not key.startswith("model.embeddings"):
        key = key[len("model.") :]  # a state dict saved from GLiNER's outer wrapper
    for theirs, ours in KEY_MAP:
        if key.startswith(theirs):
            return ours + key[len(theirs) :]
    return None


def anyner_to_gliner_key(key: str) -> str:
    for theirs, ours in KEY_MAP:
        if key.startswith(ours):
            return theirs + key[len(ours) :]
    raise KeyError(key)


def weights_file(folder: Path) -> Path:
    """The folder's weights: ``model.safetensors``, ``pytorch_model.bin``, or an anyner delta
    (``model_delta.safetensors``, see :mod:`anyner.delta`)."""
    from anyner.delta import DELTA_NAME

    for name in (SAFETENSORS_NAME, PICKLE_FREE_BIN_NAME, DELTA_NAME):
        if (folder / name).is_file():
            return folder / name
    raise CheckpointError(f"{folder} holds no weights: expected {SAFETENSORS_NAME} or {PICKLE_FREE_BIN_NAME}")


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a weights file. Nothing is unpickled: safetensors, or torch.load(weights_only=True)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, corrupt or foreign files all land here
        raise CheckpointError(f"cannot read weights from {path}: {type(e).__name__}: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a flat dict of tensors")
    return state


def _safetensors_dtypes() -> dict[str, Any]:
    return {
        "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
        "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
        "BOOL": torch.bool,
    }  # fmt: skip


def iter_weights(path: Path, plain: bool = False) -> Iterator[tuple[str, torch.Tensor]]:
    """The tensors of a weights file one at a time. Nothing is unpickled.

    A delta file (:mod:`anyner.delta`) yields the whole model it stands for, its base's
    tensors included, unless ``plain``: then only the tensors the file itself holds.

    A ``.safetensors`` file is read tensor by tensor with plain reads into one reused
    buffer, so loading costs the largest tensor on top of the model, not a second copy
    of the file (the safetensors package maps the whole file, and the pages it touches
    count in resident memory). Each tensor yielded is valid until the next one is read:
    copy it to keep it. Other files go through ``torch.load(weights_only=True)``.
    """
    if path.suffix != ".safetensors":
        yield from read_weights(path).items()
        return
    if not plain:
        from anyner import delta

        try:
            is_delta = delta.is_delta(path)
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read weights from {path}: {type(e).__name__}: {e}") from e
        if is_delta:
            try:
                yield from delta.iter_delta(path, iter_weights)
            except delta.DeltaError as e:
                raise CheckpointError(str(e)) from e
            return
    try:
        with open(path, "rb") as f:
            size = path.stat().st_size
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError(f"header length {n} is past the end of the {size}-byte file")
            header = json.loads(f.read(n))
            if not isinstance(header, dict):
                raise ValueError("the header is not a JSON object")
            base = 8 + n
            scratch = bytearray()
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                dtype = _safetensors_dtypes().get(info.get("dtype"))
                shape, (begin, stop) = info.get("shape"), info.get("data_offsets", (None, None))
                if dtype is None:
                    raise ValueError(f"{key} has an unsupported dtype {info.get('dtype')!r}")
                count = math.prod(shape)
                if stop - begin != count * dtype.itemsize or base + stop > size:
                    raise ValueError(
                        f"{key}: its bytes [{begin}, {stop}) do not fit shape {shape} or the file"
                    )
                if not count:
                    yield key, torch.empty(shape, dtype=dtype)
                    continue
                if len(scratch) < stop - begin:
                    scratch = bytearray(stop - begin)
                view = memoryview(scratch)[: stop - begin]
                f.seek(base + begin)
                if f.readinto(view) != stop - begin:
                    raise ValueError(f"{key}: the file ends inside its bytes")
                yield key, torch.frombuffer(view, dtype=dtype).reshape(shape)
    except (OSError, ValueError, TypeError, KeyError, struct.error) as e:
        raise CheckpointError(f"cannot read weights from {path}: {type(e).__name__}: {e}") from e


# Buffers an encoder computes in its constructor rather than reads from weights; a model
# built on the meta device gets them back from these rules (see build_and_load).
_BUFFER_RULES = {
    "position_ids": lambda shape: torch.arange(shape[-1]).expand(shape).clone(),
    "token_type_ids": lambda shape: torch.zeros(shape, dtype=torch.long),
}


def build_and_load(make: Callable[[], torch.nn.Module], path: Path) -> torch.nn.Module:
    """The module ``make()`` builds, holding the weights in ``path``, at the cost of one copy.

    The module is built on the meta device (no memory, no random initialisation) and the
    tensors read from the file become its parameters, so peak memory is one copy of the
    weights, not a randomly initialised model plus the file. Buffers the constructor
    computes (position ids) are rebuilt by rule; a module with other buffers is built
    normally and loaded by copy.
    """
    with torch.device("meta"):
        net = make()
    if not all(name.rsplit(".", 1)[-1] in _BUFFER_RULES for name, _ in net.named_buffers()):
        net = make()
        load_weights(net, path)
        return net
    load_weights(net, path, assign=True)
    for name, buf in list(net.named_buffers()):
        owner, _, attr = name.rpartition(".")
        module = net.get_submodule(owner)
        module._buffers[attr] = _BUFFER_RULES[attr](tuple(buf.shape)).to(buf.dtype)
    left = [n for n, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if left:  # load_weights reports missing tensors first; this is a guard
        raise CheckpointError(f"{path}: no values for {left[:3]}")
    return net


def load_weights(model: torch.nn.Module, path: Path, assign: bool = False) -> None:
    """Load GLiNER-named weights into an anyner model, checking every key and shape.

    Tensors are read and copied one at a time, so loading needs the model's memory plus
    one tensor, not two copies of the model. With ``assign`` (a model on the meta device)
    the tensors read become the parameters, converted to the model's dtype.
    """
    expected = model.state_dict(keep_vars=assign)
    mapped: set[str] = set()
    unexpected = []
    for key, tensor in iter_weights(path):
        ours = gliner_to_anyner_key(key)
        if ours is None or ours not in expected:
            if key.endswith("position_ids"):  # a buffer older transformers versions saved
                continue
            unexpected.append(key)
            continue
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise CheckpointError(
                f"{path}: {key} has shape {tuple(tensor.shape)} but the config implies "
                f"{tuple(expected[ours].shape)}; the weights and {CONFIG_NAME} do not belong together"
            )
        if expected[ours].is_floating_point():
            if not tensor.is_floating_point():
                raise CheckpointError(f"{path}: {key} holds {tensor.dtype} values where weights are floats")
            if not torch.isfinite(tensor.sum(dtype=torch.float32)):  # one pass; NaN and inf propagate
                raise CheckpointError(f"{path}: {key} holds NaN or infinite values; the weights are damaged")
        if assign:
            _assign(model, ours, tensor.to(expected[ours].dtype, copy=path.suffix == ".safetensors"))
        else:
            with torch.no_grad():
                expected[ours].copy_(tensor)
        mapped.add(ours)
    missing = [
        anyner_to_gliner_key(k) for k in expected if k not in mapped and not k.endswith("position_ids")
    ]
    missing = [k for k in missing if not _is_buffer(model, k)]
    if unexpected or missing:
        raise CheckpointError(
            f"{path} does not match {CONFIG_NAME}: "
            + (f"missing {len(missing)} tensors (e.g. {missing[:3]}); " if missing else "")
            + (f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})" if unexpected else "")
        )


def _assign(model: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    owner, _, attr = name.rpartition(".")
    module = model.get_submodule(owner)
    if attr in module._parameters:
        # setattr, not a dict write: an LSTM keeps its own list of its weights
        setattr(module, attr, torch.nn.Parameter(value, requires_grad=module._parameters[attr].requires_grad))
    else:
        module._buffers[attr] = value


def _is_buffer(model: torch.nn.Module, gliner_key: str) -> bool:
    ours = gliner_to_anyner_key(gliner_key)
    return ours in dict(model.named_buffers())


def gliner_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights under GLiNER names, contiguous and unshared, ready for safetensors."""
    out = {}
    buffers = dict(model.named_buffers())
    for key, tensor in model.state_dict().items():
        if key in buffers:
            continue
        out[anyner_to_gliner_key(key)] = tensor.detach().contiguous().clone()
    return out


# ---------------------------------------------------------------------------- hub


def _offline_message(model_id: str, what: str, error: Exception) -> str:
    return (
        f"Could not get {what} for {model_id!r}: it is not in a local folder and the Hugging Face Hub "
        f"could not be reached ({type(error).__name__}). Download the model where there is a network, "
        "then pass its local folder, e.g. AnyNER.from_pretrained('/path/to/model') or "
        "`anyner predict --model /path/to/model ...`; the folder must hold gliner_config.json and "
        "model.safetensors or pytorch_model.bin."
    )


def resolve_folder(id_or_path: str | Path, revision: str | None = None, cache_dir: str | None = None) -> Path:
    """A local model folder for a path or a Hub id (downloaded into the Hub cache)."""
    path = Path(id_or_path).expanduser()
    if path.is_dir():
        return path
    text = str(id_or_path)
    looks_local = text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1 or path.exists()
    if looks_local:
        raise FileNotFoundError(f"model folder {text!r} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id=text,
                revision=revision,
                cache_dir=cache_dir,
                allow_patterns=["*.json", "*.safetensors", "pytorch_model.bin", "*.model", "*.txt"],
            )
        )
    except Exception as e:  # network, auth and not-found errors all end the same way for the user
        raise OSError(_offline_message(text, "the model", e)) from e
