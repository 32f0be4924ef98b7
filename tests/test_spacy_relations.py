"""The spaCy component's relations: ``doc._.anyner_relations`` holds the spans the relation's
entities became, a relation whose entity was not set is listed in ``doc._.anyner_dropped``, the
relations survive serialization, and on a relation model they are the Python API's."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

spacy = pytest.importorskip("spacy", reason='spaCy is not installed (pip install "anyner[spacy]")')

from spacy.tokens import Doc, DocBin  # noqa: E402

from anyner import AnyNER, Relation  # noqa: E402
from anyner.spacy import AnyNERComponent  # noqa: E402
from tests.conftest import RELATIONS, StubModel, ood_sample  # noqa: E402

# spaCy keeps "BillGates" and "Microsoft.com" as one token and "Yorkers" whole
TRICKY = "I met BillGates and Ann Lee at Microsoft.com, New Yorkers said."
FOUND = [
    ("Ann Lee", "person", 0.95),
    ("Bill", "person", 0.9),  # inside the token "BillGates"
    ("Microsoft", "organization", 0.85),  # inside "Microsoft.com"
    ("Gates", "person", 0.8),  # inside "BillGates" too
    ("New York", "city", 0.7),  # ends inside "Yorkers"
]
LINKS = [  # what the stub finds between them: (head, relation, tail, score)
    ("Ann Lee", "works for", "Microsoft", 0.8),
    ("Bill", "works for", "Microsoft", 0.7),
    ("Gates", "knows", "Ann Lee", 0.6),
    ("Ann Lee", "lives in", "New York", 0.5),
]
LABELS = ["person", "organization", "city"]


class RelexStub(StubModel):
    """A relation model without a network: the entities of :data:`FOUND` and the relations of
    :data:`LINKS` between their first occurrences."""

    config = SimpleNamespace(
        name="relex-stub", encoder="none", max_len=384, model_type="uni_encoder_span_relex"
    )

    def batch_predict_relations(self, texts, labels, relations, **options):
        out = []
        for ents in self._run("relations", list(texts), labels, {"relations": relations, **options}):
            first = {}
            for i, e in enumerate(ents):
                first.setdefault(e.text, i)
            rels = [
                Relation(ents[first[h]], ents[first[t]], label, score, first[h], first[t])
                for h, label, t, score in LINKS
                if h in first and t in first
            ]
            out.append((ents, rels))
        return out


@pytest.fixture
def fake(monkeypatch) -> RelexStub:
    """``config={"model": "fake"}`` loads a :class:`RelexStub`."""
    model = RelexStub(FOUND)

    def load(name=None, **kwargs):
        assert name == "fake"
        return model

    monkeypatch.setattr(AnyNER, "from_pretrained", staticmethod(load))
    return model


def pipeline(**config):
    nlp = spacy.blank("en")
    config = {"labels": LABELS, "model": "fake", "relations": ["works for", "knows", "lives in"], **config}
    return nlp, nlp.add_pipe("anyner", config=config)


def relations(doc) -> list[tuple]:
    return [
        (r["head"].text, r["head"].label_, r["label"], r["tail"].text, r["tail"].label_, r["score"])
        for r in doc._.anyner_relations
    ]


def dropped_relations(doc) -> list[tuple]:
    return [
        (d["head"]["text"], d["label"], d["tail"]["text"], d["endpoint"])
        for d in doc._.anyner_dropped
        if d["reason"] == "relation endpoint dropped"
    ]


# ---------------------------------------------------------------------------- on a stub model


def test_relations_hold_the_spans_their_entities_became(fake, caplog):
    nlp, component = pipeline()  # alignment_mode "expand"
    with caplog.at_level(logging.WARNING, logger="anyner.spacy"):
        doc = nlp(TRICKY)
    assert relations(doc) == [
        ("Ann Lee", "person", "works for", "Microsoft.com", "organization", 0.8),
        ("BillGates", "person", "works for", "Microsoft.com", "organization", 0.7),
        ("Ann Lee", "person", "lives in", "New Yorkers", "city", 0.5),
    ]
    for r in doc._.anyner_relations:  # the very spans of doc.ents, with their scores
        assert r["head"] in doc.ents and r["tail"] in doc.ents
        assert r["head"]._.anyner_score is not None
    # "Gates" lost its token to "Bill" (a conflict): its relation is listed, not lost
    assert dropped_relations(doc) == [("Gates", "knows", "Ann Lee", "head")]
    (record,) = [d for d in doc._.anyner_dropped if "endpoint" in d]
    assert record["head"] == {"start": 10, "end": 15, "text": "Gates", "label": "person", "score": 0.8}
    assert record["component"] == "anyner" and record["score"] == 0.6
    assert [d["text"] for d in doc._.anyner_dropped if d["reason"] == "conflict"] == ["Gates"]
    assert component.stats["relations_found"] == 4 and component.stats["relations_set"] == 3
    assert component.stats["relation endpoint dropped"] == 1
    (message,) = [r.getMessage() for r in caplog.records]
    assert "1 of 5 entities and 1 of 4 relations" in message and "anyner_dropped" in message
    (call,) = [c for c in fake.calls if c["texts"] == [TRICKY]]
    assert call["relations"] == ["works for", "knows", "lives in"] and call["flat"] is True


def test_a_relation_is_listed_with_the_endpoints_that_were_not_set(fake):
    nlp, component = pipeline(alignment_mode="contract")
    doc = nlp(TRICKY)
    assert relations(doc) == [("Ann Lee", "person", "lives in", "New", "city", 0.5)]
    assert sorted(dropped_relations(doc)) == [
        ("Ann Lee", "works for", "Microsoft", "tail"),
        ("Bill", "works for", "Microsoft", "head and tail"),
        ("Gates", "knows", "Ann Lee", "head"),
    ]
    # every relation found is either set or listed
    assert len(doc._.anyner_relations) + len(dropped_relations(doc)) == len(LINKS)


def test_nested_relations_point_at_the_span_group(fake):
    nlp, _ = pipeline(nested=True, spans_key="found")
    doc = nlp(TRICKY)
    assert doc.ents == ()
    group = list(doc.spans["found"])
    assert [(r[0], r[2], r[3]) for r in relations(doc)] == [
        ("Ann Lee", "works for", "Microsoft.com"),
        ("BillGates", "works for", "Microsoft.com"),
        ("Ann Lee", "lives in", "New Yorkers"),
    ]
    assert all(r["head"] in group and r["tail"] in group for r in doc._.anyner_relations)
    assert fake.calls[-1]["flat"] is False


def test_relations_survive_serialization_and_pipe(fake):
    nlp, _ = pipeline(batch_size=2)
    texts = [TRICKY, "", "Ann Lee met nobody.", TRICKY]
    one_by_one = [nlp(t) for t in texts]
    piped = list(nlp.pipe(texts, batch_size=3))
    assert [relations(d) for d in piped] == [relations(d) for d in one_by_one]
    assert len(relations(piped[0])) == 3 and relations(piped[1]) == relations(piped[2]) == []
    # spans are computed on access from token offsets: the doc still serializes, relations included
    again = Doc(nlp.vocab).from_bytes(piped[0].to_bytes())
    assert relations(again) == relations(piped[0])
    box = DocBin(store_user_data=True, docs=piped)
    assert [relations(d) for d in DocBin().from_bytes(box.to_bytes()).get_docs(nlp.vocab)] == [
        relations(d) for d in piped
    ]


def test_relations_off_gives_an_empty_list(fake):
    nlp, _ = pipeline(relations=None)
    doc = nlp(TRICKY)
    assert doc._.anyner_relations == [] and doc.ents
    assert all(c["method"] == "batch" for c in fake.calls)  # predict_batch: entities only
    assert spacy.blank("en")("not annotated")._.anyner_relations == []


def test_relation_config_errors(fake, tiny_bert_dir):
    nlp = spacy.blank("en")
    with pytest.raises(ValueError, match="relation_threshold applies to relations only"):
        nlp.add_pipe("anyner", config={"labels": LABELS, "model": "fake", "relation_threshold": 0.3})
    with pytest.raises(ValueError, match="relation_threshold must be a number in"):
        nlp.add_pipe("anyner", config={"labels": LABELS, "model": "fake", "relations": ["knows"],
                                       "relation_threshold": 2.0})  # fmt: skip
    with pytest.raises(TypeError, match="not the string"):
        AnyNERComponent("x", fake, LABELS, relations="knows")
    # an entity model: the relation API refuses it, at construction
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    entity_model = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0)
    with pytest.raises(NotImplementedError, match="need a relation-extraction model.*uni_encoder_span model"):
        AnyNERComponent("x", entity_model, LABELS, relations=["knows"])
    assert nlp.pipe_names == []


def test_the_builtin_model_finds_relations():
    """The built-in model's relation model (builtin/relations) serves the component: the doc's
    relations are the Python API's, between the doc's entities."""
    pytest.importorskip("torch")
    text = "Marie Curie was born in Warsaw and worked at the University of Paris."
    labels, relations = ["person", "city", "organization"], ["place of birth", "employer"]
    nlp = spacy.blank("en")
    nlp.add_pipe("anyner", config={"labels": labels, "relations": relations})
    doc = nlp(text)
    _, want = AnyNER.from_pretrained().predict_relations(text, labels, relations)
    got = [(r["head"].text, r["tail"].text, r["label"]) for r in doc._.anyner_relations]
    assert got == [(r.head.text, r.tail.text, r.label) for r in want] and got
    assert all(r["head"] in doc.ents and r["tail"] in doc.ents for r in doc._.anyner_relations)


# ---------------------------------------------------------------------------- on a relation model


def aligned(doc, e) -> tuple[int, int, str]:
    """The span an entity becomes: the whole tokens it touches (alignment "expand")."""
    span = doc.char_span(e.start, e.end, alignment_mode="expand")
    return span.start_char, span.end_char, e.label


@pytest.mark.slow
def test_relations_equal_the_python_api(relex_dot, shared):
    from tests.test_relex import calibrate

    model = AnyNER.from_pretrained(relex_dot)
    threshold, adjacency, relation = calibrate(model, ood_sample(shared, per_set=1), per_set=1)
    sets = {name: (sentences, labels) for name, sentences, labels in ood_sample(shared, per_set=2)}
    literature, labels = sets["CrossNER_literature"]
    texts = [*literature, sets["CrossNER_music"][0][0]]
    want = model.batch_predict_relations(
        texts,
        labels,
        RELATIONS,
        threshold=threshold,
        adjacency_threshold=adjacency,
        relation_threshold=relation,
    )
    assert sum(len(rels) for _, rels in want) > 0, "the calibrated thresholds find relations"

    nlp = spacy.blank("en")
    nlp.add_pipe("anyner", config={
        "labels": labels, "model": str(relex_dot), "relations": RELATIONS, "threshold": threshold,
        "relation_threshold": relation, "adjacency_threshold": adjacency,
    })  # fmt: skip
    docs = list(nlp.pipe(texts, batch_size=len(texts)))  # one group: the model's batch is the API's
    for doc, (ents, rels) in zip(docs, want, strict=True):
        assert doc._.anyner_dropped == []

        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == sorted(
            aligned(doc, e) for e in ents
        )
        got = [
            ((r["head"].start_char, r["head"].end_char, r["head"].label_),
             (r["tail"].start_char, r["tail"].end_char, r["tail"].label_), r["label"])
            for r in doc._.anyner_relations
        ]  # fmt: skip
        assert got == [(aligned(doc, r.head), aligned(doc, r.tail), r.label) for r in rels]
        assert [r["score"] for r in doc._.anyner_relations] == pytest.approx(
            [r.score for r in rels], abs=1e-6
        )
        assert all(r["head"] in doc.ents and r["tail"] in doc.ents for r in doc._.anyner_relations)
