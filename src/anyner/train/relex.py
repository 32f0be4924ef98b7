"""Training relation-extraction models: entities and the relations between them, jointly.

A relation model (``[model] type = "uni_encoder_span_relex"``) reads relation data
(``[[data]] format = "relations"``: any set :func:`anyner.data.relations.read_relations` reads)
and, optionally, entity data (its items get negative relations only). Each training item is
prompted as prediction prompts it, ``<<ENT>> label ... <<SEP>> <<REL>> relation ... <<SEP>> words``,
with both lists sampled as GLiNER samples entity labels: the gold names, negatives drawn from the
names of the other records (``neg_ratio`` per gold name), shuffled, sometimes cut down
(``drop_labels``), at most ``max_types`` (and ``max_relations``).

The loss adds three terms, each a sum over its pairs (BCE, or focal loss as ``train.loss`` says):

- the entity loss over every span x label pair (:func:`anyner.train.loss.span_label_loss`);
- the relation loss over every ordered pair of gold entity spans x relation in the prompt: the
  gold spans are the graph's nodes during training (prediction uses the spans the entity scores
  keep), the target 1 for the pairs the data relates;
- for relation layers with an adjacency score, the BCE of that score against "the two spans are
  related, one way or the other" (symmetric, as the dot and bilinear layers are).

Untyped entity spans (FewRel, SemEval-2010 Task 8, KnowledgeNet) take the label
``untyped_label`` ("entity"). ``train.exclude_relations`` removes relation names from the
training data entirely (positives and negatives), to measure zero-shot relation F1 on them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anyner.batching import Batch, collate, span_targets
from anyner.data.relations import UNTYPED_LABEL
from anyner.featurize import LabelSet
from anyner.model_types import RELEX
from anyner.relations import RelexPrompts
from anyner.train.config import DataSource, TrainSettings
from anyner.train.loss import span_label_loss
from anyner.train.sampling import prompt_names
from anyner.types import Word


@dataclass(slots=True)
class RelexItem:
    """One prompted relation training example.

    ``spans`` are the gold entity spans whose label is in the prompt, ``(start, end, label
    index)``; ``nodes`` every gold entity span ``(start, end)`` (the relation graph's nodes);
    ``pairs`` the gold relations ``(head node, tail node, relation index)``.
    """

    words: list[str]
    labels: list[str]
    spans: list[tuple[int, int, int]]
    relations: list[str]
    nodes: list[tuple[int, int]]
    pairs: list[tuple[int, int, int]]
    draw: float = 0.0


@dataclass
class RelationCorpus:
    """One weighted relation source: records cut to at most ``max_len`` words."""

    name: str
    records: list[Any]  # anyner.data.relations.RelationRecord
    weight: float
    labels: Counter[str] = field(default_factory=Counter)
    relations: Counter[str] = field(default_factory=Counter)


def load_relation_corpus(
    src: DataSource, max_words: int, exclude: Sequence[str] = (), log=print
) -> RelationCorpus:
    """Read one ``format = "relations"`` source (a file, a set folder, or a set name under the
    shared data's ``relations/`` folder), cut its records to ``max_words`` words, and drop the
    relations named in ``exclude``."""
    from anyner.data.relations import RelationRecord, read_relations, split_record

    records, report = read_relations(src.path, limit=src.max_records)
    excluded = set(exclude)
    kept: list[RelationRecord] = []
    lost = dropped = 0
    for record in records:
        if excluded:
            before = len(record.relations)
            record.relations = [r for r in record.relations if r.label not in excluded]
            dropped += before - len(record.relations)
        try:
            windows, n_lost = split_record(record, max_words)
        except ValueError:  # an entity span longer than a window: the record cannot be read whole
            lost += len(record.relations)
            continue
        lost += n_lost
        kept += [w for w in windows if w.entities]
    if not kept:
        raise ValueError(f"relation source {src.path} yields no record with entities ({report})")
    labels = Counter(UNTYPED_LABEL if e.label is None else e.label for r in kept for e in r.entities)
    relations = Counter(t.label for r in kept for t in r.relations)
    log(
        f"{Path(src.path).name}: {len(kept)} relation records ({sum(relations.values())} relations, "
        f"{len(relations)} types; {lost} relations across windows, {dropped} excluded by name)"
    )
    return RelationCorpus(Path(src.path).name, kept, src.weight, labels, relations)


def relex_from_span_model(model: Any, relations_layer: str) -> Any:
    """A relation model whose entity part is ``model``'s (a span model, e.g. the built-in one): the
    same encoder, span and label layers and weights, a new ``<<REL>>`` token and a new relation
    head (adjacency layer and pair MLP, randomly initialised). For ``init_from`` an entity model
    with ``[model] type = "uni_encoder_span_relex"``: training starts from its entity skills."""
    from anyner import checkpoint, model_types
    from anyner.pipeline import AnyNER

    cfg = model.config
    if cfg.model_type != "uni_encoder_span":
        raise ValueError(
            f"a relation model starts from a span model (uni_encoder_span); this one is {cfg.model_type}"
        )
    extra = {**cfg.extra, "relations_layer": relations_layer, "rel_token": "<<REL>>", "embed_rel_token": True}
    relex = dataclasses.replace(cfg, model_type=RELEX, extra=extra)
    net = model_types.build_network(relex, model.hf_config)
    missing, unexpected = net.load_state_dict(model.model.state_dict(), strict=False)
    new = [k for k in missing if not k.startswith(("adjacency.", "pair_proj."))]
    if unexpected or new:
        raise ValueError(f"the span model's weights do not fit a relation model: {unexpected or new}")
    relex = checkpoint.add_relation_token(model.tokenizer, relex)
    net.encoder.resize_vocab(relex.vocab_size)
    model.hf_config.vocab_size = relex.vocab_size
    net.config = relex
    return AnyNER(net, model.tokenizer, model.hf_config, device=model.device)


class RelexMix:
    """Samples :class:`RelexItem` objects from relation corpora and (optionally) entity corpora,
    seeded by (seed, step, slot) as :class:`anyner.train.sampling.Mix` is, so a resumed run sees
    the batches an uninterrupted one would."""

    def __init__(
        self,
        relation_corpora: list[RelationCorpus],
        entity_mix: Any,  # an anyner.train.sampling.Mix over the entity sources, or None
        entity_weight: float,
        settings: TrainSettings,
        max_width: int,
    ):
        if not relation_corpora:
            raise ValueError('a relation model needs at least one [[data]] source with format = "relations"')
        self.corpora = relation_corpora
        self.entity_mix = entity_mix
        self.settings = settings
        self.max_width = max_width
        weights = [c.weight for c in relation_corpora] + ([entity_weight] if entity_mix is not None else [])
        w = np.array(weights, dtype=np.float64)
        self.p = w / w.sum()
        self.relation_pool = sorted(set().union(*(c.relations for c in relation_corpora)))
        labels: Counter[str] = sum((c.labels for c in relation_corpora), Counter())
        if entity_mix is not None:
            labels.update({name: 1 for name in entity_mix.pool})
        self.label_pool = sorted(set(labels) - set(self.relation_pool))
        self.relation_long_spans = 0  # wider than max_width, in the relation records

    @property
    def long_spans(self) -> int:
        """Gold spans wider than ``max_width`` met so far, in relation and entity records alike."""
        entity = self.entity_mix.long_spans if self.entity_mix is not None else 0
        return self.relation_long_spans + entity

    def item(self, seed: int, step: int, slot: int) -> RelexItem:
        rng = np.random.default_rng([seed, step, slot])
        which = int(rng.choice(len(self.p), p=self.p))
        draw = float(np.random.default_rng([seed, step, slot, 1]).random())
        if which == len(self.corpora):  # an entity record: its relations are all negatives
            it = self.entity_mix.item(seed, step, slot)
            relations = prompt_names(
                [], self.relation_pool, rng, self.settings, self.settings.max_relations, avoid=it.labels
            )
            nodes = sorted({(s, e) for s, e, _ in it.spans})
            return RelexItem(it.words, it.labels, it.spans, relations, nodes, [], it.draw)
        corpus = self.corpora[which]
        record = corpus.records[int(rng.integers(len(corpus.records)))]
        item = self.prompt(record, rng)
        item.draw = draw
        return item

    def prompt(self, record: Any, rng: np.random.Generator) -> RelexItem:
        s = self.settings
        node_of: dict[tuple[int, int], int] = {}
        nodes: list[tuple[int, int]] = []
        entity_node: list[int | None] = []
        gold: set[tuple[int, int, str]] = set()
        for e in record.entities:
            if e.end - e.start > self.max_width:
                self.relation_long_spans += 1
                entity_node.append(None)
                continue
            key = (e.start, e.end)
            if key not in node_of:
                node_of[key] = len(nodes)
                nodes.append(key)
            entity_node.append(node_of[key])
            gold.add((e.start, e.end, UNTYPED_LABEL if e.label is None else e.label))
        triples = {
            (entity_node[t.head], entity_node[t.tail], t.label)
            for t in record.relations
            if entity_node[t.head] is not None
            and entity_node[t.tail] is not None
            and entity_node[t.head] != entity_node[t.tail]
        }
        positives = sorted({lab for _, _, lab in gold})
        rel_positives = sorted({r for _, _, r in triples} - set(positives))  # a name is a label or a relation
        labels = prompt_names(positives, self.label_pool, rng, s, s.max_types, avoid=rel_positives)
        relations = prompt_names(rel_positives, self.relation_pool, rng, s, s.max_relations, avoid=labels)
        index = {lab: j for j, lab in enumerate(labels)}
        rindex = {r: j for j, r in enumerate(relations)}
        spans = sorted((a, b, index[lab]) for a, b, lab in gold if lab in index)
        pairs = sorted((h, t, rindex[r]) for h, t, r in triples if r in rindex)
        return RelexItem(list(record.words), labels, spans, relations, nodes, pairs)


@dataclass
class RelexBatch:
    """The network's inputs and targets for a batch of :class:`RelexItem` objects."""

    batch: Batch
    relation_index: np.ndarray  # (B, R)
    n_relations: list[int]
    targets: Any  # anyner.batching.Targets of the entity scores
    nodes: list[np.ndarray]  # per row (n, 2) gold spans in the window, [start, end)
    pairs: list[np.ndarray]  # per row (m, 3) (head node, tail node, relation)
    lost: int = 0  # gold spans in no window


def relex_batch(featurizer: Any, prompts: RelexPrompts, items: list[RelexItem], max_width: int) -> RelexBatch:
    """Prompt, window and collate ``items``; a record longer than one window is read in the window
    ``int(draw * windows)``, keeping the spans and relations inside it."""
    jobs, spans, nodes, pairs, n_labels = [], [], [], [], []
    lost = 0
    for it in items:
        labels = LabelSet(tuple(it.labels), tuple(it.labels))
        rels = LabelSet(tuple(it.relations), tuple(it.relations))
        words = [Word(w, 0, 0) for w in it.words]
        windows = prompts.jobs(0, words, labels, rels)
        job = windows[min(len(windows) - 1, int(it.draw * len(windows)))]
        a, b = job.word_start, job.word_start + job.n_words
        inside = [a <= s and e <= b for s, e in it.nodes]
        lost += sum(1 for s, e, _ in it.spans if not (a <= s and e <= b))
        renum = {}
        for i, ok in enumerate(inside):
            if ok:
                renum[i] = len(renum)
        jobs.append(job)
        spans.append([(s - a, e - a, c) for s, e, c in it.spans if a <= s and e <= b])
        nodes.append(np.array([(s - a, e - a) for (s, e), ok in zip(it.nodes, inside, strict=True) if ok],
                              dtype=np.int64).reshape(-1, 2))  # fmt: skip
        pairs.append(np.array([(renum[h], renum[t], r) for h, t, r in it.pairs if h in renum and t in renum],
                              dtype=np.int64).reshape(-1, 3))  # fmt: skip
        n_labels.append(len(it.labels))
    batch = collate([j.prompted for j in jobs], featurizer.pad_id)
    R = max(1, max(len(j.relation_index) for j in jobs))
    relation_index = np.zeros((len(jobs), R), dtype=np.int64)
    for row, job in enumerate(jobs):
        relation_index[row, : len(job.relation_index)] = job.relation_index
    targets = span_targets(batch, spans, n_labels, max_width)
    return RelexBatch(
        batch, relation_index, [len(j.relation_index) for j in jobs], targets, nodes, pairs, lost
    )


def relex_loss(net: Any, rb: RelexBatch, t: TrainSettings, device: torch.device) -> tuple[torch.Tensor, int]:
    """(summed loss of the batch, number of scored pairs: span x label plus node pair x relation)."""
    tensors = rb.batch.tensors(device)
    targets, mask = rb.targets.tensors(device)
    logits, words, rels = net.encode(**tensors, relation_index=torch.from_numpy(rb.relation_index).to(device))
    total = span_label_loss(logits, targets, mask, t.loss, t.focal_alpha, t.focal_gamma, "sum")
    scored = int(mask.sum())
    for row in range(len(rb.batch)):
        nodes, R = rb.nodes[row], rb.n_relations[row]
        n = len(nodes)
        if n < 2 or R == 0:
            continue
        n_words = int(rb.batch.text_lengths[row])
        adjacency, pair_logits = net.pair_logits(
            words[row, :n_words], torch.from_numpy(nodes).to(device), rels[row, :R]
        )
        gold = torch.zeros(n, n, R, device=device)
        p = rb.pairs[row]
        if len(p):
            gold[p[:, 0], p[:, 1], p[:, 2]] = 1.0
        off = ~torch.eye(n, dtype=torch.bool, device=device)
        total = total + span_label_loss(
            pair_logits[off],
            gold[off],
            torch.ones_like(gold[off]),
            t.loss,
            t.focal_alpha,
            t.focal_gamma,
            "sum",
        )
        scored += int(off.sum()) * R
        if adjacency is not None:
            # "i and j are related", either way: the dot and bilinear layers are symmetric
            related = gold.amax(-1)
            related = torch.maximum(related, related.T)
            a = adjacency.float().clamp(1e-6, 1 - 1e-6)[off]
            total = total + torch.nn.functional.binary_cross_entropy(a, related[off], reduction="sum")
    return total, scored


__all__ = ["UNTYPED_LABEL", "RelationCorpus", "RelexBatch", "RelexItem", "RelexMix", "load_relation_corpus", "relex_from_span_model",
           "relex_batch", "relex_loss"]  # fmt: skip
