"""Relation extraction with a span relex model: prompts, windows, batches and decoding.

The prompt is GLiNER's: ``<<ENT>> label ... <<SEP>> <<REL>> relation ... <<SEP>> words``. All
of a text's labels and relations go into one prompt (the relation head scores pairs of the
entities of one sequence, so they cannot be split into groups); a label and relation set too
long for that raises ``ValueError``. A text longer than the encoder reads is cut into windows
as for entities (:func:`anyner.featurize.plan_windows`): entities are decoded over the whole
text, and a relation is found between two entities that some window holds both of (where
windows overlap, the best score is kept).

Decoding follows GLiNER's: the network's nodes are the spans with some label above its
threshold; a relation is reported when its score is above ``relation_threshold`` and both of
its spans are entities after the greedy choice (each span maps to the first entity with its
words). Relations come ordered by head span, tail span, then the order the relations were given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anyner import validate
from anyner.batching import collate
from anyner.calibration import is_auto
from anyner.decode import Candidates, candidates, greedy
from anyner.featurize import LabelSet, plan_windows
from anyner.model_types import RELEX
from anyner.prompt import PromptedInput
from anyner.types import Entity, Relation, Word

Relations = Sequence[str] | Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RelexJob:
    """One encoder sequence: a window of one text with all its labels and relations."""

    text: int
    word_start: int
    n_words: int
    core: tuple[int, int]
    prompted: PromptedInput
    relation_index: list[int]  # position of each relation's vector token


def relation_set(featurizer: Any, relations: Relations, label_set: LabelSet) -> LabelSet:
    """Check a relation list (or dict relation -> description) against the entity labels it goes with.

    Raises:
        TypeError: not a list of strings or a dict of strings.
        ValueError: empty, blank, holding a prompt token, or a relation named as an entity label.
    """
    config = featurizer.config
    rel_token = config.extra["rel_token"]
    if isinstance(relations, str):
        raise TypeError(
            f"relations must be a list of strings or a dict relation -> description, not the string {relations!r}"
        )
    if isinstance(relations, Mapping):
        pairs = list(relations.items())
    elif isinstance(relations, Sequence):
        pairs = [(x, x) for x in relations]
    else:
        raise TypeError(
            f"relations must be a list of strings or a dict relation -> description, got {type(relations).__name__}"
        )
    if not pairs:
        raise ValueError(
            "relations is empty: give at least one relation, e.g. ['works for'], or use predict() for entities"
        )
    names, prompts, seen = [], [], set()
    for name, prompt in pairs:
        for what, value in (("relation", name), ("relation description", prompt)):
            if not isinstance(value, str):
                raise TypeError(f"each {what} must be a str, got {value!r}")
            if not value.strip():
                raise ValueError(f"{what}s must not be empty or blank: {value!r}")
            for tok in (config.ent_token, config.sep_token, rel_token):
                if tok in value:
                    raise ValueError(
                        f"{what} {value!r} contains the prompt token {tok!r}, which would break the prompt"
                    )
        if name in seen:
            continue  # duplicates collapse to the first, as in GLiNER
        seen.add(name)
        names.append(name)
        prompts.append(prompt)
    clash = sorted(set(names) & set(label_set.names))
    if clash:
        raise ValueError(
            f"relation names must differ from the entity labels; {clash} is both: rename the relation "
            "(e.g. 'has location' for a relation beside the label 'location')"
        )
    for label in label_set.prompts:
        if rel_token in label:
            raise ValueError(f"label {label!r} contains the prompt token {rel_token!r}")
    return LabelSet(tuple(names), tuple(prompts))


class RelexPrompts:
    """Builds ``<<ENT>> label ... <<SEP>> <<REL>> relation ... <<SEP>>`` sequences and their windows."""

    def __init__(self, featurizer: Any):
        self.featurizer = featurizer
        self.builder = featurizer.prompts
        config = featurizer.config
        self.ent, self.sep, self.rel = config.ent_token, config.sep_token, config.extra["rel_token"]
        self.label_shift = 0 if config.embed_ent_token else 1
        self.rel_shift = 0 if config.extra.get("embed_rel_token", True) else 1
        self._cache: dict[
            tuple[tuple[str, ...], tuple[str, ...]], tuple[list[int], list[int], list[int]]
        ] = {}

    def prompt(
        self, labels: tuple[str, ...], rels: tuple[str, ...]
    ) -> tuple[list[int], list[int], list[int]]:
        """(ids, label offsets, relation offsets) of the prompt part, offsets within ``ids``."""
        key = (labels, rels)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        words: list[str] = []
        for label in labels:
            words += [self.ent, label]
        words.append(self.sep)
        for rel in rels:
            words += [self.rel, rel]
        words.append(self.sep)
        pieces = self.builder.word_pieces(words)
        ids: list[int] = []
        label_offsets, rel_offsets = [], []
        n = len(labels)
        for i, p in enumerate(pieces):
            if i < 2 * n and i % 2 == 0:
                label_offsets.append(len(ids) + self.label_shift)
            elif 2 * n < i < len(pieces) - 1 and (i - 2 * n - 1) % 2 == 0:
                rel_offsets.append(len(ids) + self.rel_shift)
            ids += p
        if len(self._cache) >= 64:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (ids, label_offsets, rel_offsets)
        return ids, label_offsets, rel_offsets

    def jobs(
        self, text_id: int, words: Sequence[Word], label_set: LabelSet, rel_set: LabelSet
    ) -> list[RelexJob]:
        """Every window of one text, each with the whole prompt."""
        ids, label_offsets, rel_offsets = self.prompt(label_set.prompts, rel_set.prompts)
        prefix, suffix = self.builder.prefix, self.builder.suffix
        budget = self.featurizer.max_tokens - len(prefix) - len(ids) - len(suffix)
        if budget < 1:
            raise ValueError(
                f"{len(label_set.names)} labels and {len(rel_set.names)} relations take "
                f"{len(prefix) + len(ids) + len(suffix)} subwords, more than the encoder's "
                f"{self.featurizer.max_tokens} leave room for with the text: a relation model reads all "
                "its labels and relations in one prompt, so give fewer (or shorter) ones"
            )
        if not words:
            return []
        pieces = [p[:budget] for p in self.builder.word_pieces([w.text for w in words])]
        start = len(prefix)
        out = []
        windows = plan_windows([len(p) for p in pieces], budget, self.featurizer.config.max_len,
                               self.featurizer.window_overlap)  # fmt: skip
        for a, b, core in windows:
            seq = prefix + ids
            word_index = []
            for p in pieces[a:b]:
                word_index.append(len(seq) if p else -1)
                seq += p
            seq += suffix
            prompted = PromptedInput(seq, word_index, [start + o for o in label_offsets])
            out.append(RelexJob(text_id, a, b - a, core, prompted, [start + o for o in rel_offsets]))
        return out


def predict_relations(
    model: Any,  # an anyner.AnyNER (the pipeline imports this module: no import back)
    texts: list[str],
    words: list[list[Word]],
    labels: Any,
    relations: Any,
    batch_size: int,
    threshold: float | Mapping[str, float] | str,
    relation_threshold: float | None,
    adjacency_threshold: float | None,
    flat: bool,
    multi_label: bool,
) -> list[tuple[list[Entity], list[Relation]]]:
    """Entities and relations of each text (see :meth:`anyner.AnyNER.predict_relations`)."""
    import torch

    if model.config.model_type != RELEX:
        raise NotImplementedError(
            f"predict_relations needs a relation-extraction model (a GLiNER checkpoint with relations_layer); "
            f"this one is a {model.config.model_type} model"
        )
    if model.model is None:
        raise NotImplementedError("relation extraction runs on the torch backend only")
    validate.positive_int(batch_size, "batch_size")
    featurizer = model.featurizer
    label_sets = featurizer.label_sets(labels, len(texts))
    per_text = (
        isinstance(relations, Sequence)
        and not isinstance(relations, str)
        and len(relations) > 0
        and all(isinstance(x, Sequence | Mapping) and not isinstance(x, str) for x in relations)
    )
    if per_text and len(relations) != len(texts):
        raise ValueError(
            f"got {len(relations)} relation lists for {len(texts)} texts; give one per text or one for all"
        )
    if not label_sets:  # no text: the arguments are still checked
        label_set = featurizer.label_set(labels)
        relation_set(featurizer, relations, label_set)
        featurizer.thresholds(model.resolve_threshold(threshold, label_set), label_set)
        return []
    rel_sets = [
        relation_set(featurizer, relations[i] if per_text else relations, label_sets[i])
        for i in range(len(texts))
    ]
    thresholds = [featurizer.thresholds(model.resolve_threshold(threshold, ls), ls) for ls in label_sets]
    # relation and adjacency thresholds default to the entity threshold: 0.5 for a dict or "auto"
    default = 0.5 if isinstance(threshold, Mapping) or is_auto(threshold) else validate.threshold(threshold)
    rel_th = (
        default
        if relation_threshold is None
        else validate.threshold(relation_threshold, "relation_threshold")
    )
    adj_th = (
        default
        if adjacency_threshold is None
        else validate.threshold(adjacency_threshold, "adjacency_threshold")
    )
    prompts = RelexPrompts(featurizer)
    jobs = [job for i in range(len(texts)) for job in prompts.jobs(i, words[i], label_sets[i], rel_sets[i])]
    order = sorted(range(len(jobs)), key=lambda j: len(jobs[j].prompted.input_ids))
    net, device = model.model, model.device
    found: list[list[Candidates]] = [[] for _ in texts]
    # (head span, tail span, relation) in whole-text words -> best score
    rel_found: list[dict[tuple[int, int, int, int, int], float]] = [{} for _ in texts]
    for i in range(0, len(order), batch_size):
        chunk = [jobs[j] for j in order[i : i + batch_size]]
        batch = collate([j.prompted for j in chunk], featurizer.pad_id)
        R = max(len(j.relation_index) for j in chunk)
        rel_index = np.zeros((len(chunk), R), dtype=np.int64)
        for row, job in enumerate(chunk):
            rel_index[row, : len(job.relation_index)] = job.relation_index
        with torch.inference_mode():
            logits, word_vecs, rel_vecs = net.encode(
                **batch.tensors(device), relation_index=torch.from_numpy(rel_index).to(device)
            )
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            for row, job in enumerate(chunk):
                C, n_rel = len(label_sets[job.text].names), len(rel_sets[job.text].names)
                cands = candidates(probs[row, : job.n_words, :, :C], job.n_words, thresholds[job.text])
                shifted = cands.shifted(words=job.word_start)
                found[job.text].append(
                    shifted.select((shifted.start >= job.core[0]) & (shifted.start < job.core[1]))
                )
                spans = sorted(set(zip(cands.start.tolist(), cands.end.tolist(), strict=True)))
                if len(spans) < 2:
                    continue
                pairs, rel_logits = net.relations(
                    word_vecs[row, : job.n_words],
                    torch.tensor(spans, dtype=torch.long, device=device),
                    rel_vecs[row, :n_rel],
                    adj_th,
                )
                rel_probs = torch.sigmoid(rel_logits.float()).cpu().numpy()
                best = rel_found[job.text]
                a = job.word_start
                for (h, t), p_row in zip(pairs.tolist(), rel_probs, strict=True):
                    (hs, he), (ts, te) = spans[h], spans[t]
                    for r in np.flatnonzero(p_row > rel_th).tolist():
                        key = (hs + a, he + a, ts + a, te + a, r)
                        score = float(p_row[r])
                        if score > best.get(key, -1.0):
                            best[key] = score
    out = []
    for i, text in enumerate(texts):
        kept = greedy(Candidates.concat(found[i]), len(words[i]), flat=flat, multi_label=multi_label)
        ents, where = [], {}
        for c in kept:
            start, end = words[i][c.start].start, words[i][c.end - 1].end
            where.setdefault((c.start, c.end), len(ents))
            ents.append(Entity(start, end, text[start:end], label_sets[i].names[c.label], c.score))
        rels = []
        for (hs, he, ts, te, r), score in sorted(rel_found[i].items()):
            h, t = where.get((hs, he)), where.get((ts, te))
            if h is None or t is None:
                continue
            rels.append(Relation(ents[h], ents[t], rel_sets[i].names[r], score, h, t))
        out.append((ents, rels))
    return out


__all__ = ["RelexJob", "RelexPrompts", "Relations", "predict_relations", "relation_set"]
