"""Plain records that travel between the steps of the data path.

Offsets are 0-based and half-open everywhere: ``text[start:end]`` for
characters, ``words[start:end]`` for word spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a text, with its character offsets."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity found in a text.

    Attributes:
        start: character offset of the first character.
        end: character offset one past the last character.
        text: ``source_text[start:end]``.
        label: the label as the caller gave it.
        score: the model's probability for this span and label.
    """

    start: int
    end: int
    text: str
    label: str
    score: float

    def to_dict(self) -> dict:
        """The entity as the dict ``gliner`` returns: start, end, text, label, score."""
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "label": self.label,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True)
class Relation:
    """A relation between two entities found in a text (:meth:`anyner.AnyNER.predict_relations`).

    Attributes:
        head: the entity the relation goes from.
        tail: the entity it goes to.
        label: the relation name as the caller gave it.
        score: the model's probability for this pair and relation.
        head_index / tail_index: positions of ``head`` and ``tail`` in the entity list returned
            with the relation (-1 when not known).
    """

    head: Entity
    tail: Entity
    label: str
    score: float
    head_index: int = -1
    tail_index: int = -1

    def to_dict(self) -> dict:
        """The relation as the dict ``gliner`` returns: head and tail (start, end, text, type,
        entity_idx), relation and score."""

        def end(e: Entity, index: int) -> dict:
            return {"start": e.start, "end": e.end, "text": e.text, "type": e.label, "entity_idx": index}

        return {
            "head": end(self.head, self.head_index),
            "tail": end(self.tail, self.tail_index),
            "relation": self.label,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True)
class Span:
    """A labelled word span: words ``[start, end)`` carry ``label``."""

    start: int
    end: int
    label: str


@dataclass(slots=True)
class Example:
    """A training or evaluation record: words and gold spans (half-open word indices).

    ``text`` is the original string when the source had one; ``source`` names the
    file and line the record came from, for error messages.
    """

    words: list[str]
    spans: list[Span] = field(default_factory=list)
    text: str | None = None
    source: str = ""
