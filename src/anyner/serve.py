"""``anyner serve``: an HTTP API and a web page for a model, with FastAPI and uvicorn.

Endpoints: ``POST /v1/entities`` (one text or a batch, with one label set for all its texts or
one per text; with a relation-extraction model, also the relations between the entities),
``GET /v1/model``, ``GET /health``, ``GET /`` (a page to try the model),
``/docs`` (Swagger UI), ``/redoc`` (ReDoc) and ``/openapi.json``. The two documentation pages
load their scripts and styles from the server itself (the files of the ``fastapi-offline``
package, in the ``serve`` extra), so they work without internet. A single worker thread
micro-batches requests from a bounded queue (see :class:`MicroBatcher`); a full queue answers
503 with ``Retry-After``. Errors are JSON ``{"detail": ...}``: 413 for a body larger than
``max_body_bytes``, 422 for every other limit and bad argument (the model's ValueError and
TypeError), 500 when the model fails otherwise. No request names a file the server reads.

The OpenAPI schema says what the server accepts: the body is ``oneOf`` :class:`TextRequest`
(``text``) and :class:`BatchRequest` (``texts``), with the app's :class:`Limits` as
``maxLength``, ``maxItems`` and ``maxProperties`` (see :func:`request_models`). What it cannot
say (a per-label threshold names only labels, one label set per text, no lone surrogates, the
model's own label checks) is a documented 422. ``benchmarks/schemathesis_serve.py`` checks the two agree. The model is a
:class:`Predictor`.

Relations: when the model extracts relations (see :func:`extracts_relations`; ``GET /v1/model``
says ``relations: true``), the request models are :class:`RelationTextRequest` and
:class:`RelationBatchRequest`, which add ``relations`` (one relation set for all texts, or one
per text in a batch), ``relation_threshold`` and ``adjacency_threshold``; each text's answer then
also holds ``relations`` (:meth:`anyner.Relation.to_dict`, ``entity_idx`` pointing into that
text's ``entities``). A relation set is bounded by the label limits (``max_labels`` relations of
``max_label_chars`` characters). Served an entity-only model, the schema has no such fields, and
a request naming one is answered 422 saying that the model finds entities only.

Calibrated thresholds: a model with ``calibration.json`` in its folder (``GET /v1/model`` says
``calibrated: true``) also takes ``"threshold": "auto"``, each label's calibrated threshold (see
:mod:`anyner.calibration`); for any other model the schema has no such value, and a request saying
it is answered 422, saying that the model has no calibration and to pass a number.

For a deployment (see :mod:`anyner.deploy`): an optional API key (401 without it), CORS for the
origins given, Prometheus metrics at ``/metrics``, an ``X-Request-ID`` per request shown in its
log lines, several worker processes, and a shutdown that answers the queued requests first.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import PurePath
from typing import Annotated, Any, ClassVar, Literal, Protocol, Self, runtime_checkable

from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    create_model,
    model_validator,
)

from anyner.model_types import RELEX
from anyner.render import render, render_table
from anyner.types import Entity, Relation
from anyner.validate import positive_int

__all__ = [
    "BatchRequest", "Closed", "EntitiesRequest", "Limits", "MicroBatcher", "Predictor", "QueueFull", "RELATION_FIELDS",
    "RelationBatchRequest", "RelationPredictor", "RelationTextRequest", "TextRequest", "create_app",
    "extracts_relations", "request_models", "run",
]  # fmt: skip

log = logging.getLogger("anyner.serve")
RETRY_AFTER_SECONDS = 1
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Limits:
    """What one request may hold. Each field is a CLI flag: ``max_text_chars`` is ``--max-text-chars``."""

    max_text_chars: int = 10_000  # characters in one text
    max_texts: int = 64  # texts in one request (and label sets, one per text)
    max_labels: int = 50  # labels in one label set (the request's, or each text's)
    max_label_chars: int = 200  # characters in one label or label description
    max_body_bytes: int = 1_048_576  # bytes in one request body

    def __post_init__(self) -> None:
        for f in fields(self):
            positive_int(getattr(self, f.name), f.name)


# ---------------------------------------------------------------------- the model


@runtime_checkable
class ModelConfig(Protocol):
    """What the server reads of a model's config (:class:`~anyner.AnyNERConfig` has it)."""

    @property
    def name(self) -> str: ...
    @property
    def encoder(self) -> str: ...
    @property
    def max_len(self) -> int: ...


@runtime_checkable
class Predictor(Protocol):
    """What the server needs of a model: :class:`~anyner.AnyNER` is one.

    ``predict_batch`` raises ValueError or TypeError for a bad argument (answered 422); any
    other exception is a failure of the model (answered 500).
    """

    @property
    def config(self) -> ModelConfig: ...
    @property
    def max_tokens(self) -> int: ...
    def predict_batch(
        self,
        texts: Sequence[str],
        labels: Sequence[str] | Mapping[str, str],
        batch_size: int = 8,
        threshold: float | Mapping[str, float] | str = 0.5,
        flat: bool = True,
        multi_label: bool = False,
    ) -> list[list[Entity]]: ...


@runtime_checkable
class RelationPredictor(Predictor, Protocol):
    """A :class:`Predictor` that may extract relations (:class:`~anyner.AnyNER` is one; whether its
    checkpoint does is :func:`extracts_relations`). ``batch_predict_relations`` raises as
    ``predict_batch`` does, and gives one ``(entities, relations)`` per text."""

    def batch_predict_relations(
        self,
        texts: Sequence[str],
        labels: Sequence[str] | Mapping[str, str],
        relations: Sequence[str] | Mapping[str, str],
        batch_size: int = 8,
        threshold: float | Mapping[str, float] | str = 0.5,
        relation_threshold: float | None = None,
        flat: bool = True,
        multi_label: bool = False,
        adjacency_threshold: float | None = None,
    ) -> list[tuple[list[Entity], list[Relation]]]: ...


def extracts_relations(model: Any) -> bool:
    """Whether the server may ask ``model`` for relations: it is a :class:`RelationPredictor`, and
    either says so itself (a bool ``extracts_relations`` attribute) or, as an :class:`~anyner.AnyNER`,
    is a relation-extraction checkpoint (``uni_encoder_span_relex``) on the torch backend."""
    if not isinstance(model, RelationPredictor):
        return False
    said = getattr(model, "extracts_relations", None)
    if isinstance(said, bool):
        return said
    relex = getattr(model.config, "model_type", None) == RELEX
    return relex and getattr(model, "model", None) is not None  # an ONNX session has no relation head


def is_calibrated(model: Any) -> bool:
    """Whether ``model`` has calibrated thresholds (an :class:`~anyner.AnyNER` loaded from a folder
    with ``calibration.json``): then requests may say ``"threshold": "auto"``."""
    return getattr(model, "calibration", None) is not None


# ---------------------------------------------------------------------- request and response bodies

# strict: a threshold is a JSON number, not `true` or "0.5" (the library refuses those too)
Score = Annotated[float, Field(ge=0.0, le=1.0, strict=True, allow_inf_nan=False)]
AUTO_THRESHOLD = "auto"
_NOT_CALIBRATED = (
    '`threshold: "auto"` needs the model\'s calibrated thresholds, and the loaded model has no calibration '
    "(no calibration.json in its folder; `GET /v1/model` says `calibrated: false`): pass a number instead, "
    'e.g. `"threshold": 0.5`'
)
_TEXT_EXAMPLE = {"text": "Bill Gates founded Microsoft.", "labels": ["person", "organization"]}
_BATCH_EXAMPLE = {
    "texts": ["Ada Lovelace lived in London."],
    "labels": {"person": "a name"},
    "threshold": {"person": 0.4},
}
_TEXT_RELATIONS_EXAMPLE = {
    "text": "Bill Gates founded Microsoft in Albuquerque.",
    "labels": ["person", "organization", "location"],
    "relations": ["founded", "located in"],
    "relation_threshold": 0.4,
}
_BATCH_RELATIONS_EXAMPLE = {
    "texts": ["Ada Lovelace was born in London.", "Alan Turing worked for the University of Manchester."],
    "labels": ["person", "location", "organization"],
    "relations": [["born in"], {"works for": "is employed by"}],
    "adjacency_threshold": 0.5,
}
RELATION_FIELDS = ("relations", "relation_threshold", "adjacency_threshold")

# The characters str.strip() removes (str.isspace), which the JSON Schema's \s does not match
# exactly: a label must hold one character outside them (the library refuses blank labels).
_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004"
    "\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in _SPACE) + "]"  # an ECMA-262 and Python regex


@dataclass(frozen=True, eq=False)  # hashed by identity: the keywords may hold dicts
class _Says:
    """JSON Schema keywords for a rule the server checks itself, with a message naming the limit.

    (pydantic's own constraints would answer a generic message; the server's name the limit.)
    """

    keywords: tuple[tuple[str, Any], ...]

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: GetJsonSchemaHandler) -> dict[str, Any]:
        schema = dict(handler(core_schema))
        schema.update(self.keywords)
        return schema


def _says(**keywords: Any) -> _Says:
    return _Says(tuple(keywords.items()))


def _flat_nested_rule() -> dict[str, Any]:
    """``flat`` and ``nested`` given with the same value contradict each other."""
    same = [{"properties": {"flat": {"const": v}, "nested": {"const": v}}} for v in (True, False)]
    return {"not": {"required": ["flat", "nested"], "anyOf": same}}


def _relation_rules() -> dict[str, Any]:
    """:func:`_flat_nested_rule`, and: a relation or adjacency threshold comes with ``relations``."""
    thresholds = {"anyOf": [{"required": ["relation_threshold"]}, {"required": ["adjacency_threshold"]}]}
    return {**_flat_nested_rule(), "anyOf": [{"required": ["relations"]}, {"not": thresholds}]}


def _no_default(schema: dict[str, Any]) -> None:
    """An optional field without a JSON default: absent means "not asked", and null is refused."""
    schema.pop("default", None)


class _Request(BaseModel):
    """The fields of both request bodies: the labels and the options."""

    # strict: `flat: "yes"` or `labels: {"a": 1}` are refused, as the schema says, not converted
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_flat_nested_rule())
    # whether `threshold` may be "auto": the request models of a calibrated model (see request_models)
    accepts_auto: ClassVar[bool] = False
    labels: list[str] | dict[str, str] = Field(
        description="The entity types to find: a list of names, or an object label -> description "
        "(the model reads the description, the entities carry the label)."
    )
    threshold: Score | dict[str, Score] = Field(
        0.5,
        description="Minimum score in [0, 1], or an object label -> threshold (other labels use 0.5); "
        "its labels must be among `labels` (with one label set per text: each among the labels of at "
        "least one text; a text uses the thresholds of its own labels). With a calibrated model "
        '(`calibrated: true` in `GET /v1/model`), also `"auto"`: each label\'s threshold from the '
        "model's calibration.json.",
    )
    flat: bool = Field(True, description="No overlapping entities (true) or nested ones allowed (false).")
    nested: bool | None = Field(None, description="The opposite of `flat`; give one of the two.")
    multi_label: bool = Field(False, description="Let one span carry several labels.")
    html: bool = Field(
        False,
        description="Also return, per text, `html` (the text with its entities highlighted) and "
        "`table` (an HTML table of the entities), escaped, as `anyner.render` draws them.",
    )

    @model_validator(mode="before")
    @classmethod
    def _entities_only(cls, data: Any) -> Any:
        # the request models of a model without calibration refuse "auto": say why, not "not a number"
        if isinstance(data, dict) and data.get("threshold") == AUTO_THRESHOLD and not cls.accepts_auto:
            raise ValueError(_NOT_CALIBRATED)
        # the request models of an entity-only model have no relation fields: say why, not "extra"
        if isinstance(data, dict) and "relations" not in cls.model_fields:
            if asked := [k for k in RELATION_FIELDS if k in data]:
                raise ValueError(
                    f"`{asked[0]}` needs a relation-extraction model, and the loaded model finds entities "
                    "only (`GET /v1/model` says `relations: false`): leave out `relations`, "
                    "`relation_threshold` and `adjacency_threshold`, or serve a GLiNER relex checkpoint"
                )
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.nested is not None and "flat" in self.model_fields_set and self.flat == self.nested:
            raise ValueError("`flat` and `nested` contradict each other; give one of them")
        if "relations" in type(self).model_fields and getattr(self, "relations", None) is None:
            if given := [k for k in RELATION_FIELDS[1:] if k in self.model_fields_set]:
                raise ValueError(
                    f"`{given[0]}` is a threshold for relations: give `relations` too, or leave it out"
                )
        _check_unicode(self)
        return self


class TextRequest(_Request):
    """Find entities of the given labels in one text; the answer is `{entities}`."""

    model_config = ConfigDict(json_schema_extra={**_flat_nested_rule(), "examples": [_TEXT_EXAMPLE]})
    text: str = Field(description="One text. Give this or `texts`; the answer is `{entities}`.")


class BatchRequest(_Request):
    """Find entities of the given labels in a batch of texts; the answer is `{results: [{entities}]}`."""

    model_config = ConfigDict(json_schema_extra={**_flat_nested_rule(), "examples": [_BATCH_EXAMPLE]})
    texts: list[str] = Field(
        description="A batch of texts. Give this or `text`; the answer is `{results: [{entities}]}`."
    )
    labels: list[str] | dict[str, str] | list[list[str] | dict[str, str]] = Field(
        description="The entity types to find: one label set for all texts (a list of names, or an "
        "object label -> description: the model reads the description, the entities carry the label), "
        'or a list of label sets, one per text in the order of `texts`, e.g. `[["person"], '
        '["city", "date"]]` (as many label sets as texts: the server checks it, answering 422).'
    )


# (The examples of the relation fields are the request models' own: schemathesis's coverage phase
# would build bodies around a field's examples that break the rules the schema cannot say.)
def _relations_field(per_text: bool) -> Any:
    batch = (
        ", or a list of relation sets, one per text in the order of `texts` (as many as texts: the "
        "server checks it, answering 422)"
        if per_text
        else ""
    )
    return Field(
        None,
        description="The relations to find between the entities: a list of names, or an object relation "
        f"-> description (the model reads the description, the relations carry the name){batch}. Names "
        "must differ from the entity labels (of the same text). With it, each text's answer also holds "
        "`relations`. At most `max_labels` relations of `max_label_chars` characters each.",
        json_schema_extra=_no_default,
    )


def _relation_threshold_field(what: str) -> Any:
    return Field(
        None,
        description=f"{what}; default `threshold` (0.5 when that is an object). Only with `relations`.",
        json_schema_extra=_no_default,
    )


class RelationTextRequest(TextRequest):
    """Find entities of the given labels in one text, and the relations between them; the answer is
    `{entities, relations}` (`relations` only when asked for)."""

    model_config = ConfigDict(
        json_schema_extra={**_relation_rules(), "examples": [_TEXT_EXAMPLE, _TEXT_RELATIONS_EXAMPLE]}
    )
    relations: list[str] | dict[str, str] = _relations_field(per_text=False)
    relation_threshold: Score = _relation_threshold_field("Minimum relation score in [0, 1]")
    adjacency_threshold: Score = _relation_threshold_field(
        "The model's pair filter in [0, 1]: which pairs of entities its relation layer reads"
    )


class RelationBatchRequest(BatchRequest):
    """Find entities of the given labels in a batch of texts, and the relations between them; the
    answer is `{results: [{entities, relations}]}` (`relations` only when asked for)."""

    model_config = ConfigDict(
        json_schema_extra={**_relation_rules(), "examples": [_BATCH_EXAMPLE, _BATCH_RELATIONS_EXAMPLE]}
    )
    relations: list[str] | dict[str, str] | list[list[str] | dict[str, str]] = _relations_field(per_text=True)
    relation_threshold: Score = _relation_threshold_field("Minimum relation score in [0, 1]")
    adjacency_threshold: Score = _relation_threshold_field(
        "The model's pair filter in [0, 1]: which pairs of entities its relation layer reads"
    )


def _per_text(labels: Any) -> bool:
    """Whether ``labels`` is a list of label sets, one per text (the library's rule)."""
    if isinstance(labels, str | Mapping) or not isinstance(labels, Sequence) or not labels:
        return False
    return all(isinstance(x, Sequence | Mapping) and not isinstance(x, str) for x in labels)


def _label_sets(labels: Any, name: str = "labels") -> list[tuple[str, Any]]:
    """(where, label set): ``labels`` itself, or each text's label set (``labels[i]``); the same
    for relation sets, with ``name="relations"``."""
    return [(f"{name}[{i}]", x) for i, x in enumerate(labels)] if _per_text(labels) else [(name, labels)]


def _which_request(body: Any) -> str | None:
    """The tag of a body: ``text`` or ``texts``, None (refused) when it holds both or neither."""
    if isinstance(body, TextRequest | BatchRequest):
        return "text" if isinstance(body, TextRequest) else "texts"
    if not isinstance(body, dict) or ("text" in body) == ("texts" in body):
        return None
    return "text" if "text" in body else "texts"


_ONE_OF = "give exactly one of `text` (one text) or `texts` (a list of texts), in a JSON object"


def _body_type(text_model: type[TextRequest], batch_model: type[BatchRequest]) -> Any:
    """The body: one of the two models, picked by its key (the JSON Schema says ``oneOf``)."""
    which = Discriminator(_which_request, custom_error_type="text_or_texts", custom_error_message=_ONE_OF)
    return Annotated[Annotated[text_model, Tag("text")] | Annotated[batch_model, Tag("texts")], which]


EntitiesRequest = _body_type(TextRequest, BatchRequest)
"""The body of ``POST /v1/entities`` without limits; :func:`request_models` makes those of an app."""


def request_models(
    limits: Limits, relations: bool = False, calibrated: bool = False
) -> tuple[type[TextRequest], type[BatchRequest]]:
    """The two request models of an app: their JSON Schema says ``limits``, which the server checks.

    With ``relations`` (a model that extracts them), :class:`RelationTextRequest` and
    :class:`RelationBatchRequest`, whose relation sets have the limits of label sets. With
    ``calibrated`` (a model with calibrated thresholds), ``threshold`` may also be ``"auto"``.
    """
    text = Annotated[str, _says(maxLength=limits.max_text_chars)]
    name = {"maxLength": limits.max_label_chars, "pattern": NOT_BLANK}  # a label: not blank
    label = Annotated[str, _says(**name)]
    # (a dict's keys are said with propertyNames: pydantic would make a pattern patternProperties)
    listed = Annotated[list[label], _says(minItems=1, maxItems=limits.max_labels)]
    named = Annotated[
        dict[str, label], _says(propertyNames=name, minProperties=1, maxProperties=limits.max_labels)
    ]
    # its keys are among the labels, so they are labels too (the server checks that they are among them)
    per_label = Annotated[dict[str, Score], _says(propertyNames=name, maxProperties=limits.max_labels)]
    # a batch's labels may also be one label set per text: at most max_texts of them (that there
    # are as many as texts is a rule JSON Schema cannot say: the server checks it)
    per_text = Annotated[list[listed | named], _says(minItems=1, maxItems=limits.max_texts)]
    kinds = Score | per_label | Literal["auto"] if calibrated else Score | per_label
    threshold = (kinds, _Request.model_fields["threshold"])
    one: dict[str, Any] = {}
    batch: dict[str, Any] = {}
    text_base, batch_base = TextRequest, BatchRequest
    if relations:  # a relation set is bounded as a label set is
        text_base, batch_base = RelationTextRequest, RelationBatchRequest
        for fields_, base, kinds in (
            (one, text_base, listed | named),
            (batch, batch_base, listed | named | per_text),
        ):
            fields_["relations"] = (kinds, base.model_fields["relations"])
            for name in RELATION_FIELDS[1:]:
                fields_[name] = (Score, base.model_fields[name])
    text_model = create_model(
        "TextRequest", __base__=text_base, __module__=__name__,
        text=(text, TextRequest.model_fields["text"]),
        labels=(listed | named, _Request.model_fields["labels"]), threshold=threshold, **one,
    )  # fmt: skip
    batch_model = create_model(
        "BatchRequest", __base__=batch_base, __module__=__name__,
        texts=(Annotated[list[text], _says(maxItems=limits.max_texts)], BatchRequest.model_fields["texts"]),
        labels=(listed | named | per_text, BatchRequest.model_fields["labels"]), threshold=threshold, **batch,
    )  # fmt: skip
    text_model.accepts_auto = batch_model.accepts_auto = calibrated
    return text_model, batch_model


# JSON may spell a lone surrogate ("\ud800"); Python keeps it in the str, but it is not text:
# it cannot be written back as UTF-8 (nor read by the tokenizers), so a request holding one is refused.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(req: _Request) -> None:
    strings: list[tuple[str, str]] = []
    if isinstance(req, TextRequest):
        strings.append(("text", req.text))
    elif isinstance(req, BatchRequest):
        strings += [(f"texts[{i}]", t) for i, t in enumerate(req.texts)]
    for where, labels in _label_sets(req.labels):
        pairs = labels.items() if isinstance(labels, dict) else ((x, None) for x in labels)
        for i, (name, description) in enumerate(pairs):
            strings.append((f"{where}[{i}]", name))
            if description is not None:
                strings.append((f"the description of {where}[{i}]", description))
    if isinstance(req.threshold, dict):
        strings += [("a label of threshold", k) for k in req.threshold]
    for where, rels in _label_sets(getattr(req, "relations", None) or [], "relations"):
        pairs = rels.items() if isinstance(rels, dict) else ((x, None) for x in rels)
        for i, (name, description) in enumerate(pairs):
            strings.append((f"{where}[{i}]", name))
            if description is not None:
                strings.append((f"the description of {where}[{i}]", description))
    for where, value in strings:
        if m := _SURROGATE.search(value):
            raise ValueError(
                f"{where} holds a lone surrogate {m.group()!r} at index {m.start()}, which is not "
                "Unicode text; send the text as valid UTF-8"
            )


class EntityOut(BaseModel):
    start: int = Field(description="Character offset of the entity's first character.")
    end: int = Field(description="Character offset one past the entity's last character.")
    text: str = Field(description="The entity's text, `text[start:end]`.")
    label: str = Field(description="The label, as the request names it.")
    score: float = Field(description="The model's probability for this span and label.")


class RelationEndOut(BaseModel):
    start: int = Field(description="Character offset of the entity's first character.")
    end: int = Field(description="Character offset one past the entity's last character.")
    text: str = Field(description="The entity's text.")
    type: str = Field(description="The entity's label.")
    entity_idx: int = Field(description="The entity's place in the text's `entities` (from 0).")


class RelationOut(BaseModel):
    head: RelationEndOut = Field(description="The entity the relation goes from.")
    tail: RelationEndOut = Field(description="The entity it goes to.")
    relation: str = Field(description="The relation, as the request names it.")
    score: float = Field(description="The model's probability for this pair and relation.")


class TextResult(BaseModel):
    entities: list[EntityOut] = Field(description="The entities found, sorted by start.")
    relations: list[RelationOut] | None = Field(
        None,
        description="With `relations` in the request: the relations found between the entities, ordered "
        "by head, tail, then the order of the request's relations (as gliner's `predict_relations`).",
    )
    html: str | None = Field(None, description="The text with its entities highlighted (with `html: true`).")
    table: str | None = Field(None, description="An HTML table of the entities (with `html: true`).")


class BatchResult(BaseModel):
    results: list[TextResult] = Field(description="One result per text, in the order of `texts`.")


class ModelInfo(BaseModel):
    name: str = Field(description="The model's name.")
    encoder: str = Field(description="The model's encoder (a local folder shows its name only).")
    max_words: int = Field(description="Most words read at once; longer texts are windowed.")
    max_tokens: int = Field(description="Most subword tokens in one encoder sequence.")
    batch_size: int = Field(description="Most texts the worker passes to the model at once.")
    queue_size: int = Field(description="Most requests waiting; beyond it the answer is 503.")
    limits: dict[str, int] = Field(description="The request limits, by name (see `Limits`).")
    relations: bool = Field(
        description="Whether the model extracts relations (`relations` in `POST /v1/entities`); "
        "false: it finds entities only, and a request naming `relations` is refused (422)."
    )
    calibrated: bool = Field(
        description='Whether the model has calibrated thresholds (`"threshold": "auto"` in '
        '`POST /v1/entities`); false: a request saying `"auto"` is refused (422).'
    )


class Health(BaseModel):
    status: str = Field(description="`ok` while the server answers.")
    queued: int = Field(description="Requests waiting for the model.")
    label_cache: dict[str, int] | None = Field(
        default=None,
        description="Bi-encoder models: the label-vector cache (entries, size, hits, misses); absent otherwise.",
    )


class _AsciiJSONResponse(JSONResponse):
    """JSON that can echo any input: non-ASCII escaped (lone surrogates too), NaN and infinities as strings."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong; a limit is named with its value.")


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description='Where in the request, e.g. `["body", "texts", 0]`.')
    msg: str = Field(description="What is wrong there.")
    type: str = Field(description="The kind of error, e.g. `missing` or `extra_forbidden`.")
    input: Any = Field(None, description="The value refused.")
    ctx: dict[str, Any] | None = Field(None, description="Details of the error, e.g. the bound passed.")


class InvalidOut(BaseModel):
    detail: str | list[ValidationIssue] = Field(
        description="A body that does not fit the schema gets the list of what is wrong (`loc`, `msg`, "
        "`type`); a limit or a rule the schema cannot say gets one message naming it."
    )


_INVALID = """The request is refused: its body does not fit the schema (the limits of `GET /v1/model`
are in it, and the message names the one broken), or it breaks a rule the schema cannot say:
`threshold` names a label that is not among `labels`; a batch gives one label set per text but
not as many label sets as `texts`; a text, label or description holds a lone
surrogate (a JSON `\\ud800`, which is no Unicode text); a label or description holds the model's
prompt tokens (`<<ENT>>`, `<<SEP>>`) or has too many subwords for the model's encoder (see
`max_tokens` in `GET /v1/model`). Relations (with a model that extracts them): a relation is
also an entity label (of the same text); a batch gives one relation set per text but not as many
as `texts`; a relation holds the prompt token `<<REL>>`; the labels and relations of a text do not
fit one prompt of the encoder. A model that finds entities only (`relations: false` in
`GET /v1/model`) refuses `relations` and its thresholds; a model without calibrated thresholds
(`calibrated: false`) refuses `"threshold": "auto"`."""


# ---------------------------------------------------------------------- micro-batching


class QueueFull(Exception):
    """The request queue is full."""


class Closed(RuntimeError):
    """The batcher is closing: it answers the requests it holds and takes no more (answered 503)."""


@dataclass(eq=False)
class _Part:
    """The texts of one request that share a label set (all of them, unless it gives one per text):
    the worker runs them with the parts of other requests that have the same ``key``."""

    work: _Work
    indices: list[int]  # the places of its texts in the request
    key: tuple
    args: dict[str, Any]  # labels (one label set), threshold, flat, multi_label[, relations and theirs]
    method: str = "predict_batch"  # or "batch_predict_relations": (entities, relations) per text

    @property
    def texts(self) -> list[str]:
        return [self.work.texts[i] for i in self.indices]


@dataclass(eq=False)
class _Work:
    """One request: its texts, its parts, and the entities found so far (set by the worker thread)."""

    texts: list[str]
    parts: list[_Part] = field(default_factory=list)
    future: Future = field(default_factory=Future)  # set by the worker thread
    found: dict[int, Any] = field(default_factory=dict)  # entities, or (entities, relations)

    def fill(self, part: _Part, found: list[list[Any]]) -> None:
        """Keep a part's entities; the request's answer once every part has them."""
        self.found.update(zip(part.indices, found, strict=True))
        if len(self.found) == len(self.texts) and not self.future.done():
            self.future.set_result([self.found[i] for i in range(len(self.texts))])

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


def _group_key(labels: Any, threshold: Any, flat: bool, multi_label: bool) -> tuple:
    lab = ("dict", tuple(labels.items())) if isinstance(labels, Mapping) else ("list", tuple(labels))
    if isinstance(threshold, Mapping):
        thr: Any = tuple(sorted(threshold.items()))
    else:  # a number, or "auto"
        thr = threshold if isinstance(threshold, str) else float(threshold)
    return lab, thr, bool(flat), bool(multi_label)


def _relation_key(relations: Any, relation_threshold: Any, adjacency_threshold: Any) -> tuple:
    rel = ("dict", tuple(relations.items())) if isinstance(relations, Mapping) else ("list", tuple(relations))
    return "relations", rel, relation_threshold, adjacency_threshold


def _parts(
    work: _Work,
    labels: Any,
    threshold: Any,
    flat: bool,
    multi_label: bool,
    relations: Any = None,
    relation_threshold: float | None = None,
    adjacency_threshold: float | None = None,
) -> list[_Part]:
    """A request's parts: one, or one per distinct label set (and relation set, with relations)
    when it gives one per text.

    With one label set per text, a per-label ``threshold`` is cut, for each text, to the labels of
    that text: a text uses the thresholds of its own labels (the others are for other texts). With
    ``relations``, the parts call ``batch_predict_relations``, and their key holds the relation set
    and thresholds too: only parts asking the same of the model run together.
    """
    n = len(work.texts)
    labels_per_text = _per_text(labels)
    rels_per_text = relations is not None and _per_text(relations)
    if labels_per_text and len(labels) != n:  # the library's own words
        raise ValueError(f"got {len(labels)} label lists for {n} texts; give one per text or one for all")
    if rels_per_text and len(relations) != n:
        raise ValueError(
            f"got {len(relations)} relation lists for {n} texts; give one per text or one for all"
        )
    parts: dict[tuple, _Part] = {}
    for i in range(n) if labels_per_text or rels_per_text else [None]:
        label_set = labels[i] if labels_per_text else labels
        thr = threshold
        if labels_per_text and isinstance(threshold, Mapping):
            thr = {k: v for k, v in threshold.items() if k in label_set}  # a dict's keys are its labels
        key = _group_key(label_set, thr, flat, multi_label)
        args = dict(labels=label_set, threshold=thr, flat=flat, multi_label=multi_label)
        method = "predict_batch"
        if relations is not None:
            rel_set = relations[i] if rels_per_text else relations
            key += _relation_key(rel_set, relation_threshold, adjacency_threshold)
            args.update(
                relations=rel_set,
                relation_threshold=relation_threshold,
                adjacency_threshold=adjacency_threshold,
            )
            method = "batch_predict_relations"
        if key not in parts:
            parts[key] = _Part(work, [], key, args, method)
        parts[key].indices += range(n) if i is None else [i]
    return list(parts.values())


class MicroBatcher:
    """One worker thread feeding the model from a bounded queue of requests.

    The worker takes a request, then more for up to ``max_wait_ms`` or until it holds
    ``batch_size`` texts, and calls ``model.predict_batch`` once per group of texts sharing
    a label set, threshold, flat and multi_label, across requests: a request that gives one
    label set per text is split by label set, so that each call has one label set, and its
    texts join those of other requests with the same one. A request for relations is grouped
    likewise, by its relation set and thresholds too, and its groups call
    ``model.batch_predict_relations``: it shares the queue, the limits and the batches' size
    with the others. When a group fails, each of its requests is run alone, so that only the
    faulty one gets the error.
    """

    def __init__(
        self,
        model: Predictor,
        batch_size: int = 8,
        queue_size: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        positive_int(batch_size, "batch_size")
        positive_int(queue_size, "queue_size")
        if not 0 <= max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {max_wait_ms!r}")
        self.model, self.batch_size, self.max_wait = model, batch_size, max_wait_ms / 1000
        self.on_batch = on_batch  # called with the number of texts of each model call (metrics)
        self.queue: queue.Queue[_Work] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:  # with the lock held
        if self._thread is None or not self._thread.is_alive():
            self._closed = False
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="anyner-batcher", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests, answer those queued (the queue drains), then stop the worker.

        A request that comes after gets :class:`Closed`, and so do the requests still queued after
        ``timeout`` seconds (a model too slow to drain them), rather than wait forever.
        """
        with self._lock:  # after it, no request enters the queue: the worker can see it empty
            self._closed = True
            self._stop.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning(
                    "the model did not answer the queued requests in %s s; they get an error", timeout
                )
        while True:
            try:
                work = self.queue.get_nowait()
            except queue.Empty:
                break
            if work.future.set_running_or_notify_cancel():
                work.future.set_exception(Closed("the server is shutting down"))

    async def predict(
        self,
        texts: Sequence[str],
        labels: Any,
        threshold: Any,
        flat: bool,
        multi_label: bool,
        relations: Any = None,
        relation_threshold: float | None = None,
        adjacency_threshold: float | None = None,
    ) -> list[Any]:
        """Entities per text, from the worker thread; raises :class:`QueueFull` at once when full.

        ``labels`` is one label set for all texts, or a list of label sets, one per text. With
        ``relations`` (one relation set, or one per text), ``(entities, relations)`` per text, from
        ``model.batch_predict_relations``.
        """
        work = _Work(list(texts))
        work.parts = _parts(
            work, labels, threshold, flat, multi_label, relations, relation_threshold, adjacency_threshold
        )
        with self._lock:
            if self._closed:
                raise Closed
            self._start()
            try:
                self.queue.put_nowait(work)
            except queue.Full:
                raise QueueFull from None
        return await asyncio.wrap_future(work.future)

    def _loop(self) -> None:
        # once stopped, the loop goes on until the queue is empty (close() lets no more in)
        while not self._stop.is_set() or not self.queue.empty():
            try:
                first = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch, n = [first], len(first.texts)
            deadline = time.monotonic() + self.max_wait
            while n < self.batch_size and (left := deadline - time.monotonic()) > 0:
                try:
                    work = self.queue.get(timeout=left)
                except queue.Empty:
                    break
                batch.append(work)
                n += len(work.texts)
            # A request whose caller went away (its future cancelled) is dropped; the others can
            # no longer be cancelled, so setting their result below cannot fail.
            batch = [work for work in batch if work.future.set_running_or_notify_cancel()]
            try:
                groups: dict[tuple, list[_Part]] = {}
                for work in batch:
                    for part in work.parts:
                        groups.setdefault(part.key, []).append(part)
                for group in groups.values():
                    self._run(group)
            except Exception as e:  # a bug here must not kill the worker and leave requests waiting
                log.exception("the batcher failed")
                for work in batch:
                    work.fail(e)

    def _run(self, group: list[_Part]) -> None:
        group = [part for part in group if not part.work.future.done()]  # not a request that failed
        if not group:
            return
        texts = [t for part in group for t in part.texts]
        if self.on_batch is not None:
            self.on_batch(len(texts))
        try:
            found = getattr(self.model, group[0].method)(texts, batch_size=self.batch_size, **group[0].args)
            if len(found) != len(texts):
                raise RuntimeError(f"the model returned {len(found)} results for {len(texts)} texts")
        except Exception as e:
            if len(group) > 1:
                for part in group:
                    self._run([part])
            else:
                group[0].work.fail(e)
            return
        i = 0
        for part in group:
            part.work.fill(part, found[i : i + len(part.indices)])
            i += len(part.indices)


# ---------------------------------------------------------------------- the request body limit


class BodyLimit:
    """ASGI middleware: 413 when Content-Length or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")  # the server checked its syntax
        too_large = length.isdigit() and int(length) > self.max_bytes
        chunks, size, more = [], 0, True
        while more and not too_large:  # read the body, counting: it may come without Content-Length
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size, more = size + len(chunks[-1]), message.get("more_body", False)
            too_large = size > self.max_bytes
        if too_large:
            detail = f"the request body is too large; the limit max_body_bytes is {self.max_bytes} bytes"
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ---------------------------------------------------------------------- the app


def _check_request(req: TextRequest | BatchRequest, texts: list[str], limits: Limits) -> None:
    """What the request models' JSON Schema says beyond types (see :func:`request_models`), and
    what it cannot say (as many label sets as texts, when there is one per text; ``threshold``
    names only labels, of at least one text), with messages naming the limit (the library's own
    words for its rules). Checked here, not by the model: the schema holds whatever the model."""

    def fail(message: str) -> None:
        raise HTTPException(422, message)

    if len(texts) > limits.max_texts:
        fail(f"too many texts: {len(texts)}; the limit max_texts is {limits.max_texts}")
    for i, t in enumerate(texts):
        if len(t) > limits.max_text_chars:
            where = "text" if isinstance(req, TextRequest) else f"texts[{i}]"
            fail(f"{where} has {len(t)} characters; the limit max_text_chars is {limits.max_text_chars}")
    label_sets = _label_sets(req.labels)
    if _per_text(req.labels):  # one label set per text
        n = len(req.labels)
        if n > limits.max_texts:
            fail(f"too many label sets: {n}; the limit max_texts is {limits.max_texts}")
        if n != len(texts):  # the one rule here that JSON Schema cannot say
            fail(
                f"labels has {n} label set{'' if n == 1 else 's'} for {len(texts)} texts: give one "
                "label set per text (in the order of texts), or one label set for all texts"
            )
    for where, labels in label_sets:
        if not labels:  # the library's own words
            fail(f"{where} is empty: give at least one label, e.g. ['person', 'organization']")
        if len(labels) > limits.max_labels:
            of = "" if where == "labels" else f" in {where}"
            fail(f"too many labels{of}: {len(labels)}; the limit max_labels is {limits.max_labels}")
        pairs = labels.items() if isinstance(labels, dict) else ((x, x) for x in labels)
        for i, (name, description) in enumerate(pairs):
            for what, value in (("label", name), ("description", description)):
                if len(value) > limits.max_label_chars:
                    fail(
                        f"the {what} of {where}[{i}] has {len(value)} characters; "
                        f"the limit max_label_chars is {limits.max_label_chars}"
                    )
                if not value.strip():  # the library's own words
                    fail(f"{what}s must not be empty or blank: {value!r}")
    names = {name for _, labels in label_sets for name in labels}  # a dict's keys are its labels
    if isinstance(req.threshold, dict) and (unknown := set(req.threshold) - names):
        fail(f"threshold names labels that are not asked for: {sorted(unknown, key=repr)}")
    relations = getattr(req, "relations", None)
    if relations is not None:
        _check_relations(req.labels, relations, texts, limits)


def _check_relations(labels: Any, relations: Any, texts: list[str], limits: Limits) -> None:
    """:func:`_check_request` for ``relations``: the limits of label sets, as many relation sets as
    texts when there is one per text, and no relation named as an entity label of the same text
    (the library's words)."""

    def fail(message: str) -> None:
        raise HTTPException(422, message)

    rel_sets = _label_sets(relations, "relations")
    if _per_text(relations):
        n = len(relations)
        if n > limits.max_texts:
            fail(f"too many relation sets: {n}; the limit max_texts is {limits.max_texts}")
        if n != len(texts):
            fail(
                f"relations has {n} relation set{'' if n == 1 else 's'} for {len(texts)} texts: give one "
                "relation set per text (in the order of texts), or one relation set for all texts"
            )
    for where, rels in rel_sets:
        if not rels:  # the library's own words
            fail(
                f"{where} is empty: give at least one relation, e.g. ['works for'], or leave out `relations`"
            )
        if len(rels) > limits.max_labels:
            of = "" if where == "relations" else f" in {where}"
            fail(f"too many relations{of}: {len(rels)}; the limit max_labels is {limits.max_labels}")
        pairs = rels.items() if isinstance(rels, dict) else ((x, x) for x in rels)
        for i, (name, description) in enumerate(pairs):
            for what, value in (("relation", name), ("relation description", description)):
                if len(value) > limits.max_label_chars:
                    fail(
                        f"the {what} of {where}[{i}] has {len(value)} characters; "
                        f"the limit max_label_chars is {limits.max_label_chars}"
                    )
                if not value.strip():  # the library's own words
                    fail(f"{what}s must not be empty or blank: {value!r}")
    n = len(texts) if _per_text(labels) or _per_text(relations) else 1
    for i in range(n):
        label_set = labels[i] if _per_text(labels) else labels
        rel_set = relations[i] if _per_text(relations) else relations
        if clash := sorted(set(rel_set) & set(label_set)):  # a dict's keys are its names
            of = f" of texts[{i}]" if n > 1 else ""
            fail(
                f"relation names must differ from the entity labels{of}; {clash} is both: rename the "
                "relation (e.g. 'has location' for a relation beside the label 'location')"
            )


def _result(text: str, found: Any, html: bool) -> dict[str, Any]:
    """One text's answer, from its entities or its ``(entities, relations)``."""
    entities, relations = found if isinstance(found, tuple) else (found, None)
    out: dict[str, Any] = {"entities": [e.to_dict() for e in entities]}
    if relations is not None:
        out["relations"] = [r.to_dict() for r in relations]
    if html:
        out["html"], out["table"] = render(text, entities), render_table(text, entities)
    return out


def _public(name: str | None) -> str | None:
    """A name to show: a local path loses its folders (a Hub id such as ``org/model`` is kept)."""
    return PurePath(name).name if name and PurePath(name).is_absolute() else name


def _web_file(name: str) -> str:
    return (resources.files("anyner") / "web" / name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------- the documentation pages, offline

DOCS_ASSETS = "/docs-assets"
"""Where the files of Swagger UI and ReDoc are served: fixed names, no request names a file."""
_DOCS_FILES = {  # the files of the fastapi-offline package (its static/ folder), and their types
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _docs_folder() -> Any:
    """The folder of Swagger UI's and ReDoc's files, or None without the package that ships them.

    (The swagger-ui-bundle package's Swagger UI, 4.15, cannot read OpenAPI 3.1, FastAPI's.)"""
    try:
        folder = resources.files("fastapi_offline") / "static"
    except ModuleNotFoundError:
        return None
    return folder if all((folder / name).is_file() for name in _DOCS_FILES) else None


def _docs_headers(html: str) -> dict[str, str]:
    """The page's headers, with a CSP that lets it run its own inline script (by its hash), the
    server's scripts and styles, and nothing from elsewhere. (Swagger UI and ReDoc set inline
    styles and use ``data:`` images; ReDoc runs its search in a worker made from a ``blob:``.)"""
    hashes = "".join(
        " 'sha256-" + base64.b64encode(hashlib.sha256(m.encode("utf-8")).digest()).decode("ascii") + "'"
        for m in _INLINE_SCRIPT.findall(html)
    )
    policy = (
        f"default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {**_PAGE_HEADERS, "Content-Security-Policy": policy}


def _add_docs(app: FastAPI, folder: Any) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), loading their files (in ``folder``) from the
    server, at fixed paths under ``/docs-assets/``: no CDN, they work without internet."""
    title, openapi_url = app.title, app.openapi_url or "/openapi.json"
    cache: dict[str, bytes] = {}

    def asset(name: str, media_type: str) -> Any:
        async def serve_asset() -> Response:
            if name not in cache:  # read once, on first use
                cache[name] = await asyncio.to_thread((folder / name).read_bytes)
            headers = {**_PAGE_HEADERS, "Cache-Control": "public, max-age=3600"}
            return Response(cache[name], media_type=media_type, headers=headers)

        return serve_asset

    for name, media_type in _DOCS_FILES.items():
        app.get(f"{DOCS_ASSETS}/{name}", include_in_schema=False)(asset(name, media_type))

    def page(html: HTMLResponse) -> HTMLResponse:
        text = bytes(html.body).decode("utf-8")
        return HTMLResponse(text, headers=_docs_headers(text))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        return page(
            get_swagger_ui_html(
                openapi_url=base + openapi_url,
                title=f"{title} - Swagger UI",
                swagger_js_url=f"{base}{DOCS_ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{base}{DOCS_ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
                swagger_ui_parameters={"validatorUrl": None},  # no badge from an online validator
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        return page(
            get_redoc_html(
                openapi_url=base + openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{base}{DOCS_ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{base}{DOCS_ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )


def _model_info(model: Predictor, name: str | None, **settings: Any) -> ModelInfo:
    """``GET /v1/model``; a model that is no :class:`Predictor` is refused here, at once."""
    if not isinstance(model, Predictor) or not isinstance(model.config, ModelConfig):
        raise TypeError(
            f"the model ({type(model).__name__}) is no Predictor: it needs predict_batch, max_tokens "
            "and a config with name, encoder and max_len (as anyner.AnyNER has)"
        )
    config = model.config
    return ModelInfo(
        name=_public(name or config.name), encoder=_public(config.encoder),
        max_words=positive_int(config.max_len, "model.config.max_len"),
        max_tokens=positive_int(model.max_tokens, "model.max_tokens"), relations=extracts_relations(model),
        calibrated=is_calibrated(model), **settings,
    )  # fmt: skip


def create_app(
    model: Predictor,
    *,
    limits: Limits | None = None,
    batch_size: int = 8,
    queue_size: int = 64,
    max_wait_ms: float = 5.0,
    name: str | None = None,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
    metrics: bool = True,
    shutdown_timeout: float = 30.0,
) -> FastAPI:
    """The FastAPI app serving ``model`` (an :class:`~anyner.AnyNER`, or any :class:`Predictor`).

    When the model extracts relations (:func:`extracts_relations`), requests may also ask for the
    relations between the entities (:class:`RelationTextRequest`); otherwise they may not, and
    the schema has no relation fields.

    Args:
        limits: what one request may hold (default :class:`Limits`).
        batch_size: most texts the worker passes to ``predict_batch`` (or
            ``batch_predict_relations``) at once.
        queue_size: most requests waiting for the worker; more are answered 503.
        max_wait_ms: how long the worker waits for more requests to fill a batch.
        name: the model's name in ``GET /v1/model`` (default ``model.config.name``).
        api_key: when given, every request outside ``anyner.deploy.OPEN_PATHS`` (the page,
            ``/health``, the documentation) needs it, as ``Authorization: Bearer KEY`` or
            ``X-API-Key: KEY``; others get 401.
        cors_origins: origins whose pages may call the API from a browser (none by default;
            ``*`` for any); see :func:`anyner.deploy.cors_options`.
        metrics: serve Prometheus metrics at ``/metrics`` (needs ``prometheus_client``, in the
            ``serve`` extra; without it, a warning and no ``/metrics``).
        shutdown_timeout: at shutdown, how long the worker may take to answer the queued
            requests; those still waiting then get 503.
    """
    from anyner import __version__, deploy

    limits = limits if limits is not None else Limits()
    cors = deploy.cors_options(cors_origins) if cors_origins else None
    if not (isinstance(shutdown_timeout, int | float) and 0 <= shutdown_timeout <= 3600):
        raise ValueError(f"shutdown_timeout must be seconds in [0, 3600], got {shutdown_timeout!r}")
    batcher = MicroBatcher(model, batch_size=batch_size, queue_size=queue_size, max_wait_ms=max_wait_ms)
    info = _model_info(model, name, batch_size=batch_size, queue_size=queue_size, limits=asdict(limits))
    relex = extracts_relations(model)
    text_model, batch_model = request_models(limits, relations=relex, calibrated=is_calibrated(model))
    body_type = _body_type(text_model, batch_model)
    page, script = _web_file("index.html"), _web_file("app.js")
    prometheus = None
    if metrics:
        try:
            prometheus = deploy.Metrics(batcher.queue.qsize, model)
        except ImportError:
            log.warning("prometheus_client is not installed: no /metrics (pip install 'anyner[serve]')")
        else:
            batcher.on_batch = prometheus.observe_batch

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            # uvicorn calls this on SIGTERM once its connections are done: the queue drains first
            await asyncio.to_thread(batcher.close, shutdown_timeout)

    description = "Open-type named entity recognition: find entities of any type you name."
    # /docs and /redoc from the server's own files; without the package that ships them (the
    # serve extra has it), FastAPI's pages, which load their scripts from a CDN (blank offline)
    docs = _docs_folder()
    if docs is None:
        log.warning(
            "fastapi-offline is not installed: /docs and /redoc load their scripts from a CDN, and are "
            "blank without internet (pip install 'anyner[serve]')"
        )
    app = FastAPI(
        title="anyner", version=__version__, description=description, lifespan=lifespan,
        docs_url="/docs" if docs is None else None, redoc_url="/redoc" if docs is None else None,
    )  # fmt: skip
    if docs is not None:
        _add_docs(app, docs)
    app.state.batcher, app.state.limits, app.state.metrics = batcher, limits, prometheus
    # the last added is the outermost: ids and metrics see every answer (a 401, a 413 too);
    # CORS answers preflights (which carry no key) and adds its headers to a 401; the key is
    # checked before the body is read
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    if api_key is not None:
        app.add_middleware(deploy.ApiKey, key=api_key)
    if cors is not None:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, **cors)
    app.add_middleware(deploy.RequestLog, metrics=prometheus)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, except that the errors echo the input, which may hold anything
        return _AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/app.js", include_in_schema=False)
    async def app_js() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8", headers=_PAGE_HEADERS)

    @app.get(
        "/health",
        response_model=Health,
        response_model_exclude_none=True,
        summary="Whether the server answers",
    )
    async def health() -> Health:
        cache = getattr(model, "label_cache", None)
        stats = cache.stats() if cache is not None and hasattr(cache, "stats") else None
        return Health(status="ok", queued=batcher.queue.qsize(), label_cache=stats)

    if prometheus is not None:

        @app.get("/metrics", include_in_schema=False)
        async def metrics_page() -> Response:
            body, media_type = prometheus.render()
            return Response(body, media_type=media_type)

    # With a key, the schema says so (and /docs gets its "Authorize" button); the middleware
    # (deploy.ApiKey) checks it, before the body is read: these dependencies only describe it.
    guarded: list[Any] = []
    if api_key is not None:
        from fastapi import Security
        from fastapi.security import APIKeyHeader, HTTPBearer

        guarded = [
            Security(HTTPBearer(auto_error=False, description="`Authorization: Bearer KEY`")),
            Security(APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: KEY`")),
        ]
        errors_401 = {401: {"model": ErrorOut, "description": "The API key is missing or wrong"}}
    else:
        errors_401 = {}

    @app.get(
        "/v1/model", response_model=ModelInfo, summary="The model's name and the limits",
        dependencies=guarded, responses=errors_401,
    )  # fmt: skip
    async def model_info() -> ModelInfo:
        return info

    retry_after = {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 0}}
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorOut, "description": "The body cannot be read: bytes that are no UTF-8"},
        **errors_401,
        413: {"model": ErrorOut, "description": "The body is larger than `max_body_bytes` (`GET /v1/model`)"},
        422: {"model": InvalidOut, "description": _INVALID},
        500: {"model": ErrorOut, "description": "The model failed on this request"},
        503: {
            "model": ErrorOut,
            "description": "The queue is full, or the server is shutting down; retry after `Retry-After` seconds",
            "headers": {"Retry-After": retry_after},
        },
    }

    async def entities(req: TextRequest | BatchRequest) -> dict[str, Any]:
        texts = [req.text] if isinstance(req, TextRequest) else list(req.texts)
        _check_request(req, texts, limits)
        flat = not req.nested if req.nested is not None else req.flat
        # (None without relations: the request models of an entity-only model have no such fields)
        relations = getattr(req, "relations", None)
        rel_options = {k: getattr(req, k) for k in RELATION_FIELDS} if relations is not None else {}
        if not texts:  # nothing to run, but the labels and threshold are still checked
            try:
                if relations is not None:
                    model.batch_predict_relations(  # type: ignore[attr-defined]
                        [], req.labels, threshold=req.threshold, flat=flat, multi_label=req.multi_label,
                        **rel_options,
                    )  # fmt: skip
                else:
                    model.predict_batch(
                        [], req.labels, threshold=req.threshold, flat=flat, multi_label=req.multi_label
                    )
            except (ValueError, TypeError) as e:
                raise HTTPException(422, str(e)) from e
            return {"results": []}
        try:
            found = await batcher.predict(
                texts, req.labels, req.threshold, flat, req.multi_label, **rel_options
            )
        except QueueFull:
            raise HTTPException(
                503,
                f"the server is busy: its queue of {queue_size} requests (queue_size) is full; retry later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        except Closed:
            raise HTTPException(
                503,
                "the server is shutting down; retry later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        except (ValueError, TypeError) as e:
            raise HTTPException(422, str(e)) from e
        except Exception as e:
            log.exception("the model failed on a request")
            raise HTTPException(500, f"the model failed: {type(e).__name__}: {e}") from e
        pairs = list(zip(texts, found, strict=True))
        build = lambda: [_result(t, ents, req.html) for t, ents in pairs]  # noqa: E731
        results = await asyncio.to_thread(build) if req.html else build()  # rendering may take a while
        return results[0] if isinstance(req, TextRequest) else {"results": results}

    # The body's type is made for this app (its schema says `limits`): set here, since the
    # module's annotations are strings that FastAPI reads in the module's namespace.
    body = Body(
        title="EntitiesRequest",
        description="One text (`text`) or a batch (`texts`), with the labels and options.",
    )
    entities.__annotations__["req"] = Annotated[body_type, body]
    app.post(
        "/v1/entities",
        dependencies=guarded,
        response_model=TextResult | BatchResult,
        response_model_exclude_none=True,
        summary="Find entities in one text or a batch"
        + (", and the relations between them" if relex else ""),
        responses=errors,
    )(entities)
    return app


def run(
    model: Predictor | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    workers: int = 1,
    worker_options: str | None = None,
    **options: Any,
) -> None:
    """Serve ``model`` with uvicorn until interrupted (SIGINT or SIGTERM: the queue drains first).

    ``options`` go to :func:`create_app`. With ``workers`` > 1, ``model`` is None and each worker
    process builds its own app and model from ``worker_options`` (the JSON of
    :func:`anyner.deploy.worker_options`), which uvicorn's workers read from the environment.
    """
    import logging.config
    import os

    import uvicorn

    from anyner import deploy

    positive_int(workers, "workers")
    config = deploy.log_config(log_level)
    logging.config.dictConfig(config)  # now, so that the warnings below have the server's format
    if host not in ("127.0.0.1", "localhost", "::1") and options.get("api_key") is None:
        log.warning(
            "listening on %s without an API key: anyone who reaches it can use it (--api-key-file)", host
        )
    shutdown = options.get("shutdown_timeout", 30.0)
    common = dict(
        host=host, port=port, log_level=log_level, log_config=config,
        access_log=False,  # anyner.access logs each request, with its id
        timeout_graceful_shutdown=shutdown,
    )  # fmt: skip
    if workers == 1:
        if model is None:
            raise ValueError("run() needs a model with one worker")
        uvicorn.run(create_app(model, **options), **common)
        return
    if worker_options is None:
        raise ValueError("run() needs worker_options with several workers: each worker loads its own model")
    os.environ[deploy.OPTIONS_ENV] = worker_options  # the workers inherit the environment
    uvicorn.run("anyner.workers:app_from_env", factory=True, workers=workers, **common)
