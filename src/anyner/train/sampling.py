"""The training mix: which example, which labels, which targets, at every step.

Everything random here is drawn from a generator seeded with (seed, step, slot),
so a run resumed at step n sees exactly the batches an uninterrupted run would:
the data position needs no state of its own.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from anyner.data import load_label_map
from anyner.data.stream import index_examples
from anyner.train.config import DataSource, TrainSettings
from anyner.types import Example


@dataclass(slots=True)
class TrainItem:
    """One prompted training example: words, labels in prompt order, and gold spans."""

    words: list[str]
    labels: list[str]
    spans: list[tuple[int, int, int]]  # (start, end) half-open word span, label index
    draw: float = 0.0  # a seeded number in [0, 1): which window of a record too long for one


@dataclass
class Corpus:
    """One weighted source of the mix; ``examples`` may stay on disk (an ``ExampleIndex``)."""

    name: str
    examples: Sequence[Example]
    weight: float
    labels: Counter[str] = field(default_factory=Counter)  # span label -> count
    negatives: str = "pool"  # "pool": negatives from every corpus's labels; "own": from this one's

    def __post_init__(self) -> None:
        if not self.labels:
            self.labels = Counter(s.label for e in self.examples for s in e.spans)


def load_corpora(sources: list[DataSource], seed: int, log=print) -> list[Corpus]:
    """Index every source, with its label map; drop a share of span-less records if asked.

    Records stay on disk (JSON lines and CoNLL files): the index holds where each
    kept record starts, and the mix parses a record when it samples it.
    """
    corpora = []
    for i, src in enumerate(sources):
        label_map = load_label_map(src.label_map) if src.label_map else None
        keep = None
        if src.keep_empty < 1.0:
            rng = np.random.default_rng([seed, 7919, i])
            keep_empty = src.keep_empty

            def keep(e: Example, rng=rng, keep_empty=keep_empty) -> bool:
                return bool(e.spans) or rng.random() < keep_empty

        examples, report = index_examples(
            src.path, format=src.format, label_map=label_map, limit=src.max_records, keep=keep
        )
        if not len(examples):
            raise ValueError(f"data source {src.path} yields no examples ({report})")
        log(f"{Path(src.path).name}: {len(examples)} examples kept ({report})")
        corpora.append(Corpus(Path(src.path).name, examples, src.weight, examples.labels, src.negatives))
    return corpora


@dataclass
class LabelNames:
    """Other names for labels: ``synonyms`` name the same type, ``broader`` a coarser one."""

    synonyms: dict[str, list[str]] = field(default_factory=dict)
    broader: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> LabelNames:
        """Read a names file (``{"synonyms": {...}, "broader": {...}}``); None = the packaged one."""
        if path is None:
            text = resources.files("anyner.resources").joinpath("label_synonyms.json").read_text("utf-8")
            where = "anyner/resources/label_synonyms.json"
        else:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        raw = json.loads(text)
        tables = {}
        for key in ("synonyms", "broader"):
            table = raw.get(key, {})
            if not isinstance(table, dict) or not all(
                isinstance(v, list) and all(isinstance(x, str) and x.strip() for x in v)
                for v in table.values()
            ):
                raise ValueError(f"{where}: '{key}' must map each label to a list of names")
            tables[key] = table
        return cls(**tables)

    def choices(self, label: str, gold: set[str], positive: bool, broader: bool = True) -> list[str]:
        """The names ``label`` may take in a prompt for an example whose gold labels are ``gold``.

        A broader name is offered only for a gold label, and only when no other gold
        label of the example falls under it (else those spans would be wrong negatives).
        ``broader=False`` offers none: for a corpus that annotates only some types, where
        entities of the other types under the broader name are left unlabelled.
        A negative label never takes a name that is one of the gold labels.
        """
        names = [n for n in self.synonyms.get(label, []) if n not in gold]
        if positive and broader:
            for coarse in self.broader.get(label, []):
                if not any(g != label and (g == coarse or coarse in self.broader.get(g, [])) for g in gold):
                    names.append(coarse)
        return names


def prompt_names(
    positives: list[str],
    pool: Sequence[str],
    rng: np.random.Generator,
    s: TrainSettings,
    cap: int,
    avoid: Collection[str] = (),
) -> list[str]:
    """The names one training prompt shows: the gold ``positives`` plus negatives drawn from
    ``pool`` (``neg_ratio`` per positive; 1 to 5 for a record without any), never one of
    ``avoid``; then, with probability ``drop_labels``, a random subset; shuffled; at most ``cap``.

    Entity prompts (:meth:`Mix.prompt`) and relation prompts (:mod:`anyner.train.relex`, whose
    relation names avoid the prompt's entity labels) both draw theirs here.
    """
    n_neg = round(s.neg_ratio * len(positives)) if positives else int(rng.integers(1, 6))
    negatives: list[str] = []
    taken = set(positives) | set(avoid)
    if n_neg:
        for j in rng.permutation(len(pool))[: n_neg + len(taken)]:
            if pool[j] not in taken:
                negatives.append(pool[j])
                if len(negatives) == n_neg:
                    break
    names = positives + negatives
    if len(names) > 1 and rng.random() < s.drop_labels:
        keep = int(rng.integers(1, len(names) + 1))
        names = [names[j] for j in sorted(rng.permutation(len(names))[:keep])]
    return [names[j] for j in rng.permutation(len(names))][:cap]


class Mix:
    """Samples prompted training items from weighted corpora."""

    def __init__(self, corpora: list[Corpus], settings: TrainSettings, max_width: int):
        self.corpora = corpora
        self.settings = settings
        self.max_width = max_width
        w = np.array([c.weight for c in corpora], dtype=np.float64)
        self.corpus_p = w / w.sum()
        counts: Counter[str] = sum((c.labels for c in corpora), Counter())
        if not counts:
            raise ValueError("the training data has no labelled span at all")
        self.pool = sorted(counts)  # negatives are drawn from the labels of all other examples
        # a corpus that annotates only its own types draws its negatives among those
        self.own_pool = {id(c): sorted(c.labels) for c in corpora if c.negatives == "own"}
        self.long_spans = 0  # gold spans wider than max_width (they cannot be scored)
        self.names = LabelNames.load(settings.label_names) if settings.rename_labels > 0 else None

    def item(self, seed: int, step: int, slot: int) -> TrainItem:
        rng = np.random.default_rng([seed, step, slot])
        # without mixing, every slot of a step draws the corpus from the same (seed, step) stream
        pick = rng if self.settings.mix_corpora else np.random.default_rng([seed, step])
        corpus = self.corpora[int(pick.choice(len(self.corpora), p=self.corpus_p))]
        ex = corpus.examples[int(rng.integers(len(corpus.examples)))]
        item = self.prompt(ex, rng, self.own_pool.get(id(corpus)))
        # its own stream, so that the draws above are those of a run without windows
        item.draw = float(np.random.default_rng([seed, step, slot, 1]).random())
        return item

    def prompt(self, ex: Example, rng: np.random.Generator, pool: list[str] | None = None) -> TrainItem:
        """Prompt ``ex``: its gold labels and negatives drawn from ``pool`` (default: every label)."""
        s = self.settings
        # a corpus with its own negatives annotates only its own types: no broader names there
        own = pool is not None
        pool = self.pool if pool is None else pool
        # A long record is windowed later, by the featurizer, as prediction windows it.
        words, spans = ex.words, [(sp.start, sp.end, sp.label) for sp in ex.spans]
        positives = sorted({lab for _, _, lab in spans})
        labels = prompt_names(positives, pool, rng, s, s.max_types)
        shown = self._rename(labels, set(positives), rng, not own) if self.names is not None else labels
        index = {lab: j for j, lab in enumerate(labels)}
        kept = []
        for x, y, lab in spans:
            if lab in index:
                if y - x > self.max_width:
                    self.long_spans += 1
                    continue
                kept.append((x, y, index[lab]))
        return TrainItem(list(words), shown, kept)

    def _rename(
        self, labels: list[str], gold: set[str], rng: np.random.Generator, broader: bool = True
    ) -> list[str]:
        """Give each label, with probability ``rename_labels``, another of its names (no repeats)."""
        shown = list(labels)
        for i, label in enumerate(labels):
            if rng.random() >= self.settings.rename_labels:
                continue
            options = [n for n in self.names.choices(label, gold, label in gold, broader) if n not in shown]
            if options:
                shown[i] = options[int(rng.integers(len(options)))]
        return shown
