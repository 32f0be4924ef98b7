"""The HTTP server: endpoints, micro-batching, limits, errors, the page and the CLI wiring."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import warnings
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("fastapi", reason="the server needs FastAPI")
pytest.importorskip("uvicorn", reason="the server needs uvicorn")

with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 to httpx
    warnings.filterwarnings("ignore", message=".*httpx", category=UserWarning)
    from fastapi.testclient import TestClient

from anyner import AnyNER, serve  # noqa: E402
from anyner.cli import _parser  # noqa: E402
from anyner.serve import BodyLimit, Limits, MicroBatcher, create_app  # noqa: E402
from tests.conftest import StubModel, in_thread, same_entities, spread_head, wait_until

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXT = "Bill Gates founded Microsoft on April 4, 1975 in Albuquerque, New Mexico."
LABELS = ["person", "organization", "date", "location"]


@pytest.fixture(scope="module")
def tiny_model(minilm_dir) -> AnyNER:
    torch.manual_seed(0)
    return spread_head(AnyNER.from_encoder(minilm_dir, hidden_size=64, num_rnn_layers=0))


def client_for(model, **options) -> TestClient:
    return TestClient(create_app(model, **options))


def queue_in_order(client: TestClient, requests: list) -> list:
    """Start each request in a thread once the previous one is in the queue; their joins."""
    queued, joins = client.app.state.batcher.queue, []
    for n, request in enumerate(requests, 1):
        joins.append(in_thread(request))
        wait_until(lambda n=n: queued.qsize() == n)
    return joins


# ---------------------------------------------------------------------- endpoints with a real model


def test_single_text_finds_valid_entities(tiny_model):
    with client_for(tiny_model) as client:
        r = client.post("/v1/entities", json={"text": TEXT, "labels": LABELS, "threshold": 0.3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"entities"}
    assert body["entities"], "the spread random head finds something at 0.3"
    expected = [e.to_dict() for e in tiny_model.predict(TEXT, LABELS, threshold=0.3)]
    same_entities(body["entities"], expected)
    for e in body["entities"]:
        assert set(e) == {"start", "end", "text", "label", "score"}
        assert TEXT[e["start"] : e["end"]] == e["text"]
        assert e["label"] in LABELS


def test_batch_matches_predict_batch_and_keeps_order(tiny_model):
    texts = [TEXT, "", "Ada Lovelace was born in London in 1815.", "Paris is the capital of France."]
    with client_for(tiny_model, batch_size=2) as client:
        r = client.post("/v1/entities", json={"texts": texts, "labels": LABELS, "threshold": 0.3})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == len(texts)
    expected = tiny_model.predict_batch(texts, LABELS, threshold=0.3, batch_size=2)  # as the server batches
    for got, want in zip(results, expected, strict=True):
        same_entities(got["entities"], [e.to_dict() for e in want])
    assert results[1] == {"entities": []}


def test_empty_batch_gives_no_results(tiny_model):
    with client_for(tiny_model) as client:
        r = client.post("/v1/entities", json={"texts": [], "labels": LABELS})
    assert r.status_code == 200
    assert r.json() == {"results": []}
    with client_for(tiny_model) as client:  # no text to run, yet bad labels are still refused
        for body in ({"texts": [], "labels": []}, {"texts": [], "labels": [" "]},
                     {"texts": [], "labels": LABELS, "threshold": {"nope": 0.2}}):  # fmt: skip
            r = client.post("/v1/entities", json=body)
            assert r.status_code == 422, (body, r.text)


def test_label_descriptions_keep_the_label_names(tiny_model):
    labels = {"person": "name of a person", "company": "name of a company or organization"}
    with client_for(tiny_model) as client:
        r = client.post("/v1/entities", json={"text": TEXT, "labels": labels, "threshold": 0.2})
    assert r.status_code == 200, r.text
    ents = r.json()["entities"]
    same_entities(ents, tiny_model.predict(TEXT, labels, threshold=0.2))
    assert ents and {e["label"] for e in ents} <= set(labels)


def test_per_label_thresholds_nested_and_multi_label(tiny_model):
    with client_for(tiny_model) as client:
        post = lambda **kw: client.post("/v1/entities", json={"text": TEXT, "labels": LABELS, **kw})  # noqa: E731
        everything = post(threshold=0.0, flat=False, multi_label=True).json()["entities"]
        assert {e["label"] for e in everything} == set(LABELS)
        per_label = post(threshold={"person": 1.0, "date": 1.0, "location": 0.0}, nested=True).json()[
            "entities"
        ]
        assert per_label and not {e["label"] for e in per_label} & {"person", "date"}
        want = tiny_model.predict(
            TEXT, LABELS, threshold={"person": 1.0, "date": 1.0, "location": 0.0}, flat=False
        )
        same_entities(per_label, [e.to_dict() for e in want])
        flat = post(threshold=0.0).json()["entities"]
        assert len(flat) < len(everything)
        for a, b in zip(flat, flat[1:], strict=False):
            assert a["end"] <= b["start"]
        r = post(threshold={"nobody": 0.5})
        assert r.status_code == 422 and "not asked for" in r.json()["detail"]
        assert post(threshold=1.5).status_code == 422
        assert post(threshold={"person": -0.1}).status_code == 422
        r = post(flat=True, nested=True)
        assert r.status_code == 422 and "contradict" in json.dumps(r.json())


def test_html_option_returns_the_rendered_text_and_table(tiny_model):
    text = "Bill Gates <b>met</b> Satya & co in Redmond."
    with client_for(tiny_model) as client:
        r = client.post("/v1/entities", json={"text": text, "labels": LABELS, "threshold": 0.0, "html": True})
        plain = client.post("/v1/entities", json={"text": text, "labels": LABELS, "threshold": 0.0}).json()
    body = r.json()
    assert set(body) == {"entities", "html", "table"} and set(plain) == {"entities"}
    assert body["html"].startswith('<div class="entities">') and 'class="entity"' in body["html"]
    assert body["table"].startswith('<table class="entity-table">')
    assert tags(body["html"]) == {"div", "mark", "span"}, "the text's own <b> is escaped"
    assert tags(body["table"]) <= {"table", "thead", "tbody", "tr", "th", "td"}


def tags(fragment: str) -> set[str]:
    found = set()

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.add(tag)

    Parser().feed(fragment)
    return found


def test_health_and_model_info(tiny_model):
    limits = Limits(max_texts=5)
    with client_for(tiny_model, limits=limits, batch_size=4, queue_size=7, name="tiny") as client:
        assert client.get("/health").json() == {"status": "ok", "queued": 0}
        info = client.get("/v1/model").json()
    assert info["name"] == "tiny"
    assert info["max_words"] == tiny_model.config.max_len and info["max_tokens"] == tiny_model.max_tokens
    assert info["batch_size"] == 4 and info["queue_size"] == 7
    assert info["limits"] == {**vars(Limits()), "max_texts": 5}
    with client_for(tiny_model) as client:
        info = client.get("/v1/model").json()
    assert info["name"] == tiny_model.config.name
    assert "/" not in info["encoder"], "no local folders are shown"
    with client_for(StubModel(), name="/home/someone/models/my-model") as client:
        assert client.get("/v1/model").json()["name"] == "my-model"
    with client_for(StubModel(), name="org/model") as client:
        assert client.get("/v1/model").json()["name"] == "org/model"


def test_docs_openapi_and_field_descriptions():
    with client_for(StubModel()) as client:
        assert client.get("/docs").status_code == 200
        schema = client.get("/openapi.json").json()
    assert {"/v1/entities", "/v1/model", "/health"} <= set(schema["paths"])
    assert "/" not in schema["paths"]
    one, batch = (schema["components"]["schemas"][k]["properties"] for k in ("TextRequest", "BatchRequest"))
    request = {**one, **batch}
    for name in ("text", "texts", "labels", "threshold", "flat", "nested", "multi_label", "html"):
        assert request[name].get("description"), name
    entity = schema["components"]["schemas"]["EntityOut"]["properties"]
    assert all(entity[k].get("description") for k in ("start", "end", "text", "label", "score"))
    assert "503" in schema["paths"]["/v1/entities"]["post"]["responses"]


def test_page_is_self_contained():
    with client_for(StubModel()) as client:
        page = client.get("/")
        script = client.get("/app.js")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for needed in (
        'id="text"',
        'id="labels"',
        'id="threshold"',
        'type="range"',
        'id="submit"',
        'id="result"',
    ):
        assert needed in page.text
    for text in (page.text, script.text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert "v1/entities" in script.text and "html: true" in script.text


# ---------------------------------------------------------------------- what a request may hold

REQUEST_FIELDS = {"text", "texts", "labels", "threshold", "flat", "nested", "multi_label", "html"}


def test_request_bodies_name_no_files():
    """The request models hold texts, labels and options only: nothing that could name a path,
    a model or a URL. A new field fails here until it is reviewed. (From test_safety.py: the one
    model is now two, one text or a batch, which together hold the same fields.)"""
    app_models = serve.request_models(Limits())
    for models in ((serve.TextRequest, serve.BatchRequest), app_models):
        fields = {name: f for model in models for name, f in model.model_fields.items()}
        assert set(fields) == REQUEST_FIELDS
        for name, field in fields.items():
            assert "Path" not in repr(field.annotation), name
        assert all(model.model_config.get("extra") == "forbid" for model in models)
    with client_for(StubModel({})) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    body = {*schemas["TextRequest"]["properties"], *schemas["BatchRequest"]["properties"]}
    assert body == REQUEST_FIELDS


def test_routes_take_no_path_parameters():
    app = create_app(StubModel({}))
    paths = {getattr(r, "path", None) for r in app.routes}
    assert not [p for p in paths if p and "{" in p], "a route with a path parameter could name a file"
    assert paths <= {"/", "/app.js", "/health", "/metrics", "/v1/model", "/v1/entities", "/docs", "/redoc",
                     "/openapi.json", "/docs/oauth2-redirect", "/docs-assets/swagger-ui-bundle.js",
                     "/docs-assets/swagger-ui.css", "/docs-assets/redoc.standalone.js",
                     "/docs-assets/favicon.png"}  # fmt: skip


@pytest.mark.parametrize("field", ["model", "path", "file", "output", "cache_dir", "url"])
def test_file_naming_fields_are_refused(field):
    stub = StubModel({})
    with TestClient(create_app(stub)) as client:
        r = client.post("/v1/entities", json={"text": "a", "labels": ["x"], field: "/etc/passwd"})
        assert r.status_code == 422 and "extra" in r.text.lower()
        assert client.post("/v1/entities", json={"text": "a", "labels": ["x"]}).status_code == 200
    assert len(stub.calls) == 1, "only the valid request reached the model"


# ---------------------------------------------------------------------- the schema says what is accepted


def body_validator(limits: Limits | None = None):
    """A JSON Schema validator of the app's published request body (OpenAPI 3.1 is JSON Schema 2020-12)."""
    jsonschema = pytest.importorskip("jsonschema", reason="the schema checks need jsonschema")
    with client_for(StubModel({}), limits=limits or Limits()) as client:
        doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/entities"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema.Draft202012Validator({**body, "components": doc["components"]})


def test_the_body_schema_is_one_text_or_a_batch():
    with client_for(StubModel({})) as client:
        doc = client.get("/openapi.json").json()
    post = doc["paths"]["/v1/entities"]["post"]
    refs = [x["$ref"] for x in post["requestBody"]["content"]["application/json"]["schema"]["oneOf"]]
    assert refs == ["#/components/schemas/TextRequest", "#/components/schemas/BatchRequest"]
    one, batch = (doc["components"]["schemas"][k] for k in ("TextRequest", "BatchRequest"))
    assert one["additionalProperties"] is False and batch["additionalProperties"] is False
    assert set(one["required"]) == {"text", "labels"} and set(batch["required"]) == {"texts", "labels"}
    assert "texts" not in one["properties"] and "text" not in batch["properties"]
    assert [e.get("text") for e in one["examples"]] == ["Bill Gates founded Microsoft."]
    assert [e.get("texts") for e in batch["examples"]] == [["Ada Lovelace lived in London."]]
    assert {"413", "422", "500", "503"} <= set(post["responses"])
    assert "Retry-After" in post["responses"]["503"]["headers"]
    assert "not among `labels`" in post["responses"]["422"]["description"]


def test_the_schema_says_the_limits():
    limits = Limits(max_text_chars=11, max_texts=3, max_labels=4, max_label_chars=5)
    with client_for(StubModel(), limits=limits) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    one, batch = schemas["TextRequest"]["properties"], schemas["BatchRequest"]["properties"]
    assert one["text"]["maxLength"] == 11 and batch["texts"]["items"]["maxLength"] == 11
    assert batch["texts"]["maxItems"] == 3
    listed, named = one["labels"]["anyOf"]
    assert listed["maxItems"] == 4 and listed["minItems"] == 1 and listed["items"]["maxLength"] == 5
    assert named["maxProperties"] == 4 and named["propertyNames"]["maxLength"] == 5
    assert named["additionalProperties"]["maxLength"] == 5
    # a batch takes the same label set for all texts, or one per text (the third form)
    assert one["labels"]["anyOf"] == batch["labels"]["anyOf"][:2] and one["threshold"] == batch["threshold"]


def test_the_not_blank_pattern_is_str_strip():
    """A label must hold a character that str.strip() keeps: the schema's pattern says the same."""
    pattern = re.compile(serve.NOT_BLANK)
    wrong = [c for c in map(chr, range(sys.maxunicode + 1)) if (pattern.search(c) is None) != c.isspace()]
    assert wrong == []


LIMITS = Limits(max_text_chars=10, max_texts=2, max_labels=2, max_label_chars=6)
BODIES = [  # what the schema says and what the server answers must agree on each
    {"text": "x" * 10, "labels": ["person", "b"]},
    {"text": "x" * 11, "labels": ["a"]},
    {"texts": [], "labels": ["a"]},
    {"texts": ["a", "b"], "labels": {"a": "alpha", "b": "beta"}, "threshold": {"a": 0.2}},
    {"texts": ["a", "b", "c"], "labels": ["a"]},
    {"texts": ["a", "x" * 11], "labels": ["a"]},
    {"text": "a", "texts": ["b"], "labels": ["a"]},
    {"labels": ["a"]},
    {"text": "a", "labels": []},
    {"text": "a", "labels": {}},
    {"texts": [], "labels": []},
    {"text": "a", "labels": ["a", "b", "c"]},
    {"text": "a", "labels": ["toolong"]},
    {"text": "a", "labels": {"a": "toolong"}},
    {"text": "a", "labels": {"toolong": "a"}},
    {"text": "a", "labels": [""]},
    {"text": "a", "labels": [" \u3000\x1c"]},
    {"text": "a", "labels": ["\ufeff"]},  # no whitespace for str.strip(), though ECMA's \s has it
    {"text": "a", "labels": {"a": "\t"}},
    {"text": "a", "labels": {" ": "a"}},
    {"text": "a", "labels": ["a"], "threshold": {"a": 1}},
    {"text": "a", "labels": ["a"], "threshold": 1.5},
    {"text": "a", "labels": ["a"], "threshold": {" ": 0.5}},
    {"text": "a", "labels": ["a"], "threshold": {"abcdefg": 0.5}},
    {"text": "a", "labels": ["a"], "flat": "yes"},
    {"text": "a", "labels": ["a"], "flat": 1},
    {"text": "a", "labels": ["a"], "html": None},
    {"text": "a", "labels": ["a"], "nested": None},
    {"text": "a", "labels": ["a"], "nested": None, "flat": False},
    {"text": "a", "labels": ["a"], "flat": True, "nested": False},
    {"text": "a", "labels": ["a"], "flat": True, "nested": True},
    {"text": "a", "labels": ["a"], "flat": False, "nested": False},
    {"text": "a", "labels": ["a"], "nested": True},
    {"text": None, "labels": ["a"]},
    {"texts": None, "labels": ["a"]},
    {"texts": "ab", "labels": ["a"]},
    {"text": "a", "labels": "a"},
    {"text": "a", "labels": [["a"]]},
    [{"text": "a", "labels": ["a"]}],
    "text",
]


@pytest.mark.parametrize("body", BODIES)
def test_the_schema_and_the_server_agree(body):
    validator = body_validator(LIMITS)
    stub = StubModel({})
    with client_for(stub, limits=LIMITS) as client:
        r = client.post("/v1/entities", json=body)
    assert r.status_code in (200, 422), r.text
    assert validator.is_valid(body) == (r.status_code == 200), r.text
    if r.status_code == 422:
        assert len(stub.calls) == 0 or (isinstance(body, dict) and body.get("texts") == [])


def test_what_the_schema_cannot_say_is_a_422_naming_it():
    stub = StubModel({})
    validator = body_validator()
    with client_for(stub) as client:
        body = {"text": "a", "labels": ["person"], "threshold": {"nobody": 0.5}}
        assert validator.is_valid(body)
        r = client.post("/v1/entities", json=body)
        assert r.status_code == 422 and "not asked for: ['nobody']" in r.json()["detail"]
        body = {"text": "a \ud800", "labels": ["person"]}
        assert validator.is_valid(body)
        r = client.post(
            "/v1/entities", content=json.dumps(body), headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and "lone surrogate" in r.text
    assert len(stub.calls) == 0


def test_neither_text_nor_texts_is_named():
    with client_for(StubModel({})) as client:
        for body in ({"labels": ["a"]}, {"text": "a", "texts": ["b"], "labels": ["a"]}, ["a"]):
            r = client.post("/v1/entities", json=body)
            assert r.status_code == 422
            assert "give exactly one of `text` (one text) or `texts`" in r.json()["detail"][0]["msg"], body


def test_a_model_must_be_a_predictor():
    class NoConfig:
        max_tokens = 512

        def predict_batch(self, texts, labels, **kw):
            return [[] for _ in texts]

    assert isinstance(StubModel(), serve.Predictor) and not isinstance(NoConfig(), serve.Predictor)
    with pytest.raises(TypeError, match=r"the model \(NoConfig\) is no Predictor"):
        create_app(NoConfig())
    no_max_len = SimpleNamespace(name="a", encoder="b")
    with pytest.raises(TypeError, match="a config with name, encoder and max_len"):
        create_app(SimpleNamespace(config=no_max_len, max_tokens=1, predict_batch=NoConfig().predict_batch))
    with pytest.raises(ValueError, match="model.max_tokens must be a positive integer"):
        create_app(
            SimpleNamespace(config=StubModel.config, max_tokens=0, predict_batch=NoConfig().predict_batch)
        )


# ---------------------------------------------------------------------- validation and limits


@pytest.mark.parametrize(
    "body",
    [
        {"labels": ["person"]},
        {"text": "a", "texts": ["b"], "labels": ["person"]},
        {"text": "a"},
        {"text": 3, "labels": ["person"]},
        {"text": "a", "labels": "person"},
        {"text": "a", "labels": ["person"], "unknown": 1},
    ],
)
def test_malformed_requests_get_422(body):
    with client_for(StubModel()) as client:
        assert client.post("/v1/entities", json=body).status_code == 422


@pytest.mark.parametrize(
    ("limits", "body", "needle"),
    [
        (Limits(max_text_chars=10), {"text": "x" * 11, "labels": ["a"]}, "max_text_chars is 10"),
        (
            Limits(max_text_chars=10),
            {"texts": ["ok", "x" * 11], "labels": ["a"]},
            "texts[1] has 11 characters",
        ),
        (Limits(max_texts=2), {"texts": ["a", "b", "c"], "labels": ["a"]}, "max_texts is 2"),
        (Limits(max_labels=2), {"text": "a", "labels": ["a", "b", "c"]}, "max_labels is 2"),
        (Limits(max_label_chars=5), {"text": "a", "labels": ["person"]}, "max_label_chars is 5"),
        (Limits(max_label_chars=5), {"text": "a", "labels": {"per": "a person"}}, "max_label_chars is 5"),
    ],
)
def test_each_limit_is_enforced_and_named(limits, body, needle):
    stub = StubModel()
    with client_for(stub, limits=limits) as client:
        r = client.post("/v1/entities", json=body)
        assert r.status_code == 422
        assert needle in r.json()["detail"]
    assert stub.calls == [], "a rejected request never reaches the model"


def test_limits_at_their_value_pass():
    limits = Limits(max_text_chars=10, max_texts=2, max_labels=2, max_label_chars=6)
    with client_for(StubModel(), limits=limits) as client:
        r = client.post("/v1/entities", json={"texts": ["x" * 10, "y"], "labels": ["person", "b"]})
    assert r.status_code == 200, r.text


def test_body_size_limit_uses_content_length():
    limits = Limits(max_body_bytes=200)
    with client_for(StubModel(), limits=limits) as client:
        small = client.post("/v1/entities", json={"text": "hello", "labels": ["a"]})
        assert small.status_code == 200
        big = client.post("/v1/entities", json={"text": "x" * 300, "labels": ["a"]})
        assert big.status_code == 413
        assert "max_body_bytes is 200" in big.json()["detail"]


def test_body_size_limit_counts_a_streamed_body():
    """Without Content-Length (chunked), the middleware counts the body as it arrives."""
    seen = []

    async def app(scope, receive, send):
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def call(chunks):
        messages = [
            {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
            for i, c in enumerate(chunks)
        ]
        sent = []

        async def receive():
            return messages.pop(0)

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(b"transfer-encoding", b"chunked")],
        }
        await BodyLimit(app, max_bytes=10)(scope, receive, send)
        return sent

    sent = asyncio.run(call([b"12345", b"67890"]))
    assert sent[0]["status"] == 200 and seen == [b"1234567890"]
    sent = asyncio.run(call([b"12345", b"67890", b"1"]))
    assert sent[0]["status"] == 413 and b"max_body_bytes is 10" in sent[1]["body"]
    assert len(seen) == 1


def test_limits_and_batcher_reject_bad_settings():
    with pytest.raises(ValueError, match="max_texts"):
        Limits(max_texts=0)
    with pytest.raises(ValueError, match="queue_size"):
        MicroBatcher(StubModel(), queue_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        MicroBatcher(StubModel(), batch_size=0)


# ---------------------------------------------------------------------- micro-batching, queue and errors


def test_concurrent_requests_are_micro_batched_and_grouped():
    gate = threading.Event()
    stub = StubModel(gate=gate)
    with client_for(stub, batch_size=32, max_wait_ms=50) as client:
        post = lambda body: client.post("/v1/entities", json=body)  # noqa: E731
        first = in_thread(post, {"text": "first", "labels": ["a"]})
        assert stub.started.wait(10)
        bodies = [
            {"text": "alpha one", "labels": ["x", "y"]},
            {"texts": ["beta two", "gamma three"], "labels": ["x", "y"]},
            {"text": "delta four", "labels": ["z"]},
            {"text": "epsilon five", "labels": ["x", "y"], "threshold": 0.7},
            {"text": "zeta six", "labels": ["x", "y"], "nested": True},
            {"text": "eta seven", "labels": {"x": "ex", "y": "why"}},
        ]
        joins = queue_in_order(client, [lambda body=body: post(body) for body in bodies])
        gate.set()
        assert first().json() == {
            "entities": [{"start": 0, "end": 5, "text": "first", "label": "a", "score": 0.9}]
        }
        answers = [j().json() for j in joins]
    assert answers[0]["entities"][0]["text"] == "alpha" and answers[0]["entities"][0]["label"] == "x"
    assert [r["entities"][0]["text"] for r in answers[1]["results"]] == ["beta", "gamma"]
    assert answers[2]["entities"][0]["label"] == "z"
    assert answers[5]["entities"][0] == {"start": 0, "end": 3, "text": "eta", "label": "x", "score": 0.9}
    calls = [(c["texts"], c["labels"], c["threshold"], c["flat"]) for c in stub.calls]
    assert calls[0] == (["first"], ["a"], 0.5, True)
    # the six queued requests came in one batch: one call per (labels, threshold, flat, multi_label)
    assert sorted(calls[1:], key=repr) == sorted(
        [
            (["alpha one", "beta two", "gamma three"], ["x", "y"], 0.5, True),
            (["delta four"], ["z"], 0.5, True),
            (["epsilon five"], ["x", "y"], 0.7, True),
            (["zeta six"], ["x", "y"], 0.5, False),
            (["eta seven"], {"x": "ex", "y": "why"}, 0.5, True),
        ],
        key=repr,
    )


def test_batches_hold_at_most_batch_size_texts():
    gate = threading.Event()
    stub = StubModel(gate=gate)
    with client_for(stub, batch_size=2, max_wait_ms=50) as client:
        post = lambda text: client.post("/v1/entities", json={"text": text, "labels": ["a"]})  # noqa: E731
        first = in_thread(post, "first")
        assert stub.started.wait(10)
        joins = queue_in_order(client, [lambda i=i: post(f"t{i}") for i in range(4)])
        gate.set()
        first()
        assert sorted(j().json()["entities"][0]["text"] for j in joins) == ["t0", "t1", "t2", "t3"]
    assert [len(c["texts"]) for c in stub.calls] == [1, 2, 2]


def test_a_full_queue_answers_503_with_retry_after():
    gate = threading.Event()
    stub = StubModel(gate=gate)
    with client_for(stub, queue_size=1, max_wait_ms=0) as client:
        post = lambda text: client.post("/v1/entities", json={"text": text, "labels": ["a"]})  # noqa: E731
        running = in_thread(post, "running")
        assert stub.started.wait(10)
        waiting = in_thread(post, "waiting")
        wait_until(lambda: client.app.state.batcher.queue.qsize() == 1)
        r = post("refused")
        assert r.status_code == 503
        assert r.headers["retry-after"] == "1"
        assert "queue_size" in r.json()["detail"]
        gate.set()
        assert running().status_code == 200 and waiting().status_code == 200
        assert post("later").status_code == 200


def test_a_model_error_fails_only_its_request():
    gate = threading.Event()
    stub = StubModel(gate=gate, fail_on="boom")
    with client_for(stub, max_wait_ms=50) as client:
        post = lambda text: client.post("/v1/entities", json={"text": text, "labels": ["a"]})  # noqa: E731
        first = in_thread(post, "first")
        assert stub.started.wait(10)
        bad, good = queue_in_order(client, [lambda: post("boom"), lambda: post("good one")])
        gate.set()
        assert first().status_code == 200
        r = bad()
        assert r.status_code == 422 and r.json() == {"detail": "the stub refuses the text 'boom'"}
        ok = good()
        assert ok.status_code == 200 and ok.json()["entities"][0]["text"] == "good"
        assert post("still serving").status_code == 200
    texts = [c["texts"] for c in stub.calls]
    assert ["boom", "good one"] in texts and ["good one"] in texts  # the group, then each alone


def test_unexpected_model_errors_are_500_and_the_server_goes_on():
    class Broken(StubModel):
        def predict_batch(self, texts, labels, **kw):
            if "crash" in texts:
                raise RuntimeError("out of memory")
            return super().predict_batch(texts, labels, **kw)

    with client_for(Broken()) as client:
        r = client.post("/v1/entities", json={"text": "crash", "labels": ["a"]})
        assert r.status_code == 500 and "out of memory" in r.json()["detail"]
        assert client.post("/v1/entities", json={"text": "fine", "labels": ["a"]}).status_code == 200


def test_real_model_errors_are_422(tiny_model):
    with client_for(tiny_model) as client:
        r = client.post("/v1/entities", json={"text": TEXT, "labels": []})
        assert r.status_code == 422 and "labels is empty" in r.json()["detail"]
        r = client.post("/v1/entities", json={"text": TEXT, "labels": ["person <<ENT>>"]})
        assert r.status_code == 422 and "prompt token" in r.json()["detail"]
        assert client.post("/v1/entities", json={"text": TEXT, "labels": ["person"]}).status_code == 200


def test_the_model_runs_off_the_event_loop():
    gate = threading.Event()
    stub = StubModel(gate=gate)
    with client_for(stub) as client:
        blocked = in_thread(client.post, "/v1/entities", json={"text": "slow", "labels": ["a"]})
        assert stub.started.wait(10)
        assert client.get("/health").json() == {"status": "ok", "queued": 0}  # answers while the model runs
        gate.set()
        assert blocked().status_code == 200


# ---------------------------------------------------------------------- the CLI


def test_cli_serve_defaults():
    args = _parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000 and args.model is None
    assert args.batch_size == 8 and args.queue_size == 64
    assert {k: getattr(args, k) for k in vars(Limits())} == vars(Limits())


def test_cli_serve_passes_its_flags(monkeypatch):
    import anyner.serve
    from anyner import cli

    got = {}
    monkeypatch.setattr(AnyNER, "from_pretrained", classmethod(lambda cls, m, **kw: ("model", m)))
    monkeypatch.setattr(anyner.serve, "run", lambda model, **kw: got.update(model=model, **kw))
    argv = ["serve", "--model", "some/folder", "--port", "0", "--queue-size", "3", "--batch-size", "4"]
    assert cli.main([*argv, "--max-texts", "7", "--max-body-bytes", "99", "--host", "0.0.0.0"]) == 0
    assert got["model"] == ("model", "some/folder") and got["name"] == "some/folder"
    assert got["host"] == "0.0.0.0" and got["port"] == 0
    assert got["queue_size"] == 3 and got["batch_size"] == 4
    assert got["limits"] == Limits(max_texts=7, max_body_bytes=99)
    assert cli.main(["serve", "--max-labels", "0"]) == 2
