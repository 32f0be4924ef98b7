"""Training settings: one dataclass per table of the TOML file, validated when made."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from anyner.builtin import BUILTIN_NAME
from anyner.config import AnyNERConfig
from anyner.model_types import MODEL_TYPES, RELEX
from anyner.validate import positive_int, unit_interval

# The AnyNERConfig fields a [model] table may set; the others come from the encoder and the
# tokenizer (encoder_config, token ids, vocabulary) or only matter for GLiNER's own files.
MODEL_FIELDS = ("hidden_size", "span_mode", "num_rnn_layers", "dropout", "max_width", "max_len", "name")


@dataclass
class ModelSettings:
    """The model to train: a new head on ``encoder``, or an existing model (``init_from``).

    The head's settings are an :class:`AnyNERConfig` (``network``), the one home of model
    settings: ``type`` (a row of :data:`anyner.model_types.MODEL_TYPES`: ``uni_encoder_span``,
    the default, or ``uni_encoder_token``) and the ``[model]`` table's other keys (``hidden_size``, ``span_mode``,
    ``num_rnn_layers``, ``dropout``, ``max_width``, ``max_len``, ``name``) are its fields,
    validated by it. ``max_len`` is also the most words of one training window: a longer
    record is read in windows, as prediction reads it.
    """

    encoder: str = "minilm"  # "minilm" = the offline all-MiniLM-L6-v2 package; else a Hub id or folder
    init_from: str | None = None  # a GLiNER/anyner folder to fine-tune instead of a new head
    network: AnyNERConfig = field(default_factory=AnyNERConfig)


@dataclass
class DataSource:
    """One corpus of the training mix."""

    path: str
    weight: float = 1.0  # sampling weight relative to the other sources
    label_map: str | None = None  # name of a packaged label map (codes -> natural names)
    format: str | None = (
        None  # "gliner", "benchmark", "conll" or "relations" (relation models); None = detect
    )
    max_records: int | None = None  # read at most this many records
    keep_empty: float = 1.0  # fraction of records without any span to keep
    # where this source's negative labels come from: "pool" (the labels of every source) or
    # "own" (only this source's labels: for files that annotate only some types, such as
    # Few-NERD's split files, where any other type may be present but unlabelled)
    negatives: str = "pool"


@dataclass
class TrainSettings:
    """Optimisation and sampling (defaults: the paper's recipe)."""

    steps: int = 1000
    batch_size: int = 8
    grad_accum: int = 1
    lr_encoder: float = 1e-5
    lr_others: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "cosine"  # "cosine", "linear" or "constant" after warm-up
    max_grad_norm: float = 1.0
    seed: int = 0
    neg_ratio: float = 1.0  # negative labels per positive label: 1.0 = about half the prompt
    max_types: int = 25
    max_relations: int = 25  # relation models: most relation names in one prompt
    exclude_relations: list[str] = field(
        default_factory=list
    )  # relation names left out of training (zero-shot)
    drop_labels: float = 0.5  # probability that an example keeps only a random subset of its labels
    mix_corpora: bool = True  # each example of a batch picks its corpus; False: one corpus per batch
    rename_labels: float = 0.0  # probability that a prompted label takes another of its names
    label_names: str | None = None  # JSON of other names (default: the packaged label_synonyms.json)
    loss: str = "bce"  # "bce" or "focal"
    focal_alpha: float = 0.75
    focal_gamma: float = 2.0
    reduction: str = "sum"  # "sum" (GLiNER) or "mean" over scored span-label pairs
    ema_decay: float = 0.0  # 0 = off; else keep an exponential moving average of the weights
    freeze: list[str] = field(
        default_factory=list
    )  # parameter-name prefixes kept as they are (e.g. "encoder.transformer.embeddings.")
    device: str = "auto"  # "auto", "cpu" or "cuda"


@dataclass
class OutputSettings:
    dir: str = "runs/anyner"
    save_every: int = 200
    keep: int = 3
    log_every: int = 10


@dataclass
class EvalSettings:
    data: list[str] = field(default_factory=list)  # benchmark folders (test.json + labels.json)
    every: int = 0  # 0 = only at the end
    limit: int | None = 200  # sentences per set; 0 = all of them
    threshold: float = 0.5


@dataclass
class TrainConfig:
    model: ModelSettings = field(default_factory=ModelSettings)
    data: list[DataSource] = field(default_factory=list)
    train: TrainSettings = field(default_factory=TrainSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)

    def __post_init__(self) -> None:
        t = self.train
        positive = {
            "steps": t.steps,
            "batch_size": t.batch_size,
            "grad_accum": t.grad_accum,
            "max_types": t.max_types,
        }
        for name, value in positive.items():
            positive_int(value, f"train.{name}")
        if not self.data and self.model.init_from is None:
            raise ValueError("the config has no [[data]] source to train on")
        for src in self.data:
            if src.weight <= 0:
                raise ValueError(f"data source {src.path!r}: weight must be > 0, got {src.weight}")
            unit_interval(src.keep_empty, f"data source {src.path!r}: keep_empty")
            if src.negatives not in ("pool", "own"):
                raise ValueError(
                    f"data source {src.path!r}: negatives must be 'pool' or 'own', got {src.negatives!r}"
                )
        if t.loss not in ("bce", "focal"):
            raise ValueError(f"train.loss must be 'bce' or 'focal', got {t.loss!r}")
        if t.reduction not in ("sum", "mean"):
            raise ValueError(f"train.reduction must be 'sum' or 'mean', got {t.reduction!r}")
        if t.schedule not in ("cosine", "linear", "constant"):
            raise ValueError(f"train.schedule must be cosine, linear or constant, got {t.schedule!r}")
        if not 0.0 <= t.warmup_ratio < 1.0:
            raise ValueError(f"train.warmup_ratio must be in [0, 1), got {t.warmup_ratio}")
        if not isinstance(t.mix_corpora, bool):
            raise ValueError(f"train.mix_corpora must be true or false, got {t.mix_corpora!r}")
        unit_interval(t.rename_labels, "train.rename_labels")
        if not 0.0 <= t.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {t.ema_decay}")
        if t.neg_ratio < 0 or not 0.0 <= t.drop_labels <= 1.0:
            raise ValueError("train.neg_ratio must be >= 0 and train.drop_labels in [0, 1]")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    return cls(**values)


def config_from_dict(raw: dict[str, Any], base: Path | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig`; relative paths are taken from ``base`` (the config's folder)."""
    unknown = set(raw) - {"model", "data", "train", "output", "eval"}
    if unknown:
        raise ValueError(f"unknown table(s) {sorted(unknown)}; expected model, data, train, output, eval")

    def resolve(p: str | None) -> str | None:
        if p is None or base is None or Path(p).is_absolute():
            return p
        return str((base / p).resolve())

    table = dict(raw.get("model", {}))
    known = {"encoder", "init_from", "type", "labels_encoder", "relations_layer", *MODEL_FIELDS}
    unknown = set(table) - known
    if unknown:
        raise ValueError(f"[model]: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    fields_ = {k: table.pop(k) for k in MODEL_FIELDS if k in table}
    if "type" in table:
        kind = table.pop("type")
        row = MODEL_TYPES.get(kind) if isinstance(kind, str) else None
        if row is None:
            raise ValueError(f"[model]: type = {kind!r} is not a model type; known: {', '.join(MODEL_TYPES)}")
        fields_["model_type"] = kind
        if kind == "bi_encoder_span":
            fields_.setdefault("span_mode", "markerV0")
        else:
            fields_.setdefault("span_mode", row.span_modes[0])  # token-level types have one span mode
        if not row.labels_in_prompt:
            fields_["labels_encoder"] = table.pop("labels_encoder", None) or "minilm"
    if fields_.get("model_type") == RELEX:
        from anyner.model.relex import RELATION_LAYERS

        layer = table.pop("relations_layer", "dot")
        if layer not in RELATION_LAYERS:
            raise ValueError(f"[model]: relations_layer = {layer!r}; known: {', '.join(RELATION_LAYERS)}")
        fields_["extra"] = {"relations_layer": layer, "rel_token": "<<REL>>", "embed_rel_token": True}
    elif "relations_layer" in table:
        raise ValueError('[model]: relations_layer is only for type = "uni_encoder_span_relex"')
    if "labels_encoder" in table:
        raise ValueError(
            '[model]: labels_encoder is only for bi-encoder types (type = "bi_encoder_span" ...)'
        )
    try:
        network = AnyNERConfig(**fields_)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise ValueError(f"[model]: {e}") from e
    model = ModelSettings(**table, network=network)
    if model.init_from and model.init_from != BUILTIN_NAME:  # "builtin": the built-in model, not a path
        model.init_from = resolve(model.init_from)
    if model.encoder not in ("minilm",) and (
        model.encoder.startswith(".") or Path(model.encoder).is_absolute()
    ):
        model.encoder = resolve(model.encoder)
    data = [_build(DataSource, dict(d), f"[[data]] #{i + 1}") for i, d in enumerate(raw.get("data", []))]
    for d in data:
        d.path = resolve(d.path)
    ev = _build(EvalSettings, dict(raw.get("eval", {})), "[eval]")
    ev.data = [resolve(p) for p in ev.data]
    if ev.limit == 0:  # TOML has no null: 0 stands for "every sentence"
        ev.limit = None
    out = _build(OutputSettings, dict(raw.get("output", {})), "[output]")
    out.dir = resolve(out.dir)
    train = _build(TrainSettings, dict(raw.get("train", {})), "[train]")
    train.label_names = resolve(train.label_names)
    return TrainConfig(
        model=model,
        data=data,
        train=train,
        output=out,
        eval=ev,
    )


def load_train_config(path: str | Path) -> TrainConfig:
    """Read a TOML training config."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise FileNotFoundError(f"training config {path} does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from e
    try:
        return config_from_dict(raw, base=path.resolve().parent)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
