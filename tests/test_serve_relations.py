"""The HTTP server with relations: ``relations`` in ``POST /v1/entities`` for a relation-extraction
model (answers as ``batch_predict_relations`` gives them), its validation, the queue it shares
with entity requests, ``relations`` in ``GET /v1/model``, and the refusal of an entity-only model.

The relation model is the ``relex_dot`` fixture (a span relex checkpoint with a random head, saved
by the reference gliner package), its thresholds calibrated on OOD sentences as tests/test_relex.py
does; the server's own rules are checked against a stub that extracts relations.
"""

from __future__ import annotations

import threading
import warnings

import pytest
import torch

pytest.importorskip("fastapi", reason="the server needs FastAPI")
pytest.importorskip("uvicorn", reason="the server needs uvicorn")

with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 to httpx
    warnings.filterwarnings("ignore", message=".*httpx", category=UserWarning)
    from fastapi.testclient import TestClient

from anyner import AnyNER, serve  # noqa: E402
from anyner.serve import RELATION_FIELDS, Limits, create_app  # noqa: E402
from anyner.serve import _per_text as per_text  # noqa: E402
from anyner.types import Relation  # noqa: E402
from tests.conftest import RELATIONS, StubModel, in_thread, ood_sample, same_entities, wait_until  # noqa: E402
from tests.test_serve import client_for, queue_in_order  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

REQUEST_FIELDS = {"text", "texts", "labels", "threshold", "flat", "nested", "multi_label", "html"}
TOL = 1e-5  # a batch padded otherwise moves a score by ~1e-7


class RelationStub(StubModel):
    """A :class:`StubModel` that extracts relations: between each two neighbouring entities, the
    first relation asked for (score 0.8); its calls say ``method: "relations"`` and ``relations``."""

    extracts_relations = True

    def batch_predict_relations(self, texts, labels, relations, **options):
        found = self._run("relations", list(texts), labels, {"relations": relations, **options})
        name = next(iter(relations))
        return [
            (
                ents,
                [
                    Relation(a, b, name, 0.8, i, i + 1)
                    for i, (a, b) in enumerate(zip(ents, ents[1:], strict=False))
                ],
            )
            for ents in found
        ]


def body_validator(client: TestClient):
    """A JSON Schema validator of the app's published request body (OpenAPI 3.1 is JSON Schema 2020-12)."""
    jsonschema = pytest.importorskip("jsonschema", reason="the schema checks need jsonschema")
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/entities"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**body, "components": doc["components"]})


def same_relations(got: list[dict], want: list[Relation]) -> None:
    """The relations of an answer are ``want`` (``Relation.to_dict``): all but scores equal, scores within TOL."""
    want_dicts = [r.to_dict() for r in want]
    assert [{k: v for k, v in r.items() if k != "score"} for r in got] == [
        {k: v for k, v in r.items() if k != "score"} for r in want_dicts
    ]
    for a, b in zip(got, want_dicts, strict=True):
        assert abs(a["score"] - b["score"]) <= TOL, (a, b)


# ---------------------------------------------------------------------- a relation model


@pytest.fixture(scope="module")
def relex_model(relex_dot) -> AnyNER:
    return AnyNER.from_pretrained(relex_dot)


@pytest.fixture(scope="module")
def sample(shared) -> list[tuple[str, list[str], list[str]]]:
    """(dataset, 2 sentences, labels) per OOD set."""
    return [(name, s[:2], labels) for name, s, labels in ood_sample(shared, per_set=2)]


@pytest.fixture(scope="module")
def thresholds(relex_model, sample) -> dict[str, float]:
    from tests.test_relex import calibrate

    threshold, adjacency, relation = calibrate(relex_model, sample, per_set=1)
    assert adjacency is not None, "the dot layer filters pairs"
    return {"threshold": threshold, "adjacency_threshold": adjacency, "relation_threshold": relation}


@pytest.mark.slow
def test_one_text_answers_as_batch_predict_relations(relex_model, sample, thresholds):
    texts = [(text, labels) for _, sentences, labels in sample for text in sentences]
    with client_for(relex_model) as client:
        assert client.get("/v1/model").json()["relations"] is True
        seen = 0
        for text, labels in texts[:6]:
            r = client.post(
                "/v1/entities", json={"text": text, "labels": labels, "relations": RELATIONS, **thresholds}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert set(body) == {"entities", "relations"}
            [(ents, rels)] = relex_model.batch_predict_relations([text], labels, RELATIONS, **thresholds)
            same_entities(body["entities"], ents)
            same_relations(body["relations"], rels)
            for rel in body["relations"]:
                for end in ("head", "tail"):
                    entity = body["entities"][rel[end]["entity_idx"]]
                    assert (entity["start"], entity["end"], entity["label"]) == (
                        rel[end]["start"], rel[end]["end"], rel[end]["type"],
                    )  # fmt: skip
                    assert text[entity["start"] : entity["end"]] == rel[end]["text"]
            seen += len(rels)
        # without relations, the answer is the entities alone, as before
        text, labels = texts[0]
        r = client.post(
            "/v1/entities", json={"text": text, "labels": labels, "threshold": thresholds["threshold"]}
        )
        assert set(r.json()) == {"entities"}
        same_entities(
            r.json()["entities"], relex_model.predict(text, labels, threshold=thresholds["threshold"])
        )
    assert seen > 0, "the calibrated thresholds give relations"


@pytest.mark.slow
def test_a_batch_with_one_relation_set_per_text(relex_model, sample, thresholds):
    """A batch of texts from several sets, each with its own labels and relations (a list, a dict
    relation -> description, a subset), in one request: each text's answer as batch_predict_relations
    gives it, with its own relations; the html option still works."""
    texts = [s for _, sentences, _ in sample[:3] for s in sentences]
    labels = [labels for _, sentences, labels in sample[:3] for _ in sentences]
    relations = [
        RELATIONS,
        {f"R{i}": r for i, r in enumerate(RELATIONS)},
        RELATIONS[:2],
        RELATIONS,
        RELATIONS[2:],
        {"works for": "is employed by", "part of": "belongs to"},
    ]
    assert len(texts) == len(relations) == 6
    want = relex_model.batch_predict_relations(texts, labels, relations, **thresholds)
    with client_for(relex_model, batch_size=4) as client:
        body = {"texts": texts, "labels": labels, "relations": relations, "html": True, **thresholds}
        r = client.post("/v1/entities", json=body)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        # one relation set for all texts, and the empty batch (its arguments are still checked)
        one_set = client.post("/v1/entities", json={**body, "relations": RELATIONS}).json()["results"]
        empty = client.post(
            "/v1/entities", json={**body, "texts": [], "labels": labels[0], "relations": RELATIONS}
        )
        assert empty.status_code == 200 and empty.json() == {"results": []}
        r = client.post("/v1/entities", json={**body, "texts": [], "labels": labels[0]})
        assert r.status_code == 422 and "relations has 6 relation sets for 0 texts" in r.json()["detail"]
    assert len(results) == len(texts)
    for i, (result, (ents, rels)) in enumerate(zip(results, want, strict=True)):
        assert set(result) == {"entities", "relations", "html", "table"}
        same_entities(result["entities"], ents)
        same_relations(result["relations"], rels)
        names = set(relations[i])  # a dict's keys are its names
        assert {rel["relation"] for rel in result["relations"]} <= names, i
    assert sum(len(result["relations"]) for result in results) > 0
    assert {rel["relation"] for rel in results[1]["relations"]} <= {f"R{i}" for i in range(len(RELATIONS))}
    for result, (ents, rels) in zip(
        one_set, relex_model.batch_predict_relations(texts, labels, RELATIONS, **thresholds), strict=True
    ):
        same_entities(result["entities"], ents)
        same_relations(result["relations"], rels)


@pytest.mark.slow
def test_the_model_s_own_refusals_are_422(relex_model):
    text = "Bill Gates founded Microsoft in Albuquerque with Paul Allen."
    labels = ["person", "organization", "location"]
    with client_for(relex_model) as client:
        r = client.post("/v1/entities", json={"text": text, "labels": labels, "relations": ["a <<REL>> b"]})
        assert r.status_code == 422 and "prompt token '<<REL>>'" in r.json()["detail"]
        many = [f"relation {i:02d}" for i in range(50)]
        long = [f"{name} with a very long description of what this relation means" for name in many]
        r = client.post(
            "/v1/entities",
            json={"text": text, "labels": labels, "relations": dict(zip(many, long, strict=True))},
        )
        assert r.status_code == 422 and "one prompt" in r.json()["detail"]
        r = client.post("/v1/entities", json={"text": text, "labels": labels, "relations": ["founded"]})
        assert r.status_code == 200 and isinstance(r.json()["relations"], list)


# ---------------------------------------------------------------------- an entity-only model


@pytest.fixture(scope="module")
def entity_model(minilm_dir) -> AnyNER:
    torch.manual_seed(0)
    return AnyNER.from_encoder(minilm_dir, hidden_size=64, num_rnn_layers=0)


@pytest.mark.parametrize(
    "extra",
    [
        {"relations": ["founded"]},
        {"relations": {"founded": "started"}, "relation_threshold": 0.4},
        {"relation_threshold": 0.4},
        {"adjacency_threshold": 0.4},
    ],
)
def test_an_entity_only_model_refuses_relations(entity_model, extra):
    """An AnyNER span model finds entities only: /v1/model says so, its schema has no relation
    fields, and a request naming one is refused 422, saying why; entity requests go on."""
    with pytest.raises(NotImplementedError, match="needs a relation-extraction model"):
        entity_model.predict_relations("Bill Gates", ["person"], ["founded"])
    assert not serve.extracts_relations(entity_model)
    with client_for(entity_model) as client:
        assert client.get("/v1/model").json()["relations"] is False
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
        assert not set(RELATION_FIELDS) & {
            *schemas["TextRequest"]["properties"],
            *schemas["BatchRequest"]["properties"],
        }
        for body in (
            {"text": "Bill Gates founded Microsoft.", "labels": ["person"]},
            {"texts": ["a"], "labels": ["x"]},
        ):
            r = client.post("/v1/entities", json={**body, **extra})
            assert r.status_code == 422, r.text
            [issue] = r.json()["detail"]
            assert "the loaded model finds entities only" in issue["msg"]
            assert f"`{next(iter(extra))}` needs a relation-extraction model" in issue["msg"]
            assert "`GET /v1/model` says `relations: false`" in issue["msg"]
            assert client.post("/v1/entities", json=body).status_code == 200


def test_only_models_that_extract_relations_are_asked():
    assert not serve.extracts_relations(StubModel())  # no batch_predict_relations
    assert serve.extracts_relations(RelationStub())

    class SaysNo(RelationStub):
        extracts_relations = False

    assert not serve.extracts_relations(SaysNo())
    with client_for(SaysNo()) as client:
        assert client.get("/v1/model").json()["relations"] is False
        r = client.post("/v1/entities", json={"text": "a", "labels": ["x"], "relations": ["r"]})
        assert r.status_code == 422 and "finds entities only" in r.text


# ---------------------------------------------------------------------- the schema and validation


def test_the_schema_documents_the_relation_fields():
    with client_for(RelationStub()) as client:
        doc = client.get("/openapi.json").json()
        validator = body_validator(client)
        schemas = doc["components"]["schemas"]
        one, batch = schemas["TextRequest"], schemas["BatchRequest"]
        for model in (one, batch):
            for name in RELATION_FIELDS:
                field = model["properties"][name]
                assert field.get("description"), name
                assert "default" not in field, "absent means not asked; null is refused"
                assert name not in model["required"]
        # a batch also takes one relation set per text (a third form)
        assert (
            len(batch["properties"]["relations"]["anyOf"])
            == 3
            == len(one["properties"]["relations"]["anyOf"]) + 1
        )
        assert one["properties"]["relations"]["anyOf"][0]["minItems"] == 1
        examples = [e for model in (one, batch) for e in model["examples"]]
        assert [set(RELATION_FIELDS) & set(e) for e in examples] == [
            set(),
            {"relations", "relation_threshold"},
            set(),
            {"relations", "adjacency_threshold"},
        ]
        assert per_text(examples[3]["relations"]), "a batch's example gives one relation set per text"
        for example in examples:  # each example is valid, and accepted
            assert validator.is_valid(example), example
            r = client.post("/v1/entities", json=example)
            assert r.status_code == 200, r.text
            assert ("relations" in example) == all(
                "relations" in x for x in r.json().get("results", [r.json()])
            )
        assert schemas["ModelInfo"]["properties"]["relations"]["type"] == "boolean"
        assert schemas["TextResult"]["properties"]["relations"].get("description")
        out = schemas["RelationOut"]["properties"]
        assert set(out) == {"head", "tail", "relation", "score"}
        assert set(schemas["RelationEndOut"]["properties"]) == {"start", "end", "text", "type", "entity_idx"}
        post = doc["paths"]["/v1/entities"]["post"]
        assert (
            "relations" in post["summary"]
            and "also an entity label" in post["responses"]["422"]["description"]
        )


def test_the_relation_request_models_name_no_files():
    """As tests/test_serve.py's review of the request fields: the relation models add the three
    relation fields, none of which could name a path."""
    for models in (
        (serve.RelationTextRequest, serve.RelationBatchRequest),
        serve.request_models(Limits(), relations=True),
    ):
        fields = {name: f for model in models for name, f in model.model_fields.items()}
        assert set(fields) == REQUEST_FIELDS | set(RELATION_FIELDS)
        for name, field in fields.items():
            assert "Path" not in repr(field.annotation), name
        assert all(model.model_config.get("extra") == "forbid" for model in models)
        assert all(
            issubclass(m, b) for m, b in zip(models, (serve.TextRequest, serve.BatchRequest), strict=True)
        )


LIMITS = Limits(max_text_chars=50, max_texts=3, max_labels=3, max_label_chars=12)
ONE = {"text": "Bill founded Microsoft", "labels": ["person", "org"]}
TWO = {"texts": ["Bill founded Microsoft", "Ada met Bill"], "labels": ["person", "org"]}
# (body, the message of the 422 (None: the request is answered 200), whether the schema says it)
CASES = [
    ({**ONE, "relations": ["founded"]}, None, True),
    (
        {**ONE, "relations": {"founded": "started"}, "relation_threshold": 0.0, "adjacency_threshold": 1},
        None,
        True,
    ),
    ({**TWO, "relations": [["founded"], {"met": "talked to"}]}, None, True),
    ({**TWO, "labels": [["person"], ["org"]], "relations": [["org"], ["person"]]}, None, True),
    ({**ONE, "relations": []}, "relations is empty: give at least one relation", True),
    ({**ONE, "relations": {}}, "relations is empty: give at least one relation", True),
    ({**TWO, "relations": [["a"], []]}, "relations[1] is empty", True),
    (
        {**ONE, "relations": ["founded", "org"]},
        "relation names must differ from the entity labels; ['org'] is both",
        False,
    ),
    ({**ONE, "relations": {"person": "a person"}}, "['person'] is both", False),
    (
        {**TWO, "labels": [["person"], ["org"]], "relations": [["a"], ["org"]]},
        "entity labels of texts[1]; ['org']",
        False,
    ),
    ({**ONE, "relations": [" "]}, "relations must not be empty or blank: ' '", True),
    ({**ONE, "relations": ["\u3000"]}, "relations must not be empty or blank", True),
    ({**ONE, "relations": {"founded": "\t"}}, "relation descriptions must not be empty or blank", True),
    ({**ONE, "relations": {" ": "founded"}}, "relations must not be empty or blank", True),
    ({**ONE, "relations": ["a", "b", "c", "d"]}, "too many relations: 4; the limit max_labels is 3", True),
    (
        {**ONE, "relations": ["a" * 13]},
        "the relation of relations[0] has 13 characters; the limit max_label_chars",
        True,
    ),
    (
        {**ONE, "relations": {"a": "b" * 13}},
        "the relation description of relations[0] has 13 characters",
        True,
    ),
    ({**TWO, "relations": [["a"], ["b"], ["c"]]}, "relations has 3 relation sets for 2 texts", False),
    ({**TWO, "relations": [["a"]]}, "relations has 1 relation set for 2 texts", False),
    ({**ONE, "relations": [["a"]]}, "Input should be a valid string", True),
    ({**ONE, "relations": "founded"}, "Input should be a valid", True),
    ({**ONE, "relations": None}, "Input should be a valid list", True),
    ({**ONE, "relations": ["founded"], "relation_threshold": 1.5}, "less than or equal to 1", True),
    ({**ONE, "relations": ["founded"], "relation_threshold": -0.1}, "greater than or equal to 0", True),
    ({**ONE, "relations": ["founded"], "adjacency_threshold": 2}, "less than or equal to 1", True),
    ({**ONE, "relations": ["founded"], "relation_threshold": "0.5"}, "Input should be a valid number", True),
    ({**ONE, "relations": ["founded"], "relation_threshold": None}, "Input should be a valid number", True),
    (
        {**ONE, "relation_threshold": 0.5},
        "`relation_threshold` is a threshold for relations: give `relations` too",
        True,
    ),
    ({**TWO, "adjacency_threshold": 0.5}, "`adjacency_threshold` is a threshold for relations", True),
    ({**ONE, "relations": ["a\ud800"]}, "relations[0] holds a lone surrogate", False),
    ({**ONE, "relations": {"a": "b\udfff"}}, "the description of relations[0] holds a lone surrogate", False),
]


@pytest.mark.parametrize(("body", "needle", "schema_says"), CASES)
def test_relation_requests_are_checked_and_refusals_named(body, needle, schema_says):
    """Each bad request is refused 422 with a message naming what is wrong, before the model; the
    schema says it where JSON Schema can (the others are the documented 422s it cannot say)."""
    import json

    stub = RelationStub({"Bill": "person", "Microsoft": "org"})
    with client_for(stub, limits=LIMITS) as client:
        validator = body_validator(client)
        # (as JSON text: a lone surrogate is a JSON escape, which httpx's json= would refuse)
        r = client.post(
            "/v1/entities", content=json.dumps(body), headers={"content-type": "application/json"}
        )
    if needle is None:
        assert r.status_code == 200, r.text
        assert validator.is_valid(body)
        assert [c["method"] for c in stub.calls] == ["relations"] * len(stub.calls) and stub.calls
        return
    assert r.status_code == 422, r.text
    assert needle in r.text, r.text
    assert validator.is_valid(body) != schema_says, "the schema says what it can"
    assert stub.calls == [], "a refused request never reaches the model"


def test_answers_hold_the_relations_with_entity_indices():
    stub = RelationStub({"Bill": "person", "Microsoft": "org", "Ada": "person"})
    with client_for(stub) as client:
        r = client.post("/v1/entities", json={**ONE, "relations": ["founded", "met"], "html": True})
        batch = client.post("/v1/entities", json={**TWO, "relations": [["founded"], {"met": "talked to"}]})
        plain = client.post("/v1/entities", json=ONE)
    assert r.status_code == 200 and set(r.json()) == {"entities", "relations", "html", "table"}
    assert r.json()["relations"] == [
        {
            "head": {"start": 0, "end": 4, "text": "Bill", "type": "person", "entity_idx": 0},
            "tail": {"start": 13, "end": 22, "text": "Microsoft", "type": "org", "entity_idx": 1},
            "relation": "founded",
            "score": 0.8,
        }
    ]
    first, second = batch.json()["results"]
    assert [x["relation"] for x in first["relations"]] == ["founded"]
    assert [x["relation"] for x in second["relations"]] == ["met"]  # each text its own relation set
    assert (second["relations"][0]["head"]["text"], second["relations"][0]["tail"]["text"]) == ("Ada", "Bill")
    assert plain.json() == {"entities": r.json()["entities"]}, "without relations, as before"
    calls = [(c["method"], c["texts"], c.get("relations")) for c in stub.calls]
    assert calls[:3] == [
        ("relations", ["Bill founded Microsoft"], ["founded", "met"]),
        ("relations", ["Bill founded Microsoft"], ["founded"]),
        ("relations", ["Ada met Bill"], {"met": "talked to"}),
    ]
    assert calls[3] == ("batch", ["Bill founded Microsoft"], None)


# ---------------------------------------------------------------------- the queue


def test_relation_requests_are_micro_batched_with_their_own_kind():
    """Queued together, relation requests asking the same (labels, relations, thresholds) share
    one batch_predict_relations call; entity requests and other relation sets get their own."""
    gate = threading.Event()
    stub = RelationStub(gate=gate)
    with client_for(stub, batch_size=32, max_wait_ms=50) as client:
        post = lambda body: client.post("/v1/entities", json=body)  # noqa: E731
        first = in_thread(post, {"text": "first", "labels": ["a"], "relations": ["r"]})
        assert stub.started.wait(10)
        bodies = [
            {"text": "alpha one", "labels": ["x"], "relations": ["r"]},
            {"texts": ["beta two", "gamma three"], "labels": ["x"], "relations": ["r"]},
            {"text": "delta four", "labels": ["x"]},
            {"text": "epsilon five", "labels": ["x"], "relations": ["r"], "relation_threshold": 0.7},
            {"text": "zeta six", "labels": ["x"], "relations": {"r": "are"}},
            {"texts": ["eta seven", "theta eight"], "labels": ["x"], "relations": [["r"], ["s"]]},
        ]
        joins = queue_in_order(client, [lambda body=body: post(body) for body in bodies])
        gate.set()
        assert first().status_code == 200
        answers = [j().json() for j in joins]
    results = [a.get("results", [a]) for a in answers]  # each request's answer per text
    assert [["relations" in x for x in r] for r in results] == [
        [True],
        [True, True],
        [False],
        [True],
        [True],
        [True, True],
    ]
    calls = [(c["method"], c["texts"], c.get("relations"), c.get("relation_threshold")) for c in stub.calls]
    assert calls[0] == ("relations", ["first"], ["r"], None)
    assert sorted(calls[1:], key=repr) == sorted(
        [
            ("relations", ["alpha one", "beta two", "gamma three", "eta seven"], ["r"], None),
            ("batch", ["delta four"], None, None),
            ("relations", ["epsilon five"], ["r"], 0.7),
            ("relations", ["zeta six"], {"r": "are"}, None),
            ("relations", ["theta eight"], ["s"], None),
        ],
        key=repr,
    )


def test_relation_requests_share_the_queue_and_its_limit():
    gate = threading.Event()
    stub = RelationStub(gate=gate)
    with client_for(stub, queue_size=1, max_wait_ms=0) as client:
        post = lambda body: client.post("/v1/entities", json=body)  # noqa: E731
        running = in_thread(post, {"text": "running", "labels": ["a"]})
        assert stub.started.wait(10)
        waiting = in_thread(post, {"text": "waiting", "labels": ["a"], "relations": ["r"]})
        wait_until(lambda: client.app.state.batcher.queue.qsize() == 1)
        r = post({"text": "refused", "labels": ["a"], "relations": ["r"]})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "queue_size" in r.json()["detail"]
        gate.set()
        assert running().status_code == 200 and waiting().status_code == 200
        assert post({"text": "later", "labels": ["a"], "relations": ["r"]}).status_code == 200


def test_a_relation_model_error_fails_only_its_request():
    class Broken(RelationStub):
        def batch_predict_relations(self, texts, labels, relations, **options):
            if "crash" in texts:
                raise RuntimeError("out of memory")
            return super().batch_predict_relations(texts, labels, relations, **options)

    with client_for(Broken(fail_on="boom")) as client:

        def post(text: str):
            return client.post("/v1/entities", json={"text": text, "labels": ["a"], "relations": ["r"]})

        r = post("boom")
        assert r.status_code == 422 and r.json() == {"detail": "the stub refuses the text 'boom'"}
        r = post("crash")
        assert r.status_code == 500 and "out of memory" in r.json()["detail"]
        assert post("fine").status_code == 200


# ---------------------------------------------------------------------- schemathesis on the relation schema

try:
    import schemathesis
except ImportError:  # the test extra has it
    schemathesis = None

if schemathesis is not None:
    from hypothesis import HealthCheck, settings

    def valid_relations(case):
        """tests/test_serve_schema.py's hook (the label rules JSON Schema cannot say), and the same for
        relations in the cases meant to be valid: as many relation sets as texts (repeated or cut; with
        no text, the first for all), and no relation named as an entity label."""
        from tests.test_serve_schema import valid_case

        case = valid_case(case)
        meta, body = getattr(case, "meta", None), case.body
        if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
            return case
        if "relations" not in body:
            return case
        relations, texts = body["relations"], body.get("texts")
        if isinstance(texts, list) and per_text(relations):
            relations = (relations * len(texts))[: len(texts)] if texts else relations[0]
        label_sets = body["labels"] if per_text(body["labels"]) else [body["labels"]]
        labels = {name for label_set in label_sets for name in label_set}

        def apart(rels):  # (a relation named as a label of another text is fine: this is simpler)
            if isinstance(rels, dict):
                return {k: v for k, v in rels.items() if k not in labels} or {"zz relation": "zz"}
            return [x for x in rels if x not in labels] or ["zz relation"]

        body["relations"] = [apart(r) for r in relations] if per_text(relations) else apart(relations)
        return case

    @pytest.fixture(scope="module")
    def relation_api():
        limits = Limits(max_text_chars=200, max_texts=4, max_labels=4, max_label_chars=20)
        loaded = schemathesis.openapi.from_asgi(
            "/openapi.json", create_app(RelationStub(), limits=limits, max_wait_ms=0)
        )

        @loaded.hook
        def map_case(context, case):
            return valid_relations(case)

        return loaded

    relation_schema = schemathesis.pytest.from_fixture("relation_api")

    @pytest.mark.slow
    @relation_schema.parametrize()
    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    def test_the_relation_schema_and_the_server_agree(case):
        """Every schemathesis check, as tests/test_serve_schema.py runs them, on the schema of a
        server whose model extracts relations (a stub: the schema and the checks are the server's)."""
        case.call_and_validate()
