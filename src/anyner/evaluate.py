"""Zero-shot NER evaluation on benchmark folders: exact-match micro precision, recall and F1.

A benchmark folder holds ``test.json`` (``[{"sentence", "entities": [{"name", "type",
"pos": [start, end)}]}]``, character offsets) and ``labels.json``. The protocol is the
GLiNER paper's: prompt with the names in ``labels.json``, lowercase them and the gold
types, threshold 0.5, flat decoding; a prediction is correct when its character span
and type equal a gold entity's, on the string the model read. Gold entities are never
dropped: those no prediction can match (no span in that string, boundaries inside a
word, a type not prompted) stay in gold, lower recall, and are counted in the report.
The metric functions (``prf``, ``scores_from_counts``) need no model and no torch.
"""

from __future__ import annotations

import json
import os
import sys
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from anyner.data.benchmark import LABELS_FILE, read_benchmark_labels
from anyner.types import Entity
from anyner.words import split_words

WordsMode = Literal["whitespace", "gliner"]
WORDS_MODES: tuple[str, ...] = ("whitespace", "gliner")

# Table 1 of the GLiNER paper (zero-shot F1, exact span and type, micro-averaged per dataset).
PAPER_COLUMNS: tuple[str, ...] = ("Movie", "Restaurant", "AI", "Literature", "Music", "Politics", "Science")
PAPER_F1: dict[str, dict[str, float]] = {
    model: dict(zip((*PAPER_COLUMNS, "Average"), row, strict=True))
    for model, row in {
        "ChatGPT": (5.3, 32.8, 52.4, 39.8, 66.6, 68.5, 67.0, 47.5),
        "UniNER-7B": (42.4, 31.7, 53.6, 59.3, 67.0, 60.9, 61.1, 53.7),
        "GLiNER-S": (46.9, 33.3, 50.7, 60.0, 60.9, 61.5, 55.6, 52.7),
        "GLiNER-M": (42.9, 37.3, 51.8, 59.7, 69.4, 68.6, 58.1, 55.4),
        "GLiNER-L": (57.2, 42.9, 57.2, 64.4, 69.6, 72.6, 62.6, 60.9),
    }.items()
}
_CROSSNER = ("AI", "literature", "music", "politics", "science")
DATASET_COLUMNS: dict[str, str] = dict(
    zip(("mit-movie", "mit-restaurant", *(f"CrossNER_{x}" for x in _CROSSNER)), PAPER_COLUMNS, strict=True)
)
COMPARED_MODELS: tuple[str, ...] = ("GLiNER-S", "GLiNER-M", "GLiNER-L", "ChatGPT")
SUITES: dict[str, tuple[str, ...]] = {"ood": ("data", "benchmark", "ood")}


@dataclass(frozen=True, slots=True)
class Scores:
    """Micro-averaged exact-match scores.

    Attributes:
        precision: ``correct / predicted`` in percent (0 when nothing was predicted).
        recall: ``correct / gold`` in percent (0 when there is no gold entity).
        f1: harmonic mean of precision and recall in percent (0 when both are 0).
        gold: number of gold entities.
        predicted: number of predicted entities.
        correct: number of predictions equal to a gold entity.
    """

    precision: float
    recall: float
    f1: float
    gold: int
    predicted: int
    correct: int


def scores_from_counts(gold: int, predicted: int, correct: int) -> Scores:
    """Precision, recall and F1 (in percent) from entity counts, guarding zero divisions.

    Raises:
        ValueError: a count is negative or ``correct`` exceeds ``gold`` or ``predicted``.
    """
    if min(gold, predicted, correct) < 0 or correct > min(gold, predicted):
        raise ValueError(f"inconsistent counts: gold={gold}, predicted={predicted}, correct={correct}")
    p = 100.0 * correct / predicted if predicted else 0.0
    r = 100.0 * correct / gold if gold else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return Scores(p, r, f1, gold, predicted, correct)


def prf(gold: Iterable[Collection[Hashable]], predicted: Iterable[Collection[Hashable]]) -> Scores:
    """Exact-match micro scores over sentences: one collection of entity keys per sentence.

    A key is anything hashable, e.g. ``(start, end, label)``; a prediction is correct
    when the same key is in the sentence's gold. Each collection is taken as a set,
    so a repeated key counts once on either side.

    Example:
        >>> prf([{(0, 4, "person")}], [{(0, 4, "person"), (5, 9, "city")}]).f1
        66.66666666666667

    Raises:
        ValueError: ``gold`` and ``predicted`` hold different numbers of sentences.
    """
    n_gold = n_pred = n_correct = 0
    for g, p in zip(gold, predicted, strict=True):
        g, p = set(g), set(p)
        n_gold, n_pred, n_correct = n_gold + len(g), n_pred + len(p), n_correct + len(g & p)
    return scores_from_counts(n_gold, n_pred, n_correct)


@dataclass(frozen=True, slots=True)
class Unmapped:
    """A gold key for an entity with no span in the string the model read: it matches nothing."""

    record: int
    index: int
    label: str


@dataclass(slots=True)
class _Sentence:
    """One record as the model reads it: its text or words, and its gold keys."""

    text: str
    words: list[str] | None  # None: the model splits ``text`` itself
    gold: set[Hashable] = field(default_factory=set)


def _whitespace_view(sentence: str) -> tuple[list[str], list[int], list[int]]:
    """Words of ``sentence.split()`` with their starts in ``sentence`` and in ``" ".join(words)``."""
    words = sentence.split()
    orig, joined, pos, out = [], [], 0, 0
    for w in words:
        # find() after the previous word follows split()'s own notion of whitespace exactly.
        pos = sentence.find(w, pos)
        orig.append(pos)
        joined.append(out)
        pos, out = pos + len(w), out + len(w) + 1
    return words, orig, joined


def _map_span(
    start: int, end: int, words: list[str], orig: list[int], joined: list[int]
) -> tuple[int, int, bool] | None:
    """Move a character span of the sentence to the joined string: (start, end, on word boundaries).

    None when the span starts or ends on whitespace, which the joined string does not keep.
    """
    i, j = bisect_right(orig, start) - 1, bisect_right(orig, end - 1) - 1
    if i < 0 or j < 0 or start >= orig[i] + len(words[i]) or end > orig[j] + len(words[j]):
        return None
    aligned = start == orig[i] and end == orig[j] + len(words[j])
    return joined[i] + start - orig[i], joined[j] + end - orig[j], aligned


def _check_record(record: Any, where: str) -> tuple[str, list[tuple[int, int, str]]]:
    if not isinstance(record, dict) or not isinstance(record.get("sentence"), str):
        raise ValueError(f"{where}: expected an object with a 'sentence' string")
    if not isinstance(record.get("entities", []), list):
        raise ValueError(f"{where}: 'entities' must be a list")
    sentence, spans = record["sentence"], []
    for e in record.get("entities", []):
        pos = e.get("pos") if isinstance(e, dict) else None
        ok = isinstance(pos, list) and len(pos) == 2 and all(type(x) is int for x in pos)
        if not ok or not isinstance(e.get("type"), str) or not e["type"].strip():
            raise ValueError(f"{where}: expected an entity with 'pos': [start, end] and a 'type', got {e!r}")
        if not 0 <= pos[0] < pos[1] <= len(sentence):
            raise ValueError(f"{where}: span {pos} is empty or outside the {len(sentence)} characters")
        spans.append((pos[0], pos[1], e["type"].strip().lower()))
    return sentence, spans


def _gold(
    sentence: str, spans: list[tuple[int, int, str]], record: int, words: str, notes: Counter[str]
) -> _Sentence:
    """The text the model reads for ``sentence`` and its gold keys on that text."""
    if words == "whitespace":
        ws, orig, joined = _whitespace_view(sentence)
        item = _Sentence(" ".join(ws), ws)
    else:
        bounds = split_words(sentence)
        starts, ends = {w.start for w in bounds}, {w.end for w in bounds}
        item = _Sentence(sentence, None)
    for k, (start, end, label) in enumerate(spans):
        key: Hashable
        if words == "whitespace":
            mapped = _map_span(start, end, ws, orig, joined)
            key = Unmapped(record, k, label) if mapped is None else (mapped[0], mapped[1], label)
            notes["unmapped"] += mapped is None
            notes["off_boundary"] += mapped is not None and not mapped[2]
        else:
            key = (start, end, label)
            notes["off_boundary"] += start not in starts or end not in ends
        notes["duplicates"] += key in item.gold
        item.gold.add(key)
    return item


class Predictor(Protocol):
    """What evaluation needs of a model (``AnyNER`` has both methods)."""

    def predict_batch(self, texts: Sequence[str], labels: Any, **kwargs: Any) -> list[list[Entity]]: ...

    def predict_words(
        self, words: Sequence[Sequence[str]], labels: Any, **kwargs: Any
    ) -> list[list[Entity]]: ...


@dataclass(slots=True)
class DatasetResult:
    """Scores of one benchmark folder and what the reader noticed on the way.

    Attributes:
        name: the folder name, e.g. ``CrossNER_AI``.
        scores: micro scores in percent with entity counts.
        sentences: records evaluated.
        labels: the lowercased label names the model was prompted with.
        unmapped: gold entities with no span in the string the model read.
        off_boundary: gold entities starting or ending inside a word the model read.
        unprompted: gold types (lowercased) that are not among ``labels``, with counts.
        duplicates: repeated gold entities (same span and type) in a sentence, counted once.
    """

    name: str
    scores: Scores
    sentences: int
    labels: list[str]
    unmapped: int = 0
    off_boundary: int = 0
    unprompted: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0

    @property
    def column(self) -> str | None:
        """The paper's column for this dataset (``mit-movie`` -> ``Movie``), None if not in the paper."""
        return DATASET_COLUMNS.get(self.name)

    def to_json(self) -> dict[str, Any]:
        """The dataset's entry of ``--json`` output: P/R/F1 in percent and counts."""
        s = self.scores
        prf_ = {"precision": s.precision, "recall": s.recall, "f1": s.f1}
        return {**prf_, "sentences": self.sentences, "gold": s.gold, "predicted": s.predicted}


@dataclass(slots=True)
class SuiteResult:
    """Results of several benchmark folders."""

    datasets: list[DatasetResult]

    @property
    def average_f1(self) -> float:
        """Mean of the datasets' F1 in percent (the paper's "Average" column); 0 when empty."""
        return sum(d.scores.f1 for d in self.datasets) / len(self.datasets) if self.datasets else 0.0

    def to_json(self) -> dict[str, Any]:
        """``{"datasets": {name: {...}}, "average_f1": ...}`` with P/R/F1 in percent."""
        return {"datasets": {d.name: d.to_json() for d in self.datasets}, "average_f1": self.average_f1}


def evaluate_folder(
    model: Predictor,
    folder: str | Path,
    *,
    threshold: float | Literal["auto"] = 0.5,
    flat: bool = True,
    limit: int | None = None,
    batch_size: int = 8,
    words: WordsMode = "whitespace",
    split: str = "test",
    progress: bool = False,
) -> DatasetResult:
    """Score a model on one benchmark folder with the paper's protocol.

    One quirk is kept for comparability with the paper's figures: CrossNER_music's
    gold types ``organisation`` and ``misc`` are not in its ``labels.json`` (which
    says ``organization`` and ``else``), so those 379 gold entities stay in gold and
    can never match, for any model.

    Args:
        model: an ``AnyNER`` or any object with ``predict_words`` and ``predict_batch``.
        folder: a folder with ``<split>.json`` and ``labels.json``.
        threshold: minimum score of a predicted entity, or ``"auto"``: the model's calibrated
            thresholds (its ``calibration.json``; see :mod:`anyner.calibration`).
        flat: flat decoding (True, the paper's setting) or nested entities allowed.
        limit: evaluate only the first ``limit`` records.
        batch_size: texts per model batch.
        words: ``"whitespace"``: the sentence split on whitespace and read as
            ``" ".join(words)`` (what the paper's evaluation fed the model; gold offsets
            are moved to that string); ``"gliner"``: the raw sentence, split by the model.
        split: the split file's stem.
        progress: show a progress bar on stderr.

    Raises:
        ValueError: bad arguments or a malformed benchmark file.
        FileNotFoundError: the folder lacks ``labels.json`` or the split file.
    """
    if words not in WORDS_MODES:
        raise ValueError(f"words must be one of {WORDS_MODES}, got {words!r}")
    for what, value in (("limit", 1 if limit is None else limit), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be a positive integer, got {value!r}")
    if threshold != "auto" and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1] or 'auto', got {threshold!r}")
    folder = Path(folder)
    labels, sentences, (notes, unprompted) = read_folder(folder, split=split, limit=limit, words=words)
    predicted = _predict(
        model, sentences, labels, folder.name, progress, batch_size=batch_size, threshold=threshold, flat=flat
    )
    scores = prf((s.gold for s in sentences), predicted)
    return DatasetResult(
        folder.name, scores, len(sentences), labels, notes["unmapped"], notes["off_boundary"],
        dict(unprompted), notes["duplicates"],
    )  # fmt: skip


def read_folder(
    folder: str | Path, *, split: str = "test", limit: int | None = None, words: WordsMode = "whitespace"
) -> tuple[list[str], list[_Sentence], tuple[Counter[str], Counter[str]]]:
    """A benchmark folder as :func:`evaluate_folder` reads it: the lowercased labels, each record's
    text (and words) with its gold keys, and the notes (unmapped, off_boundary, duplicates) and
    gold types not prompted, with counts. Also for :func:`anyner.calibrate.score_dev_set`."""
    if words not in WORDS_MODES:
        raise ValueError(f"words must be one of {WORDS_MODES}, got {words!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer, got {limit!r}")
    folder = Path(folder)
    path = folder / f"{split}.json"
    try:
        with open(path, encoding="utf-8-sig") as handle:
            records = json.load(handle)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
    if not isinstance(records, list):
        raise ValueError(f"{path}: expected a JSON list of records")
    records = records[:limit] if limit is not None else records
    labels = list(dict.fromkeys(x.strip().lower() for x in read_benchmark_labels(folder)))
    known = set(labels)
    sentences, notes, unprompted = [], Counter(), Counter()
    for r, record in enumerate(records):
        sentence, spans = _check_record(record, f"{path}: record {r}")
        unprompted.update(label for _, _, label in spans if label not in known)
        sentences.append(_gold(sentence, spans, r, words, notes))
    return labels, sentences, (notes, unprompted)


def _predict(
    model: Predictor, sentences: list[_Sentence], labels: list[str], name: str, progress: bool, **kwargs: Any
) -> list[set[tuple[int, int, str]]]:
    from tqdm.auto import tqdm

    out: list[set[tuple[int, int, str]]] = []
    # Chunks of many batches keep the model's length bucketing useful while the bar moves.
    chunk = max(kwargs["batch_size"] * 32, 256)
    with tqdm(total=len(sentences), desc=name, unit="sent", file=sys.stderr, disable=not progress) as bar:
        for a in range(0, len(sentences), chunk):
            part = sentences[a : a + chunk]
            if part[0].words is not None:
                found = model.predict_words([s.words for s in part], labels, **kwargs)
            else:
                found = model.predict_batch([s.text for s in part], labels, **kwargs)
            out.extend({(e.start, e.end, e.label.lower()) for e in ents} for ents in found)
            bar.update(len(part))
    return out


def evaluate_suite(model: Predictor, folders: Iterable[str | Path], **options: Any) -> SuiteResult:
    """Score a model on several benchmark folders; ``options`` are those of :func:`evaluate_folder`."""
    return SuiteResult([evaluate_folder(model, f, **options) for f in folders])


def benchmark_folders(paths: Iterable[str | Path], split: str = "test") -> list[Path]:
    """Benchmark folders from paths: a benchmark folder, or a folder of them (sorted by name).

    Raises:
        ValueError: a path is neither, or two different folders share a name.
    """

    def is_benchmark_folder(path: Path) -> bool:
        return (path / LABELS_FILE).is_file() and (path / f"{split}.json").is_file()

    out: dict[str, Path] = {}
    for p in map(Path, paths):
        found = [p] if is_benchmark_folder(p) else []
        if not found and p.is_dir():
            found = sorted((c for c in p.iterdir() if is_benchmark_folder(c)), key=lambda c: c.name)
        if not found:
            raise ValueError(
                f"{p} is not a benchmark folder ({LABELS_FILE} and {split}.json) nor a folder of them"
            )
        for f in found:
            if f.name in out and out[f.name].resolve() != f.resolve():
                raise ValueError(f"two benchmark folders are named {f.name!r}: {out[f.name]} and {f}")
            out[f.name] = f
    return list(out.values())


def suite_folder(name: str) -> Path:
    """The folder of a named suite (``ood``) under ``$ANYNER_SHARED`` or ``../shared`` beside the repo.

    Raises:
        ValueError: unknown suite, or the shared data folder is absent.
    """
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
    repo = Path(__file__).resolve().parents[2]  # src/anyner/evaluate.py -> the repository
    tried = [Path(x) for x in (os.environ.get("ANYNER_SHARED"), repo.parent / "shared") if x]
    for shared in tried:
        if shared.joinpath(*SUITES[name]).is_dir():
            return shared.joinpath(*SUITES[name])
    raise ValueError(
        f"the {name!r} suite is absent: looked for {'/'.join(SUITES[name])} under "
        f"{', '.join(map(str, tried))}; set ANYNER_SHARED to the shared folder or pass --data"
    )


def text_grid(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(header), *map(list, rows)]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    # The first column holds names (left-aligned), the others numbers (right-aligned).
    cells = [
        [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))] for r in rows
    ]
    return "".join("  ".join(r).rstrip() + "\n" for r in cells)


def format_table(suite: SuiteResult) -> str:
    """Per-dataset sentences, entity counts and P/R/F1 (percent), with the average F1."""
    rows = [
        (d.name, str(d.sentences), str(d.scores.gold), str(d.scores.predicted), str(d.scores.correct),
         f"{d.scores.precision:.1f}", f"{d.scores.recall:.1f}", f"{d.scores.f1:.1f}")
        for d in suite.datasets
    ]  # fmt: skip
    rows.append(("Average", "", "", "", "", "", "", f"{suite.average_f1:.1f}"))
    return text_grid(("dataset", "sentences", "gold", "predicted", "correct", "P", "R", "F1"), rows)


def format_comparison(suite: SuiteResult, models: Sequence[str] = COMPARED_MODELS) -> str:
    """F1 beside the paper's rows, one column per dataset in the paper; "" when none is.

    The paper's Average is its published one when all seven datasets are shown, else
    the mean of the shown columns, so that both rows average the same datasets.
    """
    shown = sorted((d for d in suite.datasets if d.column), key=lambda d: PAPER_COLUMNS.index(d.column or ""))
    if not shown:
        return ""
    cols = [d.column or "" for d in shown]
    ours = ["this model", *(f"{d.scores.f1:.1f}" for d in shown)]
    ours.append(f"{sum(d.scores.f1 for d in shown) / len(shown):.1f}")
    rows, full = [ours], sorted(cols) == sorted(PAPER_COLUMNS)
    for m in models:
        paper = PAPER_F1[m]
        avg = paper["Average"] if full else sum(paper[c] for c in cols) / len(cols)
        rows.append([f"{m} (paper)", *(f"{paper[c]:.1f}" for c in cols), f"{avg:.1f}"])
    return text_grid(("F1", *cols, "Average"), rows)


def format_notes(suite: SuiteResult) -> str:
    """What no prediction can match (kept in gold, lowering recall) and repeated gold, per dataset."""
    lines = []
    for d in suite.datasets:
        kinds = ", ".join(f"{t} {n}" for t, n in sorted(d.unprompted.items()))
        for n, what in [
            (sum(d.unprompted.values()), f"gold entities of types not in labels.json ({kinds}) never match"),
            (d.unmapped, "gold spans have no span in the text the model read and never match"),
            (d.off_boundary, "gold spans start or end inside a word and never match"),
            (d.duplicates, "repeated gold entities are counted once"),
        ]:
            lines += [f"  {d.name}: {n} {what}\n"] if n else []
    return "notes (unmatched gold stays in gold and lowers recall):\n" + "".join(lines) if lines else ""
