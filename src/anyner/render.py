"""displaCy-style HTML rendering of entities found in a text.

Entities may nest or overlap; every one of them is shown. The text is cut at
every entity boundary and each piece is wrapped in one ``<mark>`` per entity
covering it. Properly nested entities come out as nested marks; when two
entities overlap partially, the later one is split into several marks, and
only its last mark carries the label. Relations found between the entities
(:class:`~anyner.types.Relation`) are shown as a table under their text.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from anyner.types import Entity, Relation

__all__ = ["PALETTE", "label_color", "render", "render_page", "render_relations", "render_table"]

#: Light colours that keep black text readable (several come from displaCy).
PALETTE: tuple[str, ...] = tuple(
    "#7aecec #bfeeb7 #feca74 #ff9561 #aa9cfc #c887fb #9cc9cc #ffeb80 "
    "#ff8197 #f0d0ff #bfe1d9 #e4e7d2 #fde2e4 #cde7b0 #a8d8ea #ffd3b6".split()
)
_SAFE_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]+|(?:rgba?|hsla?)\([\d\s.,%/]+\)")
_MARK_STYLE = "padding: 0.25em 0.4em; margin: 0 0.15em; line-height: 2.2; border-radius: 0.35em"
_LABEL_STYLE = "font-size: 0.75em; font-weight: bold; margin-left: 0.4em; vertical-align: middle"
_CSS = """body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; }
.entities { line-height: 2.5; direction: ltr; }
.entity { box-decoration-break: clone; -webkit-box-decoration-break: clone; }
.legend { margin-bottom: 1.5em; }
.legend-item { display: inline-block; padding: 0.2em 0.6em; margin: 0 0.3em 0.3em 0; border-radius: 0.35em; }
.relation-table { border-collapse: collapse; margin: 0.5em 0 1em; }
.relation-table td, .relation-table th { padding: 0.2em 0.6em; text-align: left; }"""


@dataclass(frozen=True, slots=True)
class _Ent:
    start: int
    end: int
    label: str
    score: float | None


def label_color(label: str, colors: Mapping[str, str] | None = None) -> str:
    """The colour of ``label``: ``colors[label]`` if given, else a stable palette colour.

    Example:
        >>> label_color("person") == label_color("person")
        True
        >>> label_color("person", {"person": "#ddd"})
        '#ddd'
    """
    color = (colors or {}).get(label)
    if color is None:
        digest = hashlib.sha256(label.encode("utf-8")).digest()
        return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]
    if not isinstance(color, str) or not _SAFE_COLOR.fullmatch(color):
        raise ValueError(f"unsafe or invalid CSS colour for label {label!r}: {color!r}")
    return color


def _check(text: str, entities: Iterable[Entity | Mapping[str, Any]]) -> list[_Ent]:
    """Validates ``entities`` against ``text``; returns them sorted, outer spans first."""
    out = []
    for raw in entities:
        if isinstance(raw, Entity):
            start, end, label, score, given = raw.start, raw.end, raw.label, raw.score, raw.text
        elif isinstance(raw, Mapping):
            if not {"start", "end", "label"} <= raw.keys():
                raise ValueError(f"entity needs start, end and label: {raw!r}")
            start, end, label = raw["start"], raw["end"], raw["label"]
            score, given = raw.get("score"), raw.get("text")
        else:
            raise TypeError(f"expected an Entity or a dict, got {type(raw).__name__}: {raw!r}")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in (start, end)):
            raise ValueError(f"entity offsets must be integers: {raw!r}")
        if not 0 <= start < end <= len(text):
            raise ValueError(f"entity offsets out of range for a text of {len(text)} characters: {raw!r}")
        if given is not None and given != text[start:end]:
            raise ValueError(f"entity text {given!r} does not match text[{start}:{end}]: {raw!r}")
        out.append(_Ent(start, end, str(label), None if score is None else float(score)))
    return sorted(out, key=lambda e: (e.start, -e.end, e.label, -(e.score or 0.0)))


def _piece(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def _open(ent: _Ent, colors: Mapping[str, str] | None, show_score: bool) -> str:
    label = html.escape(ent.label)
    attrs = f'class="entity" data-label="{label}"'
    title = label
    if show_score and ent.score is not None:
        attrs += f' data-score="{ent.score:.2f}"'
        title += f" {ent.score:.2f}"
    color = html.escape(label_color(ent.label, colors))
    return f'<mark {attrs} title="{title}" style="background: {color}; {_MARK_STYLE}">'


def _close(ent: _Ent, pos: int) -> str:
    """Closes a mark; the entity's last mark (it ends at ``pos``) gets the label."""
    if ent.end != pos:
        return "</mark>"
    return f'<span class="entity-label" style="{_LABEL_STYLE}">{html.escape(ent.label)}</span></mark>'


def render(
    text: str,
    entities: Iterable[Entity | Mapping[str, Any]],
    *,
    page: bool = False,
    colors: Mapping[str, str] | None = None,
    show_score: bool = True,
) -> str:
    """Renders ``text`` with its entities highlighted, like displaCy's "ent" style.

    Args:
        text: the text the entities were found in.
        entities: ``Entity`` objects or gliner-style dicts (start, end, label,
            score, optional text), in any order; they may nest or overlap.
        page: return a standalone HTML document with CSS and a legend.
        colors: CSS colours by label, overriding the stable palette colours.
        show_score: show the score on hover (``title``) and in ``data-score``.

    Returns:
        An HTML fragment (a ``<div class="entities">``), or a full page.

    Raises:
        ValueError: an entity is out of range, empty, or its text does not match.

    Example:
        >>> render("Bill Gates", [{"start": 0, "end": 4, "label": "person", "score": 0.9}])[:45]
        '<div class="entities"><mark class="entity" da'
    """
    entities = list(entities)
    ents = _check(text, entities)
    cuts = sorted({0, len(text)} | {e.start for e in ents} | {e.end for e in ents})
    parts, stack = ['<div class="entities">'], []
    for a, b in pairwise(cuts):
        want = [e for e in ents if e.start <= a and b <= e.end]
        keep = 0
        while keep < min(len(stack), len(want)) and stack[keep] is want[keep]:
            keep += 1
        parts += [_close(e, a) for e in reversed(stack[keep:])]
        parts += [_open(e, colors, show_score) for e in want[keep:]]
        parts.append(_piece(text[a:b]))
        stack = want
    parts += [_close(e, len(text)) for e in reversed(stack)]
    parts.append("</div>")
    body = "".join(parts)
    return render_page([(text, entities)], colors=colors, show_score=show_score) if page else body


def render_page(
    documents: Iterable[tuple[str, Iterable[Entity | Mapping[str, Any]]]],
    *,
    colors: Mapping[str, str] | None = None,
    show_score: bool = True,
    relations: Iterable[Iterable[Relation | Mapping[str, Any]]] | None = None,
) -> str:
    """A standalone HTML page (CSS and a legend of labels) showing several texts.

    ``relations``: one list of relations per document (``Relation`` objects or the dicts of
    ``Relation.to_dict``), each shown as a table under its text (:func:`render_relations`).

    Example:
        >>> render_page([("Bill", [{"start": 0, "end": 4, "label": "person"}])]).startswith("<!DOCTYPE html>")
        True
    """
    documents = list(documents)
    per_doc = None if relations is None else [list(r) for r in relations]
    if per_doc is not None and len(per_doc) != len(documents):
        raise ValueError(
            f"got {len(per_doc)} relation lists for {len(documents)} documents; give one per document"
        )
    bodies, labels = [], {}
    for i, (text, entities) in enumerate(documents):
        ents = list(entities)
        body = render(text, ents, colors=colors, show_score=show_score)
        if per_doc is not None:
            body += "\n" + render_relations(per_doc[i], colors=colors)
        bodies.append(body)
        for e in _check(text, ents):
            labels.setdefault(e.label, None)
    legend = "".join(
        f'<span class="legend-item" style="background: {html.escape(label_color(lab, colors))}">'
        f"{html.escape(lab)}</span>"
        for lab in labels
    )
    body = "\n<hr>\n".join(bodies)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Entities</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        f'<div class="legend">{legend}</div>\n{body}\n</body>\n</html>\n'
    )


def _relation_row(
    raw: Relation | Mapping[str, Any],
) -> tuple[tuple[str, str], str, tuple[str, str], float | None]:
    """(head text, head label), relation, (tail text, tail label), score of one relation."""
    if isinstance(raw, Relation):
        return (raw.head.text, raw.head.label), raw.label, (raw.tail.text, raw.tail.label), raw.score
    if not isinstance(raw, Mapping):
        raise TypeError(f"expected a Relation or a dict, got {type(raw).__name__}: {raw!r}")
    try:
        head, tail, label = raw["head"], raw["tail"], raw["relation"]
        ends = [(str(end["text"]), str(end["type"])) for end in (head, tail)]
    except (KeyError, TypeError) as e:
        raise ValueError(f"relation needs head and tail (text, type) and relation: {raw!r}") from e
    score = raw.get("score")
    return ends[0], str(label), ends[1], None if score is None else float(score)


def render_relations(
    relations: Iterable[Relation | Mapping[str, Any]],
    *,
    colors: Mapping[str, str] | None = None,
) -> str:
    """An HTML table of relations (head, its label, relation, tail, its label, score), in the given order.

    Args:
        relations: ``Relation`` objects or the dicts of ``Relation.to_dict`` (head and tail with
            text and type, relation, score).
        colors: CSS colours by label for the entity label cells.

    Returns:
        A ``<table class="relation-table">`` element; with no relations, one row saying so.

    Raises:
        ValueError: a dict lacks head, tail or relation.

    Example:
        >>> from anyner import Entity, Relation
        >>> ada, ibm = Entity(0, 3, "Ada", "person", 0.9), Entity(13, 16, "IBM", "organization", 0.8)
        >>> "<td>works for</td>" in render_relations([Relation(ada, ibm, "works for", 0.7)])
        True
    """
    rows = []
    for (head, head_label), label, (tail, tail_label), score in map(_relation_row, relations):
        cells = []
        for text, ent_label in ((head, head_label), (tail, tail_label)):
            color = html.escape(label_color(ent_label, colors))
            cells.append(
                f'<td>{_piece(text)}</td><td style="background: {color}">{html.escape(ent_label)}</td>'
            )
        shown = "" if score is None else f"{score:.2f}"
        rows.append(f"<tr>{cells[0]}<td>{html.escape(label)}</td>{cells[1]}<td>{shown}</td></tr>")
    if not rows:
        rows.append('<tr><td colspan="6">no relations</td></tr>')
    header = "".join(f"<th>{h}</th>" for h in ("head", "label", "relation", "tail", "label", "score"))
    return f'<table class="relation-table"><thead><tr>{header}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def render_table(
    text: str,
    entities: Iterable[Entity | Mapping[str, Any]],
    *,
    colors: Mapping[str, str] | None = None,
) -> str:
    """An HTML table of the entities (label, text, start, end, score), in text order.

    Args:
        text: the text the entities were found in.
        entities: ``Entity`` objects or gliner-style dicts, in any order.
        colors: CSS colours by label for the label cells.

    Returns:
        A ``<table class="entity-table">`` element.

    Raises:
        ValueError: an entity is out of range, empty, or its text does not match.

    Example:
        >>> "<td>Bill</td>" in render_table("Bill", [{"start": 0, "end": 4, "label": "person", "score": 0.9}])
        True
    """
    rows = []
    for e in _check(text, entities):
        score = "" if e.score is None else f"{e.score:.2f}"
        color = html.escape(label_color(e.label, colors))
        rows.append(
            f'<tr><td style="background: {color}">{html.escape(e.label)}</td><td>{_piece(text[e.start : e.end])}</td>'
            f"<td>{e.start}</td><td>{e.end}</td><td>{score}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("label", "text", "start", "end", "score"))
    return f'<table class="entity-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
