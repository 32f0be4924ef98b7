"""Featurization: labels and words -> encoder sequences -> batches, for every caller.

Prediction, training, ONNX export, the benchmarks and the server all go through
:class:`Featurizer`; it owns

* label sets: the caller's labels (names, or name -> description), checked once;
* prompt groups: a label set too long for one prompt is split into groups that fit;
* windows: a text longer than the encoder reads is cut into overlapping windows whose
  cores partition its words (:func:`plan_windows`), for prediction and for training alike;
* batches: jobs sorted by length and padded into :class:`anyner.batching.Batch`.

The long-text policy is one for both: a prediction reads every window; a training
record longer than one window is trained on one window of it, drawn at random, with
every gold span that lies inside that window. A gold span that fits in no window is
counted in :attr:`TrainFeatures.lost`, never dropped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from anyner import validate
from anyner.batching import Batch, collate
from anyner.prompt import PromptBuilder, PromptedInput
from anyner.types import Word

if TYPE_CHECKING:
    from anyner.config import AnyNERConfig

Labels = Sequence[str] | Mapping[str, str]
BI_ENCODER_GROUP = 512  # labels scored in one pass by a bi-encoder


@dataclass(frozen=True, slots=True)
class LabelSet:
    """Labels as the caller names them, and the prompt text the model reads for each."""

    names: tuple[str, ...]
    prompts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Job:
    """One encoder sequence: a window of one text with one group of its labels."""

    text: int  # index of the text in the caller's list
    first_label: int  # index in the text's LabelSet of the group's first label
    n_labels: int
    word_start: int  # the window is words [word_start, word_start + n_words)
    n_words: int
    core: tuple[int, int]  # keep candidates starting in [core[0], core[1]) (whole-text word indices)
    prompted: PromptedInput


@dataclass(frozen=True, slots=True)
class TrainFeatures:
    """One training sequence: a window of a record with all its labels, and the gold spans inside."""

    prompted: PromptedInput
    spans: list[tuple[int, int, int]]  # (start, end, label index), half-open, relative to the window
    n_labels: int
    window: tuple[int, int]  # words [a, b) of the record
    lost: int  # gold spans of the record that fit in no window (never trainable at this limit)


class Featurizer:
    """Builds encoder sequences for one tokenizer, model config and subword limit.

    Args:
        tokenizer: the model's tokenizer, with the prompt tokens added.
        config: the model's config (prompt tokens, ``max_len`` words, ``max_width``).
        max_tokens: most subwords in one encoder sequence.
    """

    def __init__(self, tokenizer: Any, config: AnyNERConfig, max_tokens: int):
        self.tokenizer = tokenizer
        self.config = config
        self.max_tokens = validate.positive_int(max_tokens, "max_tokens")
        self.prompts = PromptBuilder(tokenizer, config, self.max_tokens)
        self.window_overlap = max(2 * config.max_width, 64)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._group_cache: dict[LabelSet, list[tuple[int, int]]] = {}

    def with_limits(self, *, config: AnyNERConfig | None = None, max_tokens: int | None = None) -> Featurizer:
        """A featurizer for other limits (a new object; this one is unchanged)."""
        return Featurizer(
            self.tokenizer, config or self.config, self.max_tokens if max_tokens is None else max_tokens
        )

    # ------------------------------------------------------------------ labels

    def label_set(self, labels: Labels) -> LabelSet:
        """Check one label list (or dict label -> description); duplicates collapse to the first."""
        if isinstance(labels, str):
            raise TypeError(
                f"labels must be a list of strings or a dict label -> description, not the string {labels!r}"
            )
        if isinstance(labels, Mapping):
            pairs = list(labels.items())
        elif isinstance(labels, Sequence):
            pairs = [(x, x) for x in labels]
        else:
            raise TypeError(
                f"labels must be a list of strings or a dict label -> description, got {type(labels).__name__}"
            )
        if not pairs:
            raise ValueError("labels is empty: give at least one label, e.g. ['person', 'organization']")
        names, prompts, seen = [], [], set()
        special = (self.config.ent_token, self.config.sep_token)
        for name, prompt in pairs:
            for what, value in (("label", name), ("description", prompt)):
                if not isinstance(value, str):
                    raise TypeError(f"each {what} must be a str, got {value!r}")
                if not value.strip():
                    raise ValueError(f"{what}s must not be empty or blank: {value!r}")
                for tok in special:
                    if tok in value:
                        raise ValueError(
                            f"{what} {value!r} contains the prompt token {tok!r}, which would break the prompt"
                        )
            if name in seen:
                continue  # duplicates collapse to the first, as in GLiNER
            seen.add(name)
            names.append(name)
            prompts.append(prompt)
        return LabelSet(tuple(names), tuple(prompts))

    def label_sets(self, labels: Labels | Sequence[Labels], n_texts: int) -> list[LabelSet]:
        """One label set for all texts, or one per text (a list of label lists)."""
        per_text = isinstance(labels, Sequence) and not isinstance(labels, str) and len(labels) > 0
        per_text = per_text and all(
            isinstance(x, Sequence | Mapping) and not isinstance(x, str) for x in labels
        )
        if per_text:
            if len(labels) != n_texts:
                raise ValueError(
                    f"got {len(labels)} label lists for {n_texts} texts; give one per text or one for all"
                )
            return [self.label_set(x) for x in labels]
        return [self.label_set(labels)] * n_texts

    def thresholds(self, threshold: float | Mapping[str, float], label_set: LabelSet) -> np.ndarray:
        """(C,) float32 thresholds: one number for all labels, or a dict label -> threshold (others 0.5)."""
        if isinstance(threshold, Mapping):
            unknown = set(threshold) - set(label_set.names)
            if unknown:
                # sorted by repr: the keys may be of mixed types, which do not compare
                raise ValueError(
                    f"threshold names labels that are not asked for: {sorted(unknown, key=repr)}"
                )
            values = [validate.threshold(threshold.get(n, 0.5), f"threshold[{n!r}]") for n in label_set.names]
        else:
            values = [validate.threshold(threshold)] * len(label_set.names)
        return np.asarray(values, dtype=np.float32)

    def label_groups(self, label_set: LabelSet) -> list[tuple[int, int]]:
        """(first, count) groups of a label set whose prompts fit half the subword budget.

        Cached for the last 64 label sets, per featurizer (a copy of a model has its own).

        Raises:
            ValueError: one label (or its description) is too long for the encoder.
        """
        groups = self._group_cache.get(label_set)
        if groups is None:
            groups = self._split_labels(label_set)
            if len(self._group_cache) >= 64:
                self._group_cache.pop(next(iter(self._group_cache)))  # the oldest entry
            self._group_cache[label_set] = groups
        return groups

    def _split_labels(self, label_set: LabelSet) -> list[tuple[int, int]]:
        if not self.prompts.labels_in_prompt:
            # bi-encoder: labels take no room in the sequence; groups only bound the (span x label)
            # scores held at once
            n = len(label_set.names)
            return [(i, min(BI_ENCODER_GROUP, n - i)) for i in range(0, n, BI_ENCODER_GROUP)]
        budget = self.max_tokens // 2
        fixed = len(self.prompts.prefix) + len(self.prompts.suffix) + 1  # + <<SEP>>
        sizes = [
            len(p)
            for p in self.prompts.word_pieces(
                [x for pr in label_set.prompts for x in (self.config.ent_token, pr)]
            )
        ]
        cost = [sizes[2 * i] + sizes[2 * i + 1] for i in range(len(label_set.prompts))]
        room = self.max_tokens - fixed - 1  # a prompt of one label must leave a subword for the text
        for i, c in enumerate(cost):
            if c > room:
                name, prompt = label_set.names[i], label_set.prompts[i]
                short = repr(name) if len(name) <= 60 else repr(name[:57] + "...")
                what = f"label {short}" if prompt == name else f"the description of label {short}"
                raise ValueError(
                    f"{what} is {sizes[2 * i + 1]} subwords long, too long for the encoder's "
                    f"{self.max_tokens} subwords with the prompt and the text: shorten it to at most "
                    f"{room - sizes[2 * i]} subwords"
                )
        groups, first, used = [], 0, fixed
        for i, c in enumerate(cost):
            if i > first and used + c > budget:
                groups.append((first, i - first))
                first, used = i, fixed
            used += c
        groups.append((first, len(cost) - first))
        return groups

    # ------------------------------------------------------------------ prediction

    def jobs(self, text_id: int, words: Sequence[Word], label_set: LabelSet) -> list[Job]:
        """Every (window, label group) sequence of one text."""
        if not words:
            return []
        pieces = self.prompts.word_pieces([w.text for w in words])
        jobs = []
        for first, count in self.label_groups(label_set):
            group = label_set.prompts[first : first + count]
            budget = self.max_tokens - self.prompts.prompt_length(group)
            capped = [
                p[: max(1, budget)] for p in pieces
            ]  # a single word longer than the budget keeps its head
            for a, b, core in plan_windows(
                [len(p) for p in capped], budget, self.config.max_len, self.window_overlap
            ):
                prompted = self.prompts.build(group, capped[a:b])
                jobs.append(Job(text_id, first, count, a, b - a, core, prompted))
        return jobs

    def batches(self, jobs: Sequence[Job], batch_size: int) -> Iterator[tuple[list[Job], Batch]]:
        """Jobs in batches of similar length (less padding), each with its padded :class:`Batch`."""
        for chunk in self.batch_order(jobs, batch_size):
            yield chunk, self.collate(chunk)

    @staticmethod
    def batch_order(jobs: Sequence[Job], batch_size: int) -> list[list[Job]]:
        """Jobs sorted by sequence length and cut into batches of ``batch_size``."""
        batch_size = validate.positive_int(batch_size, "batch_size")
        order = sorted(range(len(jobs)), key=lambda j: len(jobs[j].prompted.input_ids))
        return [[jobs[j] for j in order[i : i + batch_size]] for i in range(0, len(order), batch_size)]

    def collate(self, jobs: Sequence[Job], label_vectors: Sequence[np.ndarray] | None = None) -> Batch:
        """The padded batch of some jobs, in their order.

        ``label_vectors`` (bi-encoders): for each job, the (L, D) vectors of its text's whole
        label set; the batch then carries each job's group of them, (B, C, D), zero for padding.
        """
        batch = collate([j.prompted for j in jobs], self.pad_id)
        if label_vectors is None:
            return batch
        D = label_vectors[0].shape[1] if len(label_vectors) else 0
        rows = np.zeros((len(jobs), batch.n_labels, D), dtype=np.float32)
        for row, (job, vectors) in enumerate(zip(jobs, label_vectors, strict=True)):
            rows[row, : job.n_labels] = vectors[job.first_label : job.first_label + job.n_labels]
        return dataclasses.replace(batch, label_vectors=rows)

    def collate_prompted(self, prompted: Sequence[PromptedInput]) -> Batch:
        """The padded batch of prompted sequences (e.g. :attr:`TrainFeatures.prompted`)."""
        return collate(prompted, self.pad_id)

    # ------------------------------------------------------------------ training

    def train_features(
        self,
        words: Sequence[str],
        labels: Sequence[str],
        spans: Sequence[tuple[int, int, int]],
        draw: float = 0.0,
    ) -> TrainFeatures:
        """One training sequence for a record prompted with all of ``labels`` (one prompt group).

        A record that fits the encoder (``max_len`` words and the subword budget) is read
        whole. A longer one is windowed as prediction windows it, and the window
        ``int(draw * n_windows)`` is returned, ``draw`` in [0, 1) being the caller's seeded
        random number: every gold span of width at most ``max_width`` lies inside some
        window, so over the draws no span is lost; one that fits none is counted in ``lost``.
        """
        group = tuple(labels)
        pieces = self.prompts.word_pieces(list(words))
        budget = self.max_tokens - self.prompts.prompt_length(group)
        capped = [p[: max(1, budget)] for p in pieces]
        counts = [len(p) for p in capped]
        n = len(counts)
        lost = 0
        if n <= self.config.max_len and sum(counts) <= budget:
            a, b = 0, n
        else:
            windows = [
                (x, y) for x, y, _ in plan_windows(counts, budget, self.config.max_len, self.window_overlap)
            ]
            a, b = windows[min(len(windows) - 1, int(draw * len(windows)))]
            lost = sum(1 for s, e, _ in spans if not any(x <= s and e <= y for x, y in windows))
        kept = [(s - a, e - a, c) for s, e, c in spans if a <= s and e <= b]
        return TrainFeatures(self.prompts.build(group, capped[a:b]), kept, len(group), (a, b), lost)


def plan_windows(
    counts: list[int], budget: int, max_words: int, overlap: int
) -> list[tuple[int, int, tuple[int, int]]]:
    """Cut words with ``counts`` subwords each into windows of at most ``budget`` subwords.

    Returns (start, end, core) per window. Consecutive windows overlap by up to
    ``overlap`` words; the cores split the text at the middle of each overlap, so
    that every word belongs to exactly one core and a span starting in a core lies
    inside its window (when ``overlap >= 2 * max_width``).
    """
    n = len(counts)
    windows: list[tuple[int, int]] = []
    a = 0
    while True:
        b, used = a, 0
        while b < n and b - a < max_words and (used + counts[b] <= budget or b == a):
            used += counts[b]
            b += 1
        windows.append((a, b))
        if b >= n:
            break
        a = max(a + 1, b - min(overlap, (b - a) // 2))
    cuts = [0] + [(windows[i + 1][0] + windows[i][1]) // 2 for i in range(len(windows) - 1)] + [n]
    return [(a, b, (cuts[i], cuts[i + 1])) for i, (a, b) in enumerate(windows)]


__all__ = ["Featurizer", "Job", "LabelSet", "Labels", "TrainFeatures", "plan_windows"]
