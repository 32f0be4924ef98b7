"""Relation extraction scores: micro precision, recall and F1 of (head, tail, relation) triples.

Two matches, as relation-extraction papers report them:

- ``boundaries``: the head's and the tail's word spans and the relation name are right;
- ``strict``: the entity types of head and tail are right too.

A set is read with :func:`anyner.data.relations.read_relations`; each record's words are joined
with spaces and given to the model as those words (no re-splitting), prompted with every entity
type of the set (untyped spans: ``"entity"``) and every relation name of the set, or the
``relations`` given (then only gold relations of those names count: a zero-shot measure on
names held out of training).

Example:
    >>> result = evaluate_relations(model, "../shared/data/relations/maintie", limit=200)  # doctest: +SKIP
    >>> print(format_relation_table([result]))                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyner.data.relations import UNTYPED_LABEL
from anyner.evaluate import Scores, prf
from anyner.types import Word


@dataclass(frozen=True)
class RelationResult:
    """The scores of one relation set."""

    name: str
    records: int
    labels: list[str]
    relations: list[str]
    boundaries: Scores
    strict: Scores

    def to_json(self) -> dict[str, Any]:
        def part(s: Scores) -> dict[str, float]:
            return {"precision": s.precision, "recall": s.recall, "f1": s.f1, "gold": s.gold,
                    "predicted": s.predicted, "correct": s.correct}  # fmt: skip

        return {"name": self.name, "records": self.records, "labels": self.labels, "relations": self.relations,
                "boundaries": part(self.boundaries), "strict": part(self.strict)}  # fmt: skip


def _words(tokens: Sequence[str]) -> tuple[str, list[Word]]:
    words, pos = [], 0
    for t in tokens:
        words.append(Word(t, pos, pos + len(t)))
        pos += len(t) + 1
    return " ".join(tokens), words


def evaluate_relations(
    model: Any,
    source: str | Path,
    *,
    relations: Sequence[str] | None = None,
    threshold: float = 0.5,
    relation_threshold: float | None = None,
    adjacency_threshold: float | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> RelationResult:
    """Score ``model``'s relations on one relation set (a file, a set folder, or a set name).

    Args:
        relations: the relation names to prompt with and score (default: every name in the set).
        limit: only the first ``limit`` records.

    Raises:
        ValueError: the set has no relations of the names asked for.
    """
    from anyner.data.relations import read_relations
    from anyner.relations import predict_relations

    if hasattr(model, "relation_model"):  # the built-in model: its relation model (loaded once)
        model = model.relation_model()
    records, _ = read_relations(source, limit=limit)
    records = [r for r in records if r.words]
    names = sorted({t.label for r in records for t in r.relations})
    if relations is not None:
        unknown = sorted(set(relations) - set(names))
        if unknown:
            raise ValueError(f"{source}: no relation named {unknown}; the set has {names}")
        names = list(dict.fromkeys(relations))
    if not names:
        raise ValueError(f"{source}: no relations to score")
    labels = sorted({UNTYPED_LABEL if e.label is None else e.label for r in records for e in r.entities})
    labels = [lab for lab in labels if lab not in names] or [UNTYPED_LABEL]
    wanted = set(names)
    gold_b, gold_s, pred_b, pred_s = [], [], [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), desc=Path(str(source)).name, unit="record")
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        texts, words = zip(*(_words(r.words) for r in chunk), strict=True)
        found = predict_relations(
            model, list(texts), list(words), labels, names, batch_size, threshold, relation_threshold,
            adjacency_threshold, True, False,
        )  # fmt: skip
        for record, ws, (_, rels) in zip(chunk, words, found, strict=True):
            starts = {w.start: k for k, w in enumerate(ws)}
            ends = {w.end: k + 1 for k, w in enumerate(ws)}

            def typed(e: Any) -> str:
                return UNTYPED_LABEL if e.label is None else e.label

            g_b, g_s = set(), set()
            for t in record.relations:
                if t.label not in wanted:
                    continue
                h, tl = record.entities[t.head], record.entities[t.tail]
                key = ((h.start, h.end), (tl.start, tl.end), t.label)
                g_b.add(key)
                g_s.add((*key, typed(h), typed(tl)))
            p_b, p_s = set(), set()
            for r in rels:
                key = (
                    (starts[r.head.start], ends[r.head.end]),
                    (starts[r.tail.start], ends[r.tail.end]),
                    r.label,
                )
                p_b.add(key)
                p_s.add((*key, r.head.label, r.tail.label))
            gold_b.append(g_b), gold_s.append(g_s), pred_b.append(p_b), pred_s.append(p_s)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return RelationResult(
        Path(str(source)).name, len(records), labels, names, prf(gold_b, pred_b), prf(gold_s, pred_s)
    )


def format_relation_table(results: Sequence[RelationResult]) -> str:
    """A plain-text table: per set, P/R/F1 for boundaries and for strict matches."""
    header = ("set", "records", "relations", "P", "R", "F1", "strict P", "strict R", "strict F1")
    rows = [
        (r.name, str(r.records), str(len(r.relations)),
         *(f"{x:.1f}" for x in (r.boundaries.precision, r.boundaries.recall, r.boundaries.f1,
                                r.strict.precision, r.strict.recall, r.strict.f1)))
        for r in results
    ]  # fmt: skip
    widths = [max(len(h), *(len(row[k]) for row in rows)) for k, h in enumerate(header)]
    lines = ["  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(row, widths, strict=True)))
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(lines) + "\n"


__all__ = ["RelationResult", "evaluate_relations", "format_relation_table"]
