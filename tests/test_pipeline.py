"""The prediction API: arguments, labels, thresholds, windows, label groups, save/load."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from anyner import AnyNER
from anyner.featurize import plan_windows
from tests.conftest import check_entities, same_entities, spread_head

TEXT = "Bill Gates founded Microsoft on April 4, 1975 in Albuquerque, New Mexico."
LABELS = ["person", "organization", "date", "location"]


@pytest.fixture(scope="session")
def base_model(minilm_dir) -> AnyNER:
    torch.manual_seed(0)
    model = AnyNER.from_encoder(minilm_dir, hidden_size=128, num_rnn_layers=1)
    spread_head(model)
    return model


@pytest.fixture
def model(base_model) -> AnyNER:
    return copy.deepcopy(base_model)


def test_predict_returns_sorted_valid_entities(model):
    ents = model.predict(TEXT, LABELS)
    assert ents, "the random head is spread enough to find something"
    check_entities(TEXT, ents)
    assert {e.label for e in ents} <= set(LABELS)
    assert model.predict_entities(TEXT, LABELS) == [e.to_dict() for e in ents]


def test_nested_and_multi_label_are_supersets_of_flat(model):
    flat = model.predict(TEXT, LABELS, threshold=0.3)
    nested = model.predict(TEXT, LABELS, threshold=0.3, flat=False)
    multi = model.predict(TEXT, LABELS, threshold=0.3, flat=False, multi_label=True)
    check_entities(TEXT, nested, flat=False)
    assert len(flat) <= len(nested) <= len(multi)
    best = max(multi, key=lambda e: e.score)
    assert best in flat and best in nested


def test_empty_and_blank_texts_give_no_entities(model):
    assert model.predict("", LABELS) == []
    assert model.predict_batch(["", "  \n\t", TEXT], LABELS)[:2] == [[], []]


def test_threshold_bounds_and_per_label(model):
    assert model.predict(TEXT, LABELS, threshold=1.0) == []
    everything = model.predict(TEXT, LABELS, threshold=0.0, flat=False, multi_label=True)
    assert len(everything) > 0
    per_label = model.predict(TEXT, LABELS, threshold={"person": 1.0, "date": 1.0}, flat=False)
    assert not {e.label for e in per_label} & {"person", "date"}
    with pytest.raises(ValueError, match="threshold"):
        model.predict(TEXT, LABELS, threshold=1.5)
    with pytest.raises(ValueError, match="not asked for"):
        model.predict(TEXT, LABELS, threshold={"animal": 0.2})


@pytest.mark.parametrize(
    "labels, error",
    [
        ([], ValueError),
        ("person", TypeError),
        (["person", ""], ValueError),
        (["  "], ValueError),
        (["<<ENT>>"], ValueError),
        (["a <<SEP>> b"], ValueError),
        ([1, 2], TypeError),
        (None, TypeError),
    ],
)
def test_bad_labels_get_clear_errors(model, labels, error):
    with pytest.raises(error):
        model.predict(TEXT, labels)


def test_bad_texts_get_clear_errors(model):
    with pytest.raises(TypeError):
        model.predict(None, LABELS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        model.predict_batch("one string", LABELS)
    with pytest.raises(ValueError, match="label lists"):
        model.predict_batch([TEXT, TEXT], [LABELS])
    with pytest.raises(ValueError, match="batch_size"):
        model.predict_batch([TEXT], LABELS, batch_size=0)


def test_duplicate_labels_collapse(model):
    assert model.predict(TEXT, LABELS + ["person"]) == model.predict(TEXT, LABELS)


def test_descriptions_are_read_and_labels_are_returned(model):
    described = {"who": "person", "company": "organization", "when": "date", "where": "location"}
    plain = model.predict(TEXT, list(described.values()))
    named = model.predict(TEXT, described)
    rename = {v: k for k, v in described.items()}
    assert [(e.start, e.end, rename[e.label], e.score) for e in plain] == [
        (e.start, e.end, e.label, e.score) for e in named
    ]


def test_batch_equals_single_and_per_text_labels(model):
    texts = [TEXT, "Angela Merkel visited Paris in 2019.", "No entities here maybe."]
    batch = model.predict_batch(texts, LABELS, batch_size=2)
    for t, ents in zip(texts, batch, strict=True):
        single = model.predict(t, LABELS)
        assert [(e.start, e.end, e.label) for e in ents] == [(e.start, e.end, e.label) for e in single]
        assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(ents, single, strict=True))
    per_text = model.predict_batch(texts[:2], [["person"], ["location", "date"]])
    assert {e.label for e in per_text[0]} <= {"person"}
    assert {e.label for e in per_text[1]} <= {"location", "date"}


@pytest.mark.parametrize(
    "n, budget, max_words", [(10, 100, 384), (1000, 37, 384), (1000, 10_000, 50), (300, 5, 7)]
)
def test_plan_windows_cover_and_bound(n, budget, max_words):
    counts = [1 + (i * 7919) % 3 for i in range(n)]
    K, overlap = 12, 24
    windows = plan_windows(counts, budget, max_words, overlap)
    cores = [core for _, _, core in windows]
    assert cores[0][0] == 0 and cores[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:], strict=False))  # cores partition the words
    for a, b, (c0, c1) in windows:
        assert a <= c0 <= c1 <= b
        assert b - a <= max_words
        assert sum(counts[a:b]) <= budget or b - a == 1
        if b - a > 2 * overlap:  # wide enough windows hold every short span starting in their core
            assert all(s + K <= b or s + K > n for s in range(c0, c1))


def test_long_text_is_windowed_without_loss(model):
    model.config = dataclasses.replace(model.config, max_len=30)  # force many windows on a modest text
    text = " ".join([TEXT] * 40)
    ents = model.predict(text, LABELS, flat=True)
    check_entities(text, ents)
    assert len({(e.start, e.end, e.label) for e in ents}) == len(ents)
    assert max(e.start for e in ents) > len(text) // 2, "entities are found past the first window"


def test_many_labels_are_split_into_groups(model):
    labels = [f"type number {i}" for i in range(400)]
    groups = model.featurizer.label_groups(model.featurizer.label_set(labels))
    assert len(groups) > 1 and sum(n for _, n in groups) == 400
    ents = model.predict(TEXT, labels, threshold=0.9)
    check_entities(TEXT, ents)
    assert {e.label for e in ents} <= set(labels)


def test_a_copied_model_keeps_its_own_label_groups(model):
    labels = [f"type number {i}" for i in range(200)]
    groups = model.featurizer.label_groups(model.featurizer.label_set(labels))
    small = copy.deepcopy(model)
    small.max_tokens = model.max_tokens // 4  # a copy with a smaller subword limit
    fewer = small.featurizer.label_groups(small.featurizer.label_set(labels))
    assert len(fewer) > len(groups)  # computed for its own limit, not read from the original
    assert sum(n for _, n in fewer) == 200
    assert model.featurizer.label_groups(model.featurizer.label_set(labels)) == groups


def test_save_and_reload_give_the_same_entities(model, tmp_path):
    folder = model.save_pretrained(tmp_path / "m")
    again = AnyNER.from_pretrained(folder, encoder_module="transformers")  # the module it was saved from
    assert again.predict(TEXT, LABELS) == model.predict(TEXT, LABELS)
    # anyner's BERT module (the default for this MiniLM folder): the same entities, scores to float error
    same_entities(AnyNER.from_pretrained(folder).predict(TEXT, LABELS), model.predict(TEXT, LABELS))
