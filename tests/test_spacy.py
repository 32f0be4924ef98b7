"""The spaCy component: doc.ents / doc.spans, the alignment policy, nlp.pipe batching, the factory."""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

spacy = pytest.importorskip("spacy", reason='spaCy is not installed (pip install "anyner[spacy]")')

from anyner.pipeline import AnyNER  # noqa: E402
from anyner.spacy import AnyNERComponent, make_anyner  # noqa: E402
from tests.conftest import StubModel  # noqa: E402

BILL = "Bill Gates founded Microsoft on April 4, 1975."
BILL_LABELS = ["person", "organization", "date"]

# spaCy keeps "BillGates" and "Microsoft.com" as one token and "Yorkers" whole
TRICKY = "I met BillGates and Ann Lee at Microsoft.com, New Yorkers said."
FOUND = [  # what the stub model finds in TRICKY: (text, label, score)
    ("Ann Lee", "person", 0.95),
    ("Bill", "person", 0.9),  # inside the token "BillGates"
    ("Microsoft", "organization", 0.85),  # inside "Microsoft.com"
    ("Gates", "person", 0.8),  # inside "BillGates" too
    ("New York", "city", 0.7),  # ends inside "Yorkers"
]


@pytest.fixture
def fake(monkeypatch) -> StubModel:
    """``nlp.add_pipe("anyner", config={"model": "fake", ...})`` gets a stub model that finds
    every occurrence of the phrases of FOUND (``fake.phrases``); it records each call's texts
    and batch size, to check how the component batches."""
    model = StubModel(FOUND)

    def load(name=None, **kwargs):
        assert name == "fake"
        return model

    monkeypatch.setattr(AnyNER, "from_pretrained", staticmethod(load))
    return model


def pipeline(**config):
    nlp = spacy.blank("en")
    config = {"labels": ["person", "organization", "city"], "model": "fake", **config}
    return nlp, nlp.add_pipe("anyner", config=config)


def ents(doc):
    return [(e.text, e.label_, e._.anyner_score) for e in doc.ents]


def dropped(doc):
    return [(d["text"], d["reason"]) for d in doc._.anyner_dropped]


# ---------------------------------------------------------------------------- the alignment policy


@pytest.mark.parametrize(
    "mode, expected_ents, expected_dropped",
    [
        (
            "expand",
            [("BillGates", "person", 0.9), ("Ann Lee", "person", 0.95),
             ("Microsoft.com", "organization", 0.85), ("New Yorkers", "city", 0.7)],
            [("Gates", "conflict")],  # expands onto the token that "Bill" (higher score) took
        ),
        (
            "contract",
            [("Ann Lee", "person", 0.95), ("New", "city", 0.7)],
            [("Bill", "unaligned"), ("Microsoft", "unaligned"), ("Gates", "unaligned")],
        ),
        (
            "strict",
            [("Ann Lee", "person", 0.95)],
            [("Bill", "unaligned"), ("Microsoft", "unaligned"), ("Gates", "unaligned"), ("New York", "unaligned")],
        ),
    ],
)  # fmt: skip
def test_alignment_modes(fake, caplog, mode, expected_ents, expected_dropped):
    nlp, component = pipeline(alignment_mode=mode)
    with caplog.at_level(logging.WARNING, logger="anyner.spacy"):
        doc = nlp(TRICKY)
    assert ents(doc) == expected_ents
    assert all(e.start_char <= TRICKY.index(e.text) for e in doc.ents)
    assert sorted(dropped(doc)) == sorted(expected_dropped)
    record = doc._.anyner_dropped[0]  # the entity as anyner found it, not the aligned span
    assert TRICKY[record["start"] : record["end"]] == record["text"]
    assert record["component"] == "anyner" and 0 < record["score"] <= 1
    # counted and reported, never lost: every entity found is either set or listed
    assert len(doc.ents) + len(doc._.anyner_dropped) == len(FOUND)
    assert component.stats["found"] == len(FOUND) and component.stats["set"] == len(doc.ents)
    assert sum(component.stats[r] for r in ("unaligned", "conflict")) == len(expected_dropped)
    (message,) = [r.getMessage() for r in caplog.records]
    assert f"{len(expected_dropped)} of {len(FOUND)} entities" in message and "anyner_dropped" in message


def test_clean_doc_has_an_empty_drop_list_and_no_warning(fake, caplog):
    nlp, _ = pipeline(alignment_mode="strict")
    with caplog.at_level(logging.WARNING, logger="anyner.spacy"):
        doc = nlp("Ann Lee left.")
    assert ents(doc) == [("Ann Lee", "person", 0.95)]
    assert doc._.anyner_dropped == [] and not caplog.records


def test_nested_fills_doc_spans_and_leaves_ents_alone(fake):
    fake.phrases = [*FOUND, ("Ann", "person", 0.6), ("Microsoft.com", "organization", 0.5)]
    nlp, _ = pipeline(nested=True, spans_key="found")
    doc = nlp(TRICKY)
    assert doc.ents == ()
    got = [(s.text, s.label_, s._.anyner_score) for s in doc.spans["found"]]
    assert got == [
        ("BillGates", "person", 0.9),
        ("Ann Lee", "person", 0.95),
        ("Ann", "person", 0.6),  # nested inside "Ann Lee": kept
        ("Microsoft.com", "organization", 0.85),
        ("New Yorkers", "city", 0.7),
    ]
    # the same tokens twice (after expansion) keep the best score
    assert sorted(dropped(doc)) == [("Gates", "conflict"), ("Microsoft.com", "conflict")]


def test_existing_entities_are_kept_unless_overwrite_ents(fake):
    for overwrite, expected in [
        (False, [("Ann Lee", "PERSON", None), ("Microsoft.com", "organization", 0.85)]),
        (True, [("Ann Lee", "person", 0.95), ("Microsoft.com", "organization", 0.85)]),
    ]:
        fake.phrases = [("Ann Lee", "person", 0.95), ("Microsoft", "organization", 0.85)]
        nlp = spacy.blank("en")
        nlp.add_pipe("entity_ruler").add_patterns([{"label": "PERSON", "pattern": "Ann Lee"}])
        nlp.add_pipe(
            "anyner",
            config={"labels": ["person", "organization"], "model": "fake", "overwrite_ents": overwrite},
        )
        doc = nlp(TRICKY)
        assert ents(doc) == expected
        assert dropped(doc) == ([] if overwrite else [("Ann Lee", "conflict")])


# ---------------------------------------------------------------------------- batching, empty docs


def test_pipe_batches_docs_and_equals_one_doc_at_a_time(fake):
    texts = [TRICKY, "", "Ann Lee met Bill.", "   ", "New York, New York.", "nothing here"]
    nlp, _ = pipeline(batch_size=3)
    one_by_one = [nlp(t) for t in texts]
    fake.calls.clear()
    piped = list(nlp.pipe(texts, batch_size=4))
    assert [len(call["texts"]) for call in fake.calls] == [4, 2]  # one predict_batch per group of docs
    assert {call["batch_size"] for call in fake.calls} == {3}  # the component's batch_size is the model's
    assert [d.text for d in piped] == texts
    for a, b in zip(one_by_one, piped, strict=True):
        assert ents(a) == ents(b) and dropped(a) == dropped(b)
    assert ents(piped[4]) == [("New York", "city", 0.7), ("New York", "city", 0.7)]


def test_empty_doc(fake):
    nlp, component = pipeline()
    for text in ("", "  \n "):
        doc = nlp(text)
        assert doc.ents == () and doc._.anyner_dropped == []
    nlp, _ = pipeline(nested=True)
    assert list(nlp("").spans["anyner"]) == []


# ---------------------------------------------------------------------------- the built-in model


@pytest.fixture(scope="module")
def builtin_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("anyner", config={"labels": BILL_LABELS})  # model None: the built-in model
    return nlp


@pytest.fixture
def builtin_loader(builtin_nlp, monkeypatch):
    """Further pipelines reuse the built-in model already loaded, instead of loading it again."""
    model = builtin_nlp.get_pipe("anyner").ner
    monkeypatch.setattr(AnyNER, "from_pretrained", staticmethod(lambda name=None, **kw: model))
    return model


def test_builtin_model_finds_people_and_companies(builtin_nlp):
    doc = builtin_nlp(BILL)
    found = {(e.text, e.label_) for e in doc.ents}
    assert {("Bill Gates", "person"), ("Microsoft", "organization")} <= found
    assert all(0.5 <= e._.anyner_score <= 1.0 for e in doc.ents)
    assert [t.ent_iob_ for t in doc[:3]] == ["B", "I", "O"] and doc[0].ent_type_ == "person"
    assert doc._.anyner_dropped == []


def test_builtin_nested_and_label_descriptions(builtin_loader):
    nlp = spacy.blank("en")
    nlp.add_pipe("anyner", config={"labels": BILL_LABELS, "nested": True, "threshold": 0.3})
    doc = nlp(BILL)
    spans = {(s.text, s.label_) for s in doc.spans["anyner"]}
    assert {("Bill Gates", "person"), ("Microsoft", "organization")} <= spans
    dates = [s for s in doc.spans["anyner"] if s.label_ == "date"]
    assert len(dates) >= 2 and all(s.start >= dates[0].start and s.end <= dates[0].end for s in dates)
    assert doc.ents == ()

    nlp = spacy.blank("en")
    described = {"who": "person", "company": "organization"}
    nlp.add_pipe("anyner", config={"labels": described})
    assert {("Bill Gates", "who"), ("Microsoft", "company")} <= {(e.text, e.label_) for e in nlp(BILL).ents}


def test_builtin_pipe_equals_one_doc_at_a_time(builtin_nlp):
    texts = [
        BILL,
        "",
        "Angela Merkel met Emmanuel Macron in Paris.",
        "Apple released the iPhone in 2007.",
    ]
    one_by_one = [builtin_nlp(t) for t in texts]
    piped = list(builtin_nlp.pipe(texts, batch_size=2))
    for a, b in zip(one_by_one, piped, strict=True):
        assert [(e.start, e.end, e.label_) for e in a.ents] == [(e.start, e.end, e.label_) for e in b.ents]
        for x, y in zip(a.ents, b.ents, strict=True):
            assert x._.anyner_score == pytest.approx(y._.anyner_score, abs=1e-4)
    assert piped[1].ents == () and piped[0].ents


def test_config_errors_are_clear(builtin_loader):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="needs labels"):
        nlp.add_pipe("anyner")
    with pytest.raises(ValueError, match="alignment_mode"):
        nlp.add_pipe("anyner", config={"labels": ["person"], "alignment_mode": "nearest"})
    with pytest.raises(ValueError, match="blank"):  # the model's own label check, at construction
        nlp.add_pipe("anyner", config={"labels": ["person", " "]})
    with pytest.raises(ValueError, match="not asked for"):
        nlp.add_pipe("anyner", config={"labels": ["person"], "threshold": {"city": 0.2}})
    with pytest.raises(ValueError, match="batch_size"):
        AnyNERComponent("x", builtin_loader, ["person"], batch_size=0)
    assert nlp.pipe_names == []


# ---------------------------------------------------------------------------- packaging


def test_factory_is_an_entry_point():
    (ep,) = [ep for ep in entry_points(group="spacy_factories") if ep.name == "anyner"]
    assert ep.value == "anyner.spacy:make_anyner" and ep.load() is make_anyner
    assert "anyner" in spacy.blank("en").factory_names


def test_importing_anyner_does_not_import_spacy():
    code = "import sys, anyner; assert 'spacy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_missing_spacy_gives_an_install_hint(monkeypatch):
    for name in [m for m in sys.modules if m == "spacy" or m.startswith("spacy.")]:
        monkeypatch.setitem(sys.modules, name, None)  # importing spaCy now fails
    monkeypatch.delitem(sys.modules, "anyner.spacy")  # restored afterwards
    with pytest.raises(ImportError, match=r'pip install "anyner\[spacy\]"'):
        importlib.import_module("anyner.spacy")
