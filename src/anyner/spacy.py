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
- ``threshold``: minimum score, or a dict label -> threshold (default 0.5).
- ``nested``: False (default) writes non-overlapping entities to ``doc.ents``; True
  writes nested entities to ``doc.spans[spans_key]`` and leaves ``doc.ents`` alone.
- ``spans_key``: the span group written when ``nested`` (default ``"anyner"``).
- ``alignment_mode``: how an entity is mapped to spaCy tokens (see below).
- ``batch_size``: texts per model forward pass (default 8). ``nlp.pipe`` hands the
  component groups of docs (its own ``batch_size``), each predicted in one call.
- ``overwrite_ents``: with ``nested=False``, replace entities already in ``doc.ents``
  (True) or keep them and add only the entities that do not overlap them (False, default).

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
"""

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

try:
    from spacy.language import Language
    from spacy.pipeline import Pipe
    from spacy.tokens import Doc, Span
    from spacy.util import minibatch
except ImportError as e:  # absolute imports: this is the real spaCy, not this module
    raise ImportError(f'anyner.spacy needs spaCy ({e}): pip install "anyner[spacy]"') from e

from anyner.types import Entity

__all__ = ["ALIGNMENT_MODES", "AnyNERComponent", "make_anyner"]

ALIGNMENT_MODES = ("expand", "contract", "strict")
DROPPED = "anyner_dropped"  # doc._.anyner_dropped
SCORE = "anyner_score"  # span._.anyner_score

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
        f"span._.{SCORE}",
    ],
)
def make_anyner(
    nlp: Language,
    name: str,
    labels: list[str] | dict[str, str] | None,
    model: str | None,
    threshold: float | dict[str, float],
    nested: bool,
    spans_key: str,
    alignment_mode: str,
    batch_size: int,
    overwrite_ents: bool,
) -> "AnyNERComponent":
    """Build the ``anyner`` component: load ``model`` (None: the built-in model)."""
    from anyner.pipeline import AnyNER

    _check_labels(labels)
    return AnyNERComponent(
        name, AnyNER.from_pretrained(model), labels, threshold=threshold, nested=nested,
        spans_key=spans_key, alignment_mode=alignment_mode, batch_size=batch_size,
        overwrite_ents=overwrite_ents,
    )  # fmt: skip


class AnyNERComponent(Pipe):
    """Sets anyner's entities on spaCy docs (see the module docstring for the policy).

    ``ner`` is a loaded :class:`anyner.AnyNER` (anything with its ``predict_batch``).
    ``stats`` counts docs, entities found, set, and dropped by reason.
    """

    def __init__(
        self,
        name: str,
        ner: Any,
        labels: Sequence[str] | Mapping[str, str],
        *,
        threshold: float | Mapping[str, float] = 0.5,
        nested: bool = False,
        spans_key: str = "anyner",
        alignment_mode: str = "expand",
        batch_size: int = 8,
        overwrite_ents: bool = False,
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
        self.stats: Counter[str] = Counter()
        # checks labels and thresholds now, not on the first doc (an empty text runs no model)
        ner.predict_batch([""], self.label_config, threshold=self.threshold)
        if not Doc.has_extension(DROPPED):
            Doc.set_extension(DROPPED, default=None)
        if not Span.has_extension(SCORE):
            Span.set_extension(SCORE, default=None)

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

    def predict(self, docs: Sequence[Doc]) -> list[list[Entity]]:
        """anyner's entities for each doc, as character offsets of ``doc.text``."""
        return self.ner.predict_batch(
            [doc.text for doc in docs], self.label_config, batch_size=self.batch_size,
            threshold=self.threshold, flat=not self.nested,
        )  # fmt: skip

    def set_annotations(self, docs: Sequence[Doc], entities: Sequence[list[Entity]]) -> None:
        for doc, ents in zip(docs, entities, strict=True):
            self._annotate(doc, ents)

    # ------------------------------------------------------------------ one doc

    def _annotate(self, doc: Doc, ents: list[Entity]) -> None:
        aligned, dropped = [], []
        for e in ents:
            span = doc.char_span(e.start, e.end, label=e.label, alignment_mode=self.alignment_mode)
            if span is None or len(span) == 0:
                dropped.append(self._record(e, "unaligned"))
            else:
                aligned.append((span, e))
        # best score first: a conflict keeps the higher-scoring entity (ties: the earlier one)
        aligned.sort(key=lambda se: (-se[1].score, se[0].start, se[0].end))
        kept: list[tuple[Span, Entity]] = []
        if self.nested:
            seen: set[tuple[int, int]] = set()
            for span, e in aligned:
                if (span.start, span.end) in seen:
                    dropped.append(self._record(e, "conflict"))
                    continue
                seen.add((span.start, span.end))
                kept.append((span, e))
            kept.sort(key=lambda se: (se[0].start, -se[0].end))
            doc.spans[self.spans_key] = [span for span, _ in kept]
        else:
            existing = [] if self.overwrite_ents else list(doc.ents)
            taken = [False] * len(doc)
            for span in existing:
                taken[span.start : span.end] = [True] * len(span)
            for span, e in aligned:
                if any(taken[span.start : span.end]):
                    dropped.append(self._record(e, "conflict"))
                    continue
                taken[span.start : span.end] = [True] * len(span)
                kept.append((span, e))
            doc.ents = sorted(existing + [span for span, _ in kept], key=lambda s: s.start)
        for span, e in kept:  # stored by character offsets: doc.ents' new Span objects see it too
            span._.set(SCORE, e.score)
        previous = doc._.get(DROPPED) or []
        doc._.set(DROPPED, previous + dropped)
        self.stats.update(docs=1, found=len(ents), set=len(kept))
        self.stats.update(d["reason"] for d in dropped)
        if dropped:
            reasons = Counter(d["reason"] for d in dropped)
            logger.warning(
                "%s: %d of %d entities found in a doc were not set (%s, alignment_mode=%r); "
                "they are listed in doc._.%s",
                self.name, len(dropped), len(ents), ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())),
                self.alignment_mode, DROPPED,
            )  # fmt: skip

    def _record(self, e: Entity, reason: str) -> dict[str, Any]:
        return {**e.to_dict(), "reason": reason, "component": self.name}


def _check_labels(labels: Any) -> None:
    if labels is None or (
        isinstance(labels, (Sequence, Mapping)) and not isinstance(labels, str) and not labels
    ):
        raise ValueError(
            'the anyner component needs labels: nlp.add_pipe("anyner", config={"labels": ["person", "city"]})'
        )
