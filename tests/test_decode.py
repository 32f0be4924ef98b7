"""The decoder on hand-made scores: thresholds, flat, nested, multi-label, ties."""

from __future__ import annotations

import numpy as np
import pytest

from anyner.decode import Candidates, candidates, greedy, token_candidates
from tests.conftest import brute_force


def cands(*rows):
    """rows of (start, end, label, score) -> Candidates."""
    a = np.array([r[:3] for r in rows], dtype=np.int64).reshape(-1, 3)
    return Candidates(a[:, 0], a[:, 1], a[:, 2], np.array([r[3] for r in rows], dtype=np.float32))


def spans(kept):
    return [(c.start, c.end, c.label) for c in kept]


def test_candidates_threshold_is_strict_and_per_label():
    probs = np.zeros((3, 2, 2), dtype=np.float32)
    probs[0, 0, 0] = 0.5  # equal to the threshold: not kept
    probs[1, 0, 0] = 0.51
    probs[1, 1, 1] = 0.3  # label 1 has a lower threshold
    probs[2, 1, 0] = 0.99  # span words 2..3 runs past a 3-word text
    c = candidates(probs, n_words=3, thresholds=np.array([0.5, 0.25], dtype=np.float32))
    assert sorted(zip(c.start.tolist(), c.end.tolist(), c.label.tolist(), strict=True)) == [
        (1, 2, 0),
        (1, 3, 1),
    ]


def test_flat_takes_best_and_drops_any_overlap():
    c = cands((0, 2, 0, 0.9), (1, 3, 1, 0.95), (3, 4, 0, 0.6), (0, 1, 1, 0.7))
    assert spans(greedy(c, 5, flat=True)) == [(0, 1, 1), (1, 3, 1), (3, 4, 0)]


def test_nested_allows_containment_not_partial_overlap():
    c = cands((0, 4, 0, 0.9), (1, 2, 1, 0.8), (3, 6, 0, 0.85), (0, 4, 1, 0.7))
    # (3,6) partly overlaps (0,4); (0,4,1) repeats the span of (0,4,0)
    assert spans(greedy(c, 6, flat=False)) == [(0, 4, 0), (1, 2, 1)]


def test_multi_label_keeps_same_span_with_other_labels():
    c = cands((0, 2, 0, 0.9), (0, 2, 1, 0.8), (1, 3, 2, 0.85))
    assert spans(greedy(c, 4, flat=True, multi_label=True)) == [(0, 2, 0), (0, 2, 1)]
    assert spans(greedy(c, 4, flat=False, multi_label=True)) == [(0, 2, 0), (0, 2, 1)]
    assert spans(greedy(c, 4, flat=True, multi_label=False)) == [(0, 2, 0)]


def test_ties_break_by_start_then_width_then_label():
    c = cands((2, 4, 0, 0.8), (1, 3, 1, 0.8), (1, 3, 0, 0.8), (1, 2, 0, 0.8))
    assert spans(greedy(c, 5, flat=True)) == [(1, 2, 0), (2, 4, 0)]


def test_same_start_keeps_selection_order():
    c = cands((0, 1, 0, 0.6), (0, 3, 1, 0.9))
    assert spans(greedy(c, 3, flat=False)) == [(0, 3, 1), (0, 1, 0)]


def test_empty():
    assert greedy(Candidates.concat([]), 0) == []


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("multi_label", [True, False])
def test_matches_quadratic_rule_on_random_scores(flat, multi_label):
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 30))
        rows = []
        for s in range(n):
            for k in range(min(5, n - s)):
                for c in range(3):
                    if rng.random() < 0.3:
                        rows.append(
                            (s, s + k + 1, c, float(np.float32(rng.choice([0.6, 0.7, rng.random()]))))
                        )
        if not rows:
            continue
        got = greedy(cands(*rows), n, flat=flat, multi_label=multi_label)
        want = brute_force(rows, flat, multi_label)
        assert sorted(spans(got)) == sorted(want)
        assert [x.start for x in got] == sorted(x.start for x in got)


def token_pairs(probs, n_words, thresholds):
    """The token-level rule written as plainly as possible: every (start, end, label) triple."""
    out = set()
    for c, th in enumerate(thresholds):
        for s in range(n_words):
            for e in range(s, n_words):
                inside = probs[s : e + 1, 2, c]
                if probs[s, 0, c] > th and probs[e, 1, c] > th and (inside >= th).all():
                    out.add((s, e + 1, c, float(min(inside.min(), probs[s, 0, c], probs[e, 1, c]))))
    return out


def test_token_candidates_on_hand_made_scores():
    probs = np.full((5, 3, 1), 0.1, dtype=np.float32)
    probs[1, 0, 0] = 0.9  # starts at word 1
    probs[1:4, 2, 0] = [0.8, 0.5, 0.7]  # inside 1..3; 0.5 equals the threshold, which is enough
    probs[3, 1, 0] = 0.6  # ends at word 3
    probs[2, 1, 0] = 0.5  # an end score equal to the threshold is not enough
    c = token_candidates(probs, n_words=5, thresholds=np.array([0.5], dtype=np.float32))
    assert list(zip(c.start.tolist(), c.end.tolist(), c.label.tolist(), strict=True)) == [(1, 4, 0)]
    assert c.score.tolist() == [0.5]  # the least of start, end and inside scores
    probs[2, 2, 0] = 0.49  # a gap inside breaks the span
    assert len(token_candidates(probs, n_words=5, thresholds=np.array([0.5], dtype=np.float32))) == 0


@pytest.mark.parametrize("seed", range(5))
def test_token_candidates_match_every_pair_rule(seed):
    rng = np.random.default_rng(seed)
    W, C = 14, 3
    probs = rng.uniform(0.2, 1.0, size=(W, 3, C)).astype(np.float32)
    thresholds = np.array([0.5, 0.4, 0.7], dtype=np.float32)
    n = 11  # rows past n are padding, whatever they hold
    c = token_candidates(probs, n_words=n, thresholds=thresholds)
    got = set(
        zip(c.start.tolist(), c.end.tolist(), c.label.tolist(), c.score.astype(float).tolist(), strict=True)
    )
    want = token_pairs(probs, n, thresholds)
    assert got == want and len(want) > 10
    assert max(c.end.tolist()) <= n
