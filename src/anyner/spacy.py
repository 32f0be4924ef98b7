"""spaCy pipeline component: open-type NER inside a spaCy pipeline.

    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("anyner", config={"labels": ["person", "organization", "date"]})
    doc = nlp("Bill Gates founded Microsoft on April 4, 1975.")
    [(e.text, e.label_, round(e._.anyner_score, 2)) for e in doc.ents]

The factory is registered through the ``spacy_factories`` entry point, so
``nlp.add_pipe("anyner")`` works once anyner is installed; ``import anyner.spacy``
registers it too. Needs spaCy: ``pip install "anyner[spacy]"``.

Config (all but ``labels`` optional):

- ``labels``: a list of label names, or a dict label -> description.
- ``model``: a model folder or Hub id, as a string; None (default) is the built-in model.
- ``threshold``: minimum score, or a dict label -> threshold (default 0.5), or ``"auto"``:
  each label's calibrated threshold from the model's ``calibration.json`` (see
  :mod:`anyner.calibration`; a model without one is a ValueError when the pipe is added).
- ``nested``: False (default) writes non-overlapping entities to ``doc.ents``; True
  writes nested entities to ``doc.spans[spans_key]`` and leaves ``doc.ents`` alone.
- ``spans_key``: the span group written when ``nested`` (default ``"anyner"``).
- ``alignment_mode``: how an entity is mapped to spaCy tokens (see below).
- ``batch_size``: texts per model forward pass (default 8). ``nlp.pipe`` hands the
  component groups of docs (its own ``batch_size``), each predicted in one call.
- ``overwrite_ents``: with ``nested=False``, replace entities already in ``doc.ents``
  (True) or keep them and add only the entities that do not overlap them (False, default).
- ``relations``: relation names, or a dict relation -> description, to find between the
  entities (see Relations below); None (default): entities only.
- ``relation_threshold``: minimum relation score; None (default) is ``threshold`` (0.5
  when that is a dict or ``"auto"``).
- ``adjacency_threshold``: the pair filter of the model's adjacency layer; None (default)
  is ``threshold`` (0.5 when that is a dict or ``"auto"``).

Alignment policy. anyner finds entities as character offsets of ``doc.text``; spaCy
spans are made of whole tokens, and the two tokenizations can disagree (spaCy keeps
``"Microsoft.com"`` or ``"BillGates"`` as one token). Each entity becomes
``doc.char_span(start, end, alignment_mode=...)``:

- ``"expand"`` (default): the span of every token the entity touches, so an entity
  inside a token becomes that whole token. It always aligns.
- ``"contract"``: only the tokens wholly inside the entity; an entity inside a single
  token has none and is not set.
- ``"strict"``: only entities whose both ends fall on token boundaries.

An entity is never dropped silently. One that cannot be aligned (reason
``"unaligned"``), or whose aligned span clashes with a higher-scoring one, with an
entity already in ``doc.ents`` or, when nested, with a span of the same tokens (reason
``"conflict"``), is appended to ``doc._.anyner_dropped`` as a dict (start, end, text,
label, score: the entity as anyner found it; reason; component), counted in the
component's ``stats`` and logged as a warning on the ``anyner.spacy`` logger.
``doc._.anyner_dropped`` is an empty list after the component ran on a doc without drops.

Scores: each span the component sets carries the model's score in
``span._.anyner_score`` (None on spans it did not set).

Relations. With ``relations`` set, the model must find relations: the built-in model (its
relation model loads with the component), or a GLiNER span relex checkpoint, such as a folder
saved from gliner's ``UniEncoderSpanRelexGLiNER``; the component calls its
``batch_predict_relations``. ``doc._.anyner_relations`` is a list of dicts (head, tail,
label, score) whose head and tail are the spans the relation's entities became, in
``doc.ents`` or, when nested, in ``doc.spans[spans_key]``; it is an empty list when
relations are off or none were found. A relation whose head or tail entity was not set
(unaligned or in conflict, as above) is not lost: it is appended to ``doc._.anyner_dropped``
with reason ``"relation endpoint dropped"``, as a dict of head and tail (each the entity as
anyner found it: start, end, text, label, score), label, score, ``endpoint`` (``"head"``,
``"tail"`` or ``"head and tail"``: which entity was not set), reason and component.
``doc._.anyner_relations`` is computed from token offsets kept in
``doc._.anyner_relation_offsets``, so a doc still serializes (``Doc.to_bytes``, ``DocBin``,
``nlp.pipe(n_process=2)``): spaCy cannot serialize span objects held in ``doc._``.
"""

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

try:
    from spacy.language import Language
    from spacy.pipeline import Pipe
    from spacy.tokens import Doc, Span
    from spacy.util import minibatch
except ImportError as e:  # absolute imports: this is the real spaCy, not this module
    raise ImportError(f'anyner.spacy needs spaCy ({e}): pip install "anyner[spacy]"') from e

from anyner import validate
from anyner.types import Entity, Relation

__all__ = ["ALIGNMENT_MODES", "AnyNERComponent", "make_anyner"]

ALIGNMENT_MODES = ("expand", "contract", "strict")
DROPPED = "anyner_dropped"  # doc._.anyner_dropped
SCORE = "anyner_score"  # span._.anyner_score
RELATIONS = "anyner_relations"  # doc._.anyner_relations: dicts with spans, read from RELATION_OFFSETS
RELATION_OFFSETS = "anyner_relation_offsets"  # doc._.anyner_relation_offsets: the same, in token offsets
ENDPOINT_DROPPED = "relation endpoint dropped"  # the reason of a relation in doc._.anyner_dropped

logger = logging.getLogger("anyner.spacy")

DEFAULT_CONFIG: dict[str, Any] = {
    "labels": None,
    "model": None,
    "threshold": 0.5,
    "nested": False,
    "spans_key": "anyner",
    "alignment_mode": "expand",
    "batch_size": 8,
    "overwrite_ents": False,
    "relations": None,
    "relation_threshold": None,
    "adjacency_threshold": None,
}


@Language.factory(
    "anyner",
    default_config=DEFAULT_CONFIG,
    assigns=[
        "doc.ents",
        "token.ent_iob",
        "token.ent_type",
        "doc.spans",
        f"doc._.{DROPPED}",
        f"doc._.{RELATION_OFFSETS}",
        f"span._.{SCORE}",
    ],
)
def make_anyner(
    nlp: Language,
    name: str,
    labels: list[str] | dict[str, str] | None,
    model: str | None,
    threshold: float | Literal["auto"] | dict[str, float],
    nested: bool,
    spans_key: str,
    alignment_mode: str,
    batch_size: int,
    overwrite_ents: bool,
    relations: list[str] | dict[str, str] | None,
    relation_threshold: float | None,
    adjacency_threshold: float | None,
) -> "AnyNERComponent":
    """Build the ``anyner`` component: load ``model`` (None: the built-in model)."""
    from anyner.pipeline import AnyNER

    _check_labels(labels)
    return AnyNERComponent(
        name, AnyNER.from_pretrained(model), labels, threshold=threshold, nested=nested,
        spans_key=spans_key, alignment_mode=alignment_mode, batch_size=batch_size,
        overwrite_ents=overwrite_ents, relations=relations, relation_threshold=relation_threshold,
        adjacency_threshold=adjacency_threshold,
    )  # fmt: skip


class AnyNERComponent(Pipe):
    """Sets anyner's entities on spaCy docs (see the module docstring for the policy).

    ``ner`` is a loaded :class:`anyner.AnyNER` (anything with its ``predict_batch``, and with
    ``relations`` its ``batch_predict_relations``). ``stats`` counts docs, entities found, set,
    and dropped by reason; with relations also relations found and set
    (``relations_found``, ``relations_set``) and those dropped (``relation endpoint dropped``).
    """

    def __init__(
        self,
        name: str,
        ner: Any,
        labels: Sequence[str] | Mapping[str, str],
        *,
        threshold: float | Literal["auto"] | Mapping[str, float] = 0.5,
        nested: bool = False,
        spans_key: str = "anyner",
        alignment_mode: str = "expand",
        batch_size: int = 8,
        overwrite_ents: bool = False,
        relations: Sequence[str] | Mapping[str, str] | None = None,
        relation_threshold: float | None = None,
        adjacency_threshold: float | None = None,
    ):
        _check_labels(labels)
        if alignment_mode not in ALIGNMENT_MODES:
            raise ValueError(f"alignment_mode must be one of {ALIGNMENT_MODES}, got {alignment_mode!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(spans_key, str) or not spans_key:
            raise ValueError(f"spans_key must be a non-empty string, got {spans_key!r}")
        self.name = name
        self.ner = ner
        self.label_config = dict(labels) if isinstance(labels, Mapping) else list(labels)
        self.threshold = dict(threshold) if isinstance(threshold, Mapping) else threshold
        self.nested = bool(nested)
        self.spans_key = spans_key
        self.alignment_mode = alignment_mode
        self.batch_size = batch_size
        self.overwrite_ents = bool(overwrite_ents)
        self.relations = None if relations is None else _relation_config(relations)
        self.relation_threshold = _threshold(relation_threshold, "relation_threshold")
        self.adjacency_threshold = _threshold(adjacency_threshold, "adjacency_threshold")
        self.stats: Counter[str] = Counter()
        # checks labels and thresholds now, not on the first doc (an empty text runs no model)
        if self.relations is None:
            thresholds = {
                "relation_threshold": relation_threshold,
                "adjacency_threshold": adjacency_threshold,
            }
            for what, value in thresholds.items():
                if value is not None:
                    raise ValueError(f"{what} applies to relations only: set relations too")
            ner.predict_batch([""], self.label_config, threshold=self.threshold)
        else:
            try:
                self._predict_relations([""])
            except NotImplementedError as e:
                raise NotImplementedError(
                    f"the anyner component's relations need a relation-extraction model (a GLiNER "
                    f"checkpoint folder or Hub id, such as a folder saved from gliner's "
                    f"UniEncoderSpanRelexGLiNER): {e}"
                ) from e
        _register_extensions()

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.label_config)

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        """Docs in groups of ``batch_size``, one ``predict_batch`` call per group."""
        error_handler = self.get_error_handler()
        for docs in minibatch(stream, size=batch_size):
            try:
                self.set_annotations(docs, self.predict(docs))
            except Exception as e:
                error_handler(self.name, self, docs, e)
                continue
            yield from docs

    def predict(self, docs: Sequence[Doc]) -> list[list[Entity]] | list[tuple[list[Entity], list[Relation]]]:
        """anyner's entities for each doc, as character offsets of ``doc.text``; with
        ``relations``, an ``(entities, relations)`` pair for each doc."""
        texts = [doc.text for doc in docs]
        if self.relations is not None:
            return self._predict_relations(texts)
        return self.ner.predict_batch(
            texts, self.label_config, batch_size=self.batch_size, threshold=self.threshold,
            flat=not self.nested,
        )  # fmt: skip

    def _predict_relations(self, texts: list[str]) -> list[tuple[list[Entity], list[Relation]]]:
        return self.ner.batch_predict_relations(
            texts, self.label_config, self.relations, batch_size=self.batch_size, threshold=self.threshold,
            relation_threshold=self.relation_threshold, adjacency_threshold=self.adjacency_threshold,
            flat=not self.nested,
        )  # fmt: skip

    def set_annotations(
        self,
        docs: Sequence[Doc],
        entities: Sequence[list[Entity]] | Sequence[tuple[list[Entity], list[Relation]]],
    ) -> None:
        """Set each doc's entities (and relations), as :meth:`predict` gives them."""
        for doc, found in zip(docs, entities, strict=True):
            if isinstance(found, tuple):
                self._annotate(doc, *found)
            else:
                self._annotate(doc, found, None)

    # ------------------------------------------------------------------ one doc

    def _annotate(self, doc: Doc, ents: list[Entity], relations: list[Relation] | None) -> None:
        aligned, dropped = [], []
        for i, e in enumerate(ents):
            span = doc.char_span(e.start, e.end, label=e.label, alignment_mode=self.alignment_mode)
            if span is None or len(span) == 0:
                dropped.append(self._record(e, "unaligned"))
            else:
                aligned.append((span, e, i))
        # best score first: a conflict keeps the higher-scoring entity (ties: the earlier one)
        aligned.sort(key=lambda sei: (-sei[1].score, sei[0].start, sei[0].end))
        kept: list[tuple[Span, Entity, int]] = []
        if self.nested:
            seen: set[tuple[int, int]] = set()
            for span, e, i in aligned:
                if (span.start, span.end) in seen:
                    dropped.append(self._record(e, "conflict"))
                    continue
                seen.add((span.start, span.end))
                kept.append((span, e, i))
            kept.sort(key=lambda sei: (sei[0].start, -sei[0].end))
            doc.spans[self.spans_key] = [span for span, _, _ in kept]
        else:
            existing = [] if self.overwrite_ents else list(doc.ents)
            taken = [False] * len(doc)
            for span in existing:
                taken[span.start : span.end] = [True] * len(span)
            for span, e, i in aligned:
                if any(taken[span.start : span.end]):
                    dropped.append(self._record(e, "conflict"))
                    continue
                taken[span.start : span.end] = [True] * len(span)
                kept.append((span, e, i))
            doc.ents = sorted(existing + [span for span, _, _ in kept], key=lambda s: s.start)
        for span, e, _ in kept:  # stored by character offsets: doc.ents' new Span objects see it too
            span._.set(SCORE, e.score)
        self.stats.update(docs=1, found=len(ents), set=len(kept))
        if relations is not None:
            dropped += self._set_relations(doc, ents, relations, {i: span for span, _, i in kept})
        previous = doc._.get(DROPPED) or []
        doc._.set(DROPPED, previous + dropped)
        self.stats.update(d["reason"] for d in dropped)
        if dropped:
            reasons = Counter(d["reason"] for d in dropped)
            n_rel = reasons.get(ENDPOINT_DROPPED, 0)
            logger.warning(
                "%s: %d of %d entities%s found in a doc were not set (%s, alignment_mode=%r); "
                "they are listed in doc._.%s",
                self.name, len(dropped) - n_rel, len(ents),
                f" and {n_rel} of {len(relations or ())} relations" if n_rel else "",
                ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())), self.alignment_mode, DROPPED,
            )  # fmt: skip

    def _set_relations(
        self, doc: Doc, ents: list[Entity], relations: list[Relation], spans: dict[int, Span]
    ) -> list[dict[str, Any]]:
        """Store the relations whose head and tail entities became ``spans`` (entity index -> span)
        on ``doc``; return the records of the others, for ``doc._.anyner_dropped``."""
        offsets, dropped = [], []
        for r in relations:
            head = spans.get(_index(ents, r.head, r.head_index))
            tail = spans.get(_index(ents, r.tail, r.tail_index))
            if head is None or tail is None:
                dropped.append(self._relation_record(r, head is None, tail is None))
            else:
                offsets.append(
                    {"head": _offsets(head), "tail": _offsets(tail), "label": r.label, "score": r.score}
                )
        doc._.set(RELATION_OFFSETS, (doc._.get(RELATION_OFFSETS) or []) + offsets)
        self.stats.update(relations_found=len(relations), relations_set=len(offsets))
        return dropped

    def _record(self, e: Entity, reason: str) -> dict[str, Any]:
        return {**e.to_dict(), "reason": reason, "component": self.name}

    def _relation_record(self, r: Relation, head_dropped: bool, tail_dropped: bool) -> dict[str, Any]:
        endpoint = "head and tail" if head_dropped and tail_dropped else "head" if head_dropped else "tail"
        return {
            "head": r.head.to_dict(), "tail": r.tail.to_dict(), "label": r.label, "score": r.score,
            "endpoint": endpoint, "reason": ENDPOINT_DROPPED, "component": self.name,
        }  # fmt: skip


def _index(ents: list[Entity], e: Entity, index: int) -> int:
    """The position of a relation's head or tail in its entity list: ``index`` when it is known."""
    if 0 <= index < len(ents) and ents[index] == e:
        return index
    return next((i for i, x in enumerate(ents) if x == e), -1)


def _offsets(span: Span) -> list[Any]:
    """A span as plain data (start token, end token, label) that a doc serializes."""
    return [span.start, span.end, span.label_]


def _relations(doc: Doc) -> list[dict[str, Any]]:
    """``doc._.anyner_relations``: the relations of ``doc._.anyner_relation_offsets``, with spans."""
    return [
        {
            "head": Span(doc, *r["head"][:2], label=r["head"][2]),
            "tail": Span(doc, *r["tail"][:2], label=r["tail"][2]),
            "label": r["label"],
            "score": r["score"],
        }
        for r in doc._.get(RELATION_OFFSETS) or []
    ]


def _register_extensions() -> None:
    if not Doc.has_extension(DROPPED):
        Doc.set_extension(DROPPED, default=None)
    if not Doc.has_extension(RELATION_OFFSETS):
        Doc.set_extension(RELATION_OFFSETS, default=None)
    if not Doc.has_extension(RELATIONS):
        Doc.set_extension(RELATIONS, getter=_relations)
    if not Span.has_extension(SCORE):
        Span.set_extension(SCORE, default=None)


def _threshold(value: Any, what: str) -> float | None:
    return None if value is None else validate.threshold(value, what)


def _relation_config(relations: Any) -> list[str] | dict[str, str]:
    if isinstance(relations, str):
        raise TypeError(
            f"relations must be a list of strings or a dict relation -> description, not the string {relations!r}"
        )
    if isinstance(relations, Mapping):
        return dict(relations)
    if isinstance(relations, Sequence):
        return list(relations)
    raise TypeError(
        f"relations must be a list of strings or a dict relation -> description, got {type(relations).__name__}"
    )


def _check_labels(labels: Any) -> None:
    if labels is None or (
        isinstance(labels, (Sequence, Mapping)) and not isinstance(labels, str) and not labels
    ):
        raise ValueError(
            'the anyner component needs labels: nlp.add_pipe("anyner", config={"labels": ["person", "city"]})'
        )
