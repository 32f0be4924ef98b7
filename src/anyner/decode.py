"""Logits -> non-overlapping labelled word spans, greedy by score.

Two steps, so that candidates from several windows or label groups can be
pooled before the greedy choice:

1. ``candidates``: every (span, label) whose probability is above its label's
   threshold, for spans inside the text, as parallel numpy arrays.
2. ``greedy``: take candidates best first; keep one unless it clashes with one
   already kept. Flat mode forbids any overlap; nested mode forbids partial
   overlap (one span inside another is fine); multi-label lets the same span
   carry several labels. Ties keep (start, width, label) order, as GLiNER does.

Sorting is O(n log n). Each clash check is O(max_width): flat mode marks the
words it has taken; the other modes look only at kept spans that start within
``max_width`` words before the candidate's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Candidate:
    """Words ``[start, end)`` labelled with label number ``label``."""

    start: int
    end: int
    label: int
    score: float


@dataclass(frozen=True, slots=True)
class Candidates:
    """Many candidates as parallel arrays (start, end, label, score)."""

    start: np.ndarray
    end: np.ndarray
    label: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.start)

    def select(self, keep: np.ndarray) -> Candidates:
        return Candidates(self.start[keep], self.end[keep], self.label[keep], self.score[keep])

    def shifted(self, words: int = 0, labels: int = 0) -> Candidates:
        return Candidates(self.start + words, self.end + words, self.label + labels, self.score)

    @staticmethod
    def concat(parts: Sequence[Candidates]) -> Candidates:
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return Candidates(empty, empty, empty, np.zeros(0, dtype=np.float32))
        return Candidates(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("start", "end", "label", "score"))
        )


def candidates(probs: np.ndarray, n_words: int, thresholds: np.ndarray) -> Candidates:
    """Spans above threshold from one text's probabilities.

    Args:
        probs: (W, K, C) sigmoid scores; ``probs[i, k, c]`` is words i..i+k with label c.
        n_words: words in the text (spans past it are padding).
        thresholds: (C,) threshold of each label; a score must be strictly above it.
    """
    W, K, _ = probs.shape
    inside = (np.arange(W)[:, None] + np.arange(K)[None, :]) < n_words  # (W, K)
    s, k, c = np.nonzero((probs > thresholds[None, None, :]) & inside[:, :, None])
    return Candidates(s, s + k + 1, c, probs[s, k, c])


def token_candidates(probs: np.ndarray, n_words: int, thresholds: np.ndarray) -> Candidates:
    """Spans above threshold from one text's token-level probabilities.

    A span i..j with label c is a candidate when word i's start score and word j's end
    score are above c's threshold and no inside score of words i..j is below it; its score
    is the least of those scores. There is no width limit.

    Args:
        probs: (W, 3, C) sigmoid scores: start, end and inside of each word for each label.
        n_words: words in the text (rows past it are padding).
        thresholds: (C,) threshold of each label.
    """
    n = min(n_words, probs.shape[0])
    start, end, inside = probs[:n, 0], probs[:n, 1], probs[:n, 2]  # (n, C) each
    th = thresholds[None, :]
    starts, ends, ins = start > th, end > th, inside >= th
    out_s, out_e, out_c, out_p = [], [], [], []
    for c in np.nonzero(starts.any(0) & ends.any(0))[0].tolist():
        ok = ins[:, c]
        # first word at or after each position whose inside score is below the threshold
        bad = np.flatnonzero(~ok)
        for s in np.flatnonzero(starts[:, c] & ok).tolist():
            k = np.searchsorted(bad, s)
            stop = int(bad[k]) if k < len(bad) else n
            e = np.flatnonzero(ends[s:stop, c])
            if len(e) == 0:
                continue
            run = np.minimum.accumulate(inside[s:stop, c])[e]
            out_s.append(np.full(len(e), s))
            out_e.append(e + s + 1)
            out_c.append(np.full(len(e), c))
            out_p.append(np.minimum(np.minimum(run, start[s, c]), end[e + s, c]))
    if not out_s:
        return Candidates.concat([])
    return Candidates(
        np.concatenate(out_s), np.concatenate(out_e), np.concatenate(out_c), np.concatenate(out_p)
    )


def greedy(cands: Candidates, n_words: int, flat: bool = True, multi_label: bool = False) -> list[Candidate]:
    """Keep the best non-clashing candidates, returned sorted by start.

    Spans with the same start keep their selection order (best first), as in GLiNER.
    """
    if len(cands) == 0:
        return []
    score = cands.score.astype(np.float64)
    order = np.lexsort((cands.label, cands.end - cands.start, cands.start, -score))
    starts, ends = cands.start[order].tolist(), cands.end[order].tolist()
    labels, scores = cands.label[order].tolist(), score[order].tolist()
    kept: list[Candidate] = []
    if flat and not multi_label:
        taken = bytearray(n_words)
        free = n_words
        for s, e, c, p in zip(starts, ends, labels, scores, strict=True):
            if not any(taken[s:e]):
                kept.append(Candidate(s, e, c, p))
                taken[s:e] = b"\x01" * (e - s)
                free -= e - s
                if free == 0:
                    break
    else:
        widest = max(e - s for s, e in zip(starts, ends, strict=True))
        # each kept span once, however many labels it carries (multi_label): a clash check then
        # looks at most at widest x widest spans, not at every label kept before
        by_start: dict[int, set[tuple[int, int]]] = {}
        for s, e, c, p in zip(starts, ends, labels, scores, strict=True):
            if not _clashes(s, e, by_start, widest, flat, multi_label):
                kept.append(Candidate(s, e, c, p))
                by_start.setdefault(s, set()).add((s, e))
    kept.sort(key=lambda x: x.start)
    return kept


def _clashes(
    s: int, e: int, by_start: dict[int, set[tuple[int, int]]], widest: int, flat: bool, multi_label: bool
) -> bool:
    for start in range(max(0, s - widest + 1), e):
        for a, b in by_start.get(start, ()):
            if a == s and b == e:
                if not multi_label:
                    return True
                continue
            if a >= e or s >= b:
                continue  # disjoint
            if flat or not ((a <= s and e <= b) or (s <= a and b <= e)):
                return True  # overlap in flat mode, partial overlap in nested mode
    return False
