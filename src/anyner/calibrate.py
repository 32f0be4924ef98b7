"""Fitting calibrated thresholds (``anyner calibrate``): score dev sets once, re-decode per threshold.

:func:`fit_bands` fits the band thresholds of a :class:`~anyner.calibration.Calibration` on
benchmark folders: it scores each dev set once, at a low threshold, keeping every candidate
(span, label, score), then decodes those candidates again for each threshold tried (coordinate
ascent over the bands), with the decoder :meth:`anyner.AnyNER.predict` uses, so that the F1 it
reports is that of ``predict(..., threshold=calibration.thresholds(labels))``. It runs a model,
so it sits above the pipeline; :mod:`anyner.calibration` (the file and its resolution) sits below.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anyner import validate
from anyner.calibration import (
    DEFAULT_EDGES,
    GRID,
    Band,
    Calibration,
    bands_from_edges,
    check_edges,
    checked_count,
    checked_unit,
    keyed_values,
    label_key,
)

if TYPE_CHECKING:
    from anyner.decode import Candidates
    from anyner.evaluate import Scores
    from anyner.featurize import LabelSet
    from anyner.types import Entity, Word


@dataclass
class ScoredSet:
    """One dev set scored once: every candidate (span, label, score) above ``floor`` per sentence.

    Made by :func:`score_dev_set`; :func:`redecode` decodes it at any thresholds >= ``floor``.
    """

    name: str
    labels: list[str]  # the lowercased names prompted (as ``anyner evaluate`` prompts them)
    label_set: LabelSet
    texts: list[str]
    words: list[list[Word]]
    gold: list[set[Hashable]]  # gold keys (start, end, label) of each sentence, as anyner.evaluate makes them
    candidates: list[Candidates]
    floor: float


def score_dev_set(
    model: Any,
    folder: str | Path,
    *,
    floor: float = 0.05,
    limit: int | None = None,
    batch_size: int = 8,
    words: str = "whitespace",
    split: str = "test",
    progress: bool = False,
) -> ScoredSet:
    """Score a benchmark folder once at threshold ``floor``, keeping every candidate.

    The folder is read as :func:`anyner.evaluate.evaluate_folder` reads it (the same gold,
    words and lowercased labels), so that F1 from :func:`redecode` is that of ``anyner evaluate``.

    Args:
        model: an :class:`anyner.AnyNER`.
        folder: a folder with ``<split>.json`` and ``labels.json``.
        floor: the lowest threshold :func:`redecode` may be asked for.
        limit: score only the first ``limit`` sentences.
        batch_size: texts per model batch.
        words: how the sentences are read, as in :func:`anyner.evaluate.evaluate_folder`.
        split: the split file's stem (``<split>.json``).
        progress: show a progress bar on stderr.
    """
    from tqdm.auto import tqdm

    from anyner.evaluate import read_folder
    from anyner.pipeline import joined_words

    validate.threshold(floor, "floor")
    validate.positive_int(batch_size, "batch_size")
    folder = Path(folder)
    labels, sentences, _ = read_folder(folder, split=split, limit=limit, words=words)
    texts, split_words = [], []
    for s in sentences:
        texts.append(s.text)
        split_words.append(joined_words(s.words) if s.words is not None else model.split_words(s.text))
    label_set = None
    found: list[Candidates] = []
    chunk = max(batch_size * 32, 256)  # as anyner.evaluate: length bucketing stays useful, the bar moves
    with tqdm(total=len(texts), desc=folder.name, unit="sent", file=sys.stderr, disable=not progress) as bar:
        for a in range(0, len(texts), chunk):
            sets, cands = model.find_candidates(
                texts[a : a + chunk], split_words[a : a + chunk], labels, batch_size, floor, False
            )
            label_set = sets[0] if sets else label_set
            found.extend(cands)
            bar.update(len(cands))
    if label_set is None:
        label_set = model.featurizer.label_set(labels)
    return ScoredSet(
        folder.name, labels, label_set, texts, split_words, [s.gold for s in sentences], found, float(floor)
    )


def _label_thresholds(scored: ScoredSet, threshold: float | Mapping[str, float]) -> np.ndarray:
    """(C,) float32 thresholds of the set's labels, as ``Featurizer.thresholds`` makes them."""
    names = scored.label_set.names
    if isinstance(threshold, Mapping):
        unknown = set(threshold) - set(names)
        if unknown:
            raise ValueError(f"threshold names labels that are not asked for: {sorted(unknown, key=repr)}")
        values = [validate.threshold(threshold.get(n, 0.5), f"threshold[{n!r}]") for n in names]
    else:
        values = [validate.threshold(threshold)] * len(names)
    out = np.asarray(values, dtype=np.float32)
    if len(out) and float(out.min()) < scored.floor:
        raise ValueError(f"{scored.name} was scored at {scored.floor}: it cannot be decoded below it")
    return out


def _decode(cands: Candidates, thresholds: np.ndarray, n_words: int) -> list:
    """What ``predict`` keeps of these candidates (flat), each against its own float32 threshold
    (``thresholds`` has one per candidate): decode.candidates' test, then decode.greedy."""
    from anyner.decode import greedy

    keep = cands.score > thresholds  # float32 against float32, strictly above, as decode.candidates
    return greedy(cands.select(keep), n_words, flat=True) if keep.any() else []


def redecode(scored: ScoredSet, threshold: float | Mapping[str, float]) -> list[list[Entity]]:
    """The entities of each sentence at ``threshold`` (a number or a dict label -> threshold, as
    ``predict`` takes it), decoded from the candidates kept by :func:`score_dev_set`: what
    ``model.predict_words`` / ``predict_batch`` on the same texts gives (flat decoding)."""
    from anyner.pipeline import entities_of

    th = _label_thresholds(scored, threshold)
    return [
        entities_of(text, words, scored.label_set, _decode(cands, th[cands.label], len(words)))
        for text, words, cands in zip(scored.texts, scored.words, scored.candidates, strict=True)
    ]


@dataclass(frozen=True, slots=True)
class DevResult:
    """One dev set's scores at the fixed threshold and with the calibration."""

    name: str
    sentences: int
    baseline: Scores
    calibrated: Scores


@dataclass
class FitResult:
    """What :func:`fit_bands` found: the calibration, and dev F1 before and after.

    Attributes:
        calibration: the fitted :class:`Calibration` (save it with ``calibration.save(model_dir)``).
        datasets: per dev set, scores at ``baseline`` and calibrated.
        baseline: the fixed threshold compared with (0.5, the paper's).
        micro_baseline, micro_calibrated: micro scores over every dev sentence (the objective).
        band_labels: for each band, the dev labels that fell in it.
    """

    calibration: Calibration
    datasets: list[DevResult]
    baseline: float
    micro_baseline: Scores
    micro_calibrated: Scores
    band_labels: list[list[str]]

    @property
    def average_f1_baseline(self) -> float:
        """Mean over dev sets of F1 (percent) at the fixed threshold."""
        return _mean(d.baseline.f1 for d in self.datasets)

    @property
    def average_f1_calibrated(self) -> float:
        """Mean over dev sets of F1 (percent) with the calibration."""
        return _mean(d.calibrated.f1 for d in self.datasets)

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline_threshold": self.baseline,
            "datasets": {
                d.name: {
                    "sentences": d.sentences,
                    "f1_baseline": d.baseline.f1,
                    "f1_calibrated": d.calibrated.f1,
                }
                for d in self.datasets
            },
            "average_f1_baseline": self.average_f1_baseline,
            "average_f1_calibrated": self.average_f1_calibrated,
            "micro_f1_baseline": self.micro_baseline.f1,
            "micro_f1_calibrated": self.micro_calibrated.f1,
            "calibration": self.calibration.to_dict(),
        }


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


@dataclass(slots=True)
class _Item:
    """One dev sentence for the fit: its candidates, their bands, and which are gold."""

    dataset: int
    cands: Candidates
    band: np.ndarray  # band index of each candidate
    n_words: int
    gold_keys: set[tuple[int, int, int]]  # candidates (start, end, label) equal to a gold entity
    n_gold: int
    bands: frozenset[int]  # the bands among its candidates


def fit_bands(
    model: Any,
    dev: Sequence[str | Path | ScoredSet],
    label_counts: Mapping[str, int],
    *,
    edges: Sequence[int] = DEFAULT_EDGES,
    default: float = 0.5,
    baseline: float = 0.5,
    grid: Sequence[float] = GRID,
    passes: int = 2,
    limit: int | None = None,
    batch_size: int = 8,
    words: str = "whitespace",
    split: str = "test",
    progress: bool = False,
) -> FitResult:
    """Fit one threshold per label-frequency band, maximizing micro F1 over the dev sets.

    Each dev set is scored once at the lowest threshold tried (:func:`score_dev_set`); then, by
    coordinate ascent over the bands (``passes`` rounds), each band's threshold is set to the
    value of ``grid`` that most raises micro F1 over every dev sentence, decoding the kept
    candidates again (only the sentences with candidates in that band). It starts from
    ``baseline`` for every band and takes a value only when it is strictly better, so the
    calibrated micro F1 is never below that at ``baseline``. A band in which no dev label
    falls gets ``default``.

    Args:
        model: an :class:`anyner.AnyNER`.
        dev: benchmark folders (``<split>.json`` and ``labels.json``), or sets already scored
            by :func:`score_dev_set` at a floor no higher than the thresholds tried.
        label_counts: label -> gold spans of it in the training data (keys stripped and
            lowercased); a label not in it counts 0.
        edges: the bands' ``max_count`` (a last band takes any count).
        default: the threshold of a band without dev labels.
        baseline: the fixed threshold the fit starts from and is compared with.
        grid: the thresholds tried for each band.
        passes: rounds of coordinate ascent over the bands.
        limit: score only the first ``limit`` sentences of each dev set.
        batch_size: texts per model batch.
        words: how the sentences are read, as in :func:`anyner.evaluate.evaluate_folder`.
        split: the split file's stem (``<split>.json``).
        progress: show a progress bar on stderr while the dev sets are scored.

    Returns:
        A :class:`FitResult` whose ``calibration`` holds the bands and ``label_counts``.
    """
    from anyner.evaluate import scores_from_counts

    edges = check_edges(edges)
    counts = keyed_values(label_counts, "label_counts", "label_counts", checked_count)
    default = checked_unit(default, "default")
    baseline = checked_unit(baseline, "baseline")
    grid = sorted({checked_unit(t, "each threshold of grid") for t in grid})
    if not grid:
        raise ValueError("grid is empty: give the thresholds to try")
    passes = validate.positive_int(passes, "passes")
    if not dev:
        raise ValueError("no dev set: give at least one benchmark folder")
    floor = min(grid[0], baseline)
    sets = [
        d if isinstance(d, ScoredSet) else score_dev_set(
            model, d, floor=floor, limit=limit, batch_size=batch_size, words=words, split=split,
            progress=progress,
        )
        for d in dev
    ]  # fmt: skip
    for s in sets:
        if s.floor > floor:
            raise ValueError(f"{s.name} was scored at {s.floor}, above the lowest threshold tried ({floor})")
    shape = Calibration(bands=bands_from_edges(edges), label_counts=counts)
    n_bands = len(shape.bands)
    band_labels: list[list[str]] = [[] for _ in range(n_bands)]
    items: list[_Item] = []
    for d, s in enumerate(sets):
        label_band = np.asarray(
            [shape.band_index(counts.get(label_key(n), 0)) for n in s.label_set.names],
            dtype=np.int64,
        )
        for n, b in zip(s.label_set.names, label_band.tolist(), strict=True):
            if n not in band_labels[b]:
                band_labels[b].append(n)
        items += _items(d, s, label_band)
    active = [b for b in range(n_bands) if band_labels[b]]
    values = [baseline if b in active else default for b in range(n_bands)]
    affected = {b: [i for i, it in enumerate(items) if b in it.bands] for b in active}

    def run(indices: Iterable[int], vals: Sequence[float]) -> dict[int, tuple[int, int]]:
        th = np.asarray(vals, dtype=np.float32)
        out = {}
        for i in indices:
            it = items[i]
            kept = _decode(it.cands, th[it.band], it.n_words)
            out[i] = (len(kept), sum((k.start, k.end, k.label) in it.gold_keys for k in kept))
        return out

    current = run(range(len(items)), values)
    n_gold = sum(it.n_gold for it in items)
    totals = [sum(p for p, _ in current.values()), sum(c for _, c in current.values())]

    def f1(pred: int, correct: int) -> float:
        return 2.0 * correct / (pred + n_gold) if pred + n_gold else 0.0

    best_f1 = f1(*totals)
    for _ in range(passes):
        changed = False
        for b in active:
            here = affected[b]
            base_pred = totals[0] - sum(current[i][0] for i in here)
            base_correct = totals[1] - sum(current[i][1] for i in here)
            chosen, chosen_run = values[b], None
            for t in sorted(grid, key=lambda t, v=values[b]: (abs(t - v), t)):  # ties: the nearest value
                if t == values[b]:
                    continue
                trial = run(here, [t if k == b else v for k, v in enumerate(values)])
                pred = base_pred + sum(p for p, _ in trial.values())
                correct = base_correct + sum(c for _, c in trial.values())
                score = f1(pred, correct)
                if score > best_f1 + 1e-12:
                    best_f1, chosen, chosen_run = score, t, (trial, pred, correct)
            if chosen_run is not None:
                values[b] = chosen
                trial, pred, correct = chosen_run
                current.update(trial)
                totals = [pred, correct]
                changed = True
        if not changed:
            break

    base_counts = _per_dataset(items, len(sets), run(range(len(items)), [baseline] * n_bands))
    cal_counts = _per_dataset(items, len(sets), current)
    datasets = [
        DevResult(
            s.name, len(s.texts), scores_from_counts(*base_counts[d]), scores_from_counts(*cal_counts[d])
        )
        for d, s in enumerate(sets)
    ]
    micro_base = scores_from_counts(*(sum(c[k] for c in base_counts) for k in range(3)))
    micro_cal = scores_from_counts(*(sum(c[k] for c in cal_counts) for k in range(3)))
    bands = tuple(Band(b.max_count, values[i]) for i, b in enumerate(shape.bands))
    described = ", ".join(f"{s.name} ({len(s.texts)} sentences)" for s in sets)
    fitted_on = (
        f"{described}; micro F1 at {baseline:g}: {micro_base.f1:.2f} -> calibrated {micro_cal.f1:.2f}; "
        f"average F1 {_mean(d.baseline.f1 for d in datasets):.2f} -> {_mean(d.calibrated.f1 for d in datasets):.2f}; "
        f"grid {grid[0]:g}..{grid[-1]:g} ({len(grid)} values), {passes} passes"
    )
    calibration = Calibration(default=default, bands=bands, label_counts=counts, fitted_on=fitted_on)
    return FitResult(calibration, datasets, baseline, micro_base, micro_cal, band_labels)


def _items(d: int, s: ScoredSet, label_band: np.ndarray) -> list[_Item]:
    names = s.label_set.names
    out = []
    for words, gold, cands in zip(s.words, s.gold, s.candidates, strict=True):
        starts, ends, labels = cands.start.tolist(), cands.end.tolist(), cands.label.tolist()
        gold_keys = {
            (a, b, c)
            for a, b, c in zip(starts, ends, labels, strict=True)
            if (words[a].start, words[b - 1].end, names[c]) in gold
        }
        band = label_band[cands.label] if len(cands) else np.zeros(0, dtype=np.int64)
        out.append(_Item(d, cands, band, len(words), gold_keys, len(gold), frozenset(band.tolist())))
    return out


def _per_dataset(
    items: list[_Item], n_sets: int, found: Mapping[int, tuple[int, int]]
) -> list[tuple[int, int, int]]:
    """(gold, predicted, correct) of each dev set."""
    out = [[0, 0, 0] for _ in range(n_sets)]
    for i, it in enumerate(items):
        pred, correct = found[i]
        row = out[it.dataset]
        row[0], row[1], row[2] = row[0] + it.n_gold, row[1] + pred, row[2] + correct
    return [(g, p, c) for g, p, c in out]


def format_fit(result: FitResult) -> str:
    """The table ``anyner calibrate`` prints: F1 at the fixed threshold and calibrated, per dev set,
    on average and micro over all; then the bands."""
    from anyner.evaluate import text_grid

    b = f"{result.baseline:g}"
    rows = [
        (d.name, str(d.sentences), str(d.calibrated.gold), f"{d.baseline.f1:.1f}", f"{d.calibrated.f1:.1f}",
         f"{d.calibrated.f1 - d.baseline.f1:+.1f}")
        for d in result.datasets
    ]  # fmt: skip
    avg_b, avg_c = result.average_f1_baseline, result.average_f1_calibrated
    rows.append(("Average", "", "", f"{avg_b:.1f}", f"{avg_c:.1f}", f"{avg_c - avg_b:+.1f}"))
    mb, mc = result.micro_baseline.f1, result.micro_calibrated.f1
    n = sum(d.sentences for d in result.datasets)
    rows.append(
        (
            "micro (all)",
            str(n),
            str(result.micro_calibrated.gold),
            f"{mb:.1f}",
            f"{mc:.1f}",
            f"{mc - mb:+.1f}",
        )
    )
    table = text_grid(("dataset", "sentences", "gold", f"F1@{b}", "F1 calibrated", "change"), rows)
    bands = []
    low = 0
    for band, labels in zip(result.calibration.bands, result.band_labels, strict=True):
        span = f"{low}..{band.max_count}" if band.max_count is not None else f">= {low}"
        if band.max_count is not None:
            low = band.max_count + 1
        where = (
            f"{len(labels)} dev label{'' if len(labels) == 1 else 's'}"
            if labels
            else f"no dev label: default {result.calibration.default:g}"
        )
        bands.append(f"  training count {span:<14} threshold {band.threshold:.2f}  ({where})\n")
    return table + "\nbands:\n" + "".join(bands)


def parse_edges(text: str) -> tuple[int, ...]:
    """``"0,100,1000"`` -> ``(0, 100, 1000)`` (``--bands``); ValueError naming the flag."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"--bands must be comma-separated integers >= 0, e.g. 0,100,1000,10000; got {text!r}"
        ) from None
    return check_edges(values, "--bands")


def read_label_counts(path: str | Path) -> dict[str, int]:
    """A JSON object label -> count of gold spans in the training data (``--label-counts``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ValueError(f"cannot read {path}: no such file") from None
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object label -> count, got {type(data).__name__}")
    return keyed_values(data, str(path), "label counts", checked_count)


__all__ = [
    "DevResult",
    "FitResult",
    "ScoredSet",
    "fit_bands",
    "format_fit",
    "parse_edges",
    "read_label_counts",
    "redecode",
    "score_dev_set",
]
