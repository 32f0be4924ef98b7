"""Benchmark evaluation: the metric against hand counts, the whole path with a stub model, the CLI,
and one real OOD run with a tiny random model."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from anyner import evaluate
from anyner.cli import main
from anyner.evaluate import (
    DATASET_COLUMNS,
    PAPER_COLUMNS,
    PAPER_F1,
    DatasetResult,
    Scores,
    SuiteResult,
    benchmark_folders,
    evaluate_folder,
    format_comparison,
    prf,
    scores_from_counts,
    suite_folder,
)
from tests.conftest import StubModel

JSON_KEYS = {"precision", "recall", "f1", "sentences", "gold", "predicted"}

# ---------------------------------------------------------------------- metric


def test_prf_against_hand_counts():
    gold = [{(0, 4, "person"), (5, 9, "city"), (10, 12, "date")}, {(0, 3, "org")}]
    pred = [{(0, 4, "person"), (5, 9, "person")}, {(0, 3, "org"), (4, 6, "org"), (7, 9, "org")}]
    s = prf(gold, pred)  # gold 4, predicted 5, correct 2
    assert (s.gold, s.predicted, s.correct) == (4, 5, 2)
    assert s.precision == pytest.approx(40.0)
    assert s.recall == pytest.approx(50.0)
    assert s.f1 == pytest.approx(2 * 40 * 50 / 90)


def test_prf_perfect_and_disjoint():
    keys = [{(0, 1, "a")}, {(2, 3, "b"), (4, 5, "c")}]
    assert prf(keys, keys) == Scores(100.0, 100.0, 100.0, 3, 3, 3)
    assert prf(keys, [{(0, 1, "b")}, {(2, 3, "c")}]) == Scores(0.0, 0.0, 0.0, 3, 2, 0)


def test_prf_empty_cases_guard_zero_division():
    assert prf([], []) == Scores(0.0, 0.0, 0.0, 0, 0, 0)
    assert prf([set(), set()], [set(), set()]) == Scores(0.0, 0.0, 0.0, 0, 0, 0)
    assert prf([set()], [{(0, 1, "x")}]) == Scores(0.0, 0.0, 0.0, 0, 1, 0)  # no gold: recall 0
    assert prf([{(0, 1, "x")}], [set()]) == Scores(0.0, 0.0, 0.0, 1, 0, 0)  # no prediction: precision 0


def test_prf_duplicates_count_once_and_sentences_stay_apart():
    a = (0, 2, "x")
    assert prf([[a, a]], [[a, a, (3, 4, "y")]]) == scores_from_counts(1, 2, 1)
    # The same key in another sentence is another entity: no match across sentences.
    assert prf([{a}, set()], [set(), {a}]).correct == 0


def test_prf_and_counts_reject_inconsistent_input():
    with pytest.raises(ValueError):
        prf([set()], [set(), set()])
    with pytest.raises(ValueError, match="inconsistent"):
        scores_from_counts(1, 1, 2)
    with pytest.raises(ValueError, match="inconsistent"):
        scores_from_counts(-1, 0, 0)


def test_paper_table_is_consistent():
    assert set(DATASET_COLUMNS.values()) == set(PAPER_COLUMNS)
    assert DATASET_COLUMNS["mit-movie"] == "Movie" and DATASET_COLUMNS["CrossNER_AI"] == "AI"
    for row in PAPER_F1.values():
        assert sum(row[c] for c in PAPER_COLUMNS) / len(PAPER_COLUMNS) == pytest.approx(
            row["Average"], abs=0.05
        )
    assert PAPER_F1["GLiNER-L"]["Music"] == 69.6 and PAPER_F1["ChatGPT"]["Movie"] == 5.3


def test_comparison_averages_the_shown_columns():
    def result(name: str, f1: float) -> DatasetResult:
        return DatasetResult(name, Scores(f1, f1, f1, 1, 1, 1), 1, ["x"])

    text = format_comparison(SuiteResult([result("CrossNER_AI", 10.0), result("mit-movie", 20.0)]))
    header, ours, small = text.splitlines()[:3]
    assert header.split() == ["F1", "Movie", "AI", "Average"]  # the paper's column order
    assert ours.split()[-3:] == ["20.0", "10.0", "15.0"]
    assert small.split()[-1] == f"{(46.9 + 50.7) / 2:.1f}"  # not the paper's 7-set average
    assert format_comparison(SuiteResult([result("conll2003", 1.0)])) == ""


def test_whitespace_mapping_keeps_every_word_aligned_span():
    rng = random.Random(0)
    for _ in range(200):
        words = [rng.choice(["a", "bc", "Déf", "1,5", "-"]) for _ in range(rng.randint(1, 6))]
        seps = [rng.choice([" ", "  ", "\t", "\u00a0", " \n "]) for _ in words]
        sentence = rng.choice(["", " ", "\t"]) + "".join(w + s for w, s in zip(words, seps, strict=True))
        ws, orig, joined = evaluate._whitespace_view(sentence)
        text = " ".join(ws)
        assert ws == words
        i = rng.randrange(len(words))
        j = rng.randrange(i, len(words))
        start, end = orig[i], orig[j] + len(words[j])
        mapped = evaluate._map_span(start, end, ws, orig, joined)
        assert mapped is not None and mapped[2]
        assert text[mapped[0] : mapped[1]] == " ".join(sentence[start:end].split())
        if start > 0 and sentence[start - 1].isspace():
            assert evaluate._map_span(start - 1, end, ws, orig, joined) is None


# ---------------------------------------------------------------------- whole path with a stub model

RECORDS = [
    # 0: two gold; "Seattle" is predicted with the wrong label.
    {"sentence": "Bill Gates lives in Seattle .", "entities": [
        {"name": "Bill Gates", "type": "Person", "pos": [0, 10]},
        {"name": "Seattle", "type": "city", "pos": [20, 27]}]},
    # 1: runs of whitespace: the model reads "Ada Lovelace met Babbage"; gold moves there.
    {"sentence": "Ada   Lovelace  met\tBabbage", "entities": [
        {"name": "Ada   Lovelace", "type": "PERSON", "pos": [0, 14]},
        {"name": "Babbage", "type": "person", "pos": [20, 27]}]},
    # 2: a type not prompted, a span inside a word ("r" of "rated"), and a span starting on a space.
    {"sentence": "rated r film by Acme", "entities": [
        {"name": "r", "type": "rating", "pos": [0, 1]},
        {"name": "Acme", "type": "misc", "pos": [16, 20]},
        {"name": " Acme", "type": "organization", "pos": [15, 20]}]},
    # 3: leading spaces.
    {"sentence": "   Paris .", "entities": [{"name": "Paris", "type": "City", "pos": [3, 8]}]},
]  # fmt: skip
PHRASES = {"Bill Gates": "person", "Seattle": "organization", "Ada Lovelace": "PERSON", "Babbage": "person",
           "Acme": "organization", "Paris": "city"}  # fmt: skip


@pytest.fixture
def bench(tmp_path) -> Path:
    folder = tmp_path / "tiny-bench"
    folder.mkdir()
    (folder / "test.json").write_text(json.dumps(RECORDS), encoding="utf-8")
    (folder / "labels.json").write_text(json.dumps(["Person", "City", "Organization", "Rating"]))
    return folder


def test_evaluate_folder_whole_path(bench):
    model = StubModel(PHRASES)
    r = evaluate_folder(model, bench)
    (call,) = model.calls
    assert call["method"] == "words" and call["labels"] == ["person", "city", "organization", "rating"]
    assert call["texts"][1] == "Ada Lovelace met Babbage" and call["texts"][3] == "Paris ."
    assert (call["threshold"], call["flat"], call["batch_size"]) == (0.5, True, 8)
    # gold 2+2+3+1 = 8; predicted 2+2+1+1 = 6; correct: Bill Gates, Ada Lovelace, Babbage, Paris.
    assert (r.scores.gold, r.scores.predicted, r.scores.correct) == (8, 6, 4)
    assert r.scores.precision == pytest.approx(100 * 4 / 6)
    assert r.scores.recall == pytest.approx(50.0)
    assert (r.sentences, r.unmapped, r.off_boundary, r.unprompted) == (4, 1, 1, {"misc": 1})
    assert r.name == "tiny-bench" and r.column is None


def test_evaluate_folder_raw_sentences_with_gliner_words(bench):
    model = StubModel(PHRASES)
    r = evaluate_folder(model, bench, words="gliner")
    assert model.calls[0]["method"] == "batch"
    assert model.calls[0]["texts"] == [x["sentence"] for x in RECORDS]
    # On the raw sentence "Ada Lovelace" is not found and the gold keeps its own offsets.
    assert (r.scores.gold, r.scores.predicted, r.scores.correct) == (8, 5, 3)
    assert (r.unmapped, r.off_boundary) == (0, 2)  # " Acme" starts on a space: not a word start


def test_limit_threshold_and_nested_pass_through(bench):
    model = StubModel(PHRASES)
    r = evaluate_folder(model, bench, limit=2, threshold=0.25, flat=False, batch_size=3)
    assert r.sentences == 2 and r.scores.gold == 4 and len(model.calls[0]["texts"]) == 2
    assert (model.calls[0]["threshold"], model.calls[0]["flat"], model.calls[0]["batch_size"]) == (
        0.25,
        False,
        3,
    )
    for bad in ({"limit": 0}, {"threshold": 1.5}, {"batch_size": 0}, {"words": "spacy"}):
        with pytest.raises(ValueError):
            evaluate_folder(model, bench, **bad)


def test_malformed_benchmark_names_the_record(bench):
    records = [*RECORDS, {"sentence": "short", "entities": [{"type": "x", "pos": [3, 99]}]}]
    (bench / "test.json").write_text(json.dumps(records))
    with pytest.raises(ValueError, match="record 4.*outside"):
        evaluate_folder(StubModel({}), bench)


def test_benchmark_folders_expand_and_check(bench, tmp_path):
    other = tmp_path / "a-bench"
    other.mkdir()
    for name in ("test.json", "labels.json"):
        (other / name).write_text((bench / name).read_text())
    assert benchmark_folders([bench]) == [bench]
    assert benchmark_folders([tmp_path]) == [other, bench]  # sorted by name
    with pytest.raises(ValueError, match="not a benchmark folder"):
        benchmark_folders([tmp_path / "missing"])
    with pytest.raises(ValueError, match="not a benchmark folder"):
        benchmark_folders([bench], split="dev")


def test_suite_folder_from_env_and_clear_error(tmp_path, monkeypatch):
    ood = tmp_path / "data" / "benchmark" / "ood"
    ood.mkdir(parents=True)
    monkeypatch.setenv("ANYNER_SHARED", str(tmp_path))
    assert suite_folder("ood") == ood
    monkeypatch.setitem(evaluate.SUITES, "ood", ("data", "absent"))
    with pytest.raises(ValueError, match="ANYNER_SHARED"):
        suite_folder("ood")


# ---------------------------------------------------------------------- CLI


@pytest.fixture
def stub_loader(monkeypatch):
    from anyner.pipeline import AnyNER

    made: list[StubModel] = []

    def load(model=None, **kwargs):
        if model == "missing":
            raise OSError("no such model")
        made.append(StubModel(PHRASES))
        return made[-1]

    monkeypatch.setattr(AnyNER, "from_pretrained", staticmethod(load))
    return made


def test_cli_json_shape_and_table(bench, tmp_path, stub_loader, capsys):
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--model", "stub", "--data", str(bench), "--json", str(out), "--nested"]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"datasets", "average_f1"}
    assert set(data["datasets"]) == {"tiny-bench"}
    scores = data["datasets"]["tiny-bench"]
    assert set(scores) == JSON_KEYS
    assert (scores["gold"], scores["predicted"], scores["sentences"]) == (8, 6, 4)
    assert scores["recall"] == pytest.approx(50.0) and data["average_f1"] == pytest.approx(scores["f1"])
    assert stub_loader[0].calls[0]["flat"] is False
    text = capsys.readouterr().out
    assert "tiny-bench" in text and "misc 1" in text and "(paper)" not in text


def test_cli_exit_codes(bench, tmp_path, stub_loader, capsys):
    assert main(["evaluate", "--model", "missing", "--data", str(bench)]) == 1
    assert "cannot load the model" in capsys.readouterr().err
    assert main(["evaluate", "--model", "stub", "--data", str(tmp_path / "nowhere")]) == 2
    assert main(["evaluate", "--model", "stub"]) == 2
    assert "--suite ood" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(bench), "--limit", "0"]) == 2
    assert main(["evaluate", "--data", str(bench), "--threshold", "2"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--words", "spacy", "--data", str(bench)])
    assert exc.value.code == 2
    assert not stub_loader  # bad data and arguments fail before a model is loaded


def test_cli_help_has_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "anyner evaluate --model" in text and "Exit status" in text


# ---------------------------------------------------------------------- real data, tiny random model


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, minilm_dir) -> Path:
    from anyner import AnyNER

    torch.manual_seed(0)
    model = AnyNER.from_encoder(minilm_dir, hidden_size=64, num_rnn_layers=0)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # spread the random head's scores so that entities appear
        for name, p in model.model.named_parameters():
            if not name.startswith("encoder.transformer"):
                scale = 1.5 / math.sqrt(p.shape[-1]) if p.dim() == 2 else 0.1
                p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.save_pretrained(tmp_path_factory.mktemp("tiny_model"))


@pytest.mark.slow
def test_cli_on_real_ood_suite(shared, tiny_model_dir, tmp_path, monkeypatch, capsys):
    ood = shared / "data" / "benchmark" / "ood"
    if not ood.is_dir():
        pytest.skip(f"{ood} is absent")
    monkeypatch.setenv("ANYNER_SHARED", str(shared))
    out = tmp_path / "ood.json"
    argv = ["evaluate", "--model", str(tiny_model_dir), "--suite", "ood", "--limit", "5", "--json", str(out)]
    assert main(argv) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"datasets", "average_f1"}
    assert set(data["datasets"]) == set(DATASET_COLUMNS)
    for name, scores in data["datasets"].items():
        assert set(scores) == JSON_KEYS
        records = json.loads((ood / name / "test.json").read_text())[:5]
        assert scores["sentences"] == 5
        assert scores["gold"] == sum(len(r["entities"]) for r in records)
        assert 0.0 <= scores["f1"] <= 100.0
    f1s = [s["f1"] for s in data["datasets"].values()]
    assert data["average_f1"] == pytest.approx(sum(f1s) / len(f1s))
    text = capsys.readouterr().out
    assert "GLiNER-L (paper)" in text and "ChatGPT (paper)" in text and "first 5 sentences" in text
