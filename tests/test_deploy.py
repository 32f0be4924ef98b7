"""A server ready to deploy: API key, CORS, Prometheus metrics, request ids, workers, graceful shutdown."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the server needs FastAPI")
pytest.importorskip("uvicorn", reason="the server needs uvicorn")
pytest.importorskip("prometheus_client", reason="the metrics need prometheus_client (the serve extra)")

with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 to httpx
    warnings.filterwarnings("ignore", message=".*httpx", category=UserWarning)
    from fastapi.testclient import TestClient

from anyner import cli, deploy, serve, workers  # noqa: E402
from anyner.serve import Limits, create_app  # noqa: E402
from tests.conftest import StubModel, in_thread, wait_until  # noqa: E402

KEY = "k3y-for-the-tests-0123456789abcdef"
ENTITY = {"text": "Ada Lovelace", "labels": ["person"]}
ROOT = Path(__file__).resolve().parents[1]


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float) -> None:
    """Poll ``url``/health until it answers 200; fail (with the process's output) if it exits or times out."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)


@pytest.fixture(autouse=True)
def no_key_in_env(monkeypatch):
    monkeypatch.delenv(deploy.API_KEY_ENV, raising=False)
    monkeypatch.delenv(deploy.OPTIONS_ENV, raising=False)


# ---------------------------------------------------------------------- the API key


def test_without_a_key_every_request_is_served():
    with TestClient(create_app(StubModel())) as client:
        assert client.post("/v1/entities", json=ENTITY).status_code == 200
        assert client.get("/metrics").status_code == 200


def test_a_key_guards_the_api_and_the_metrics():
    with TestClient(create_app(StubModel(), api_key=KEY)) as client:
        r = client.post("/v1/entities", json=ENTITY)
        assert r.status_code == 401 and r.headers["content-type"] == "application/json"
        assert "Authorization: Bearer KEY" in r.json()["detail"] and "X-API-Key" in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")
        # refused before the body is read: a malformed body gets 401 too, not 422
        assert client.post("/v1/entities", content=b"{not json").status_code == 401
        assert client.get("/v1/model").status_code == 401
        assert client.get("/metrics").status_code == 401
        assert client.get("/no/such/path").status_code == 401  # protected unless listed as open
        wrong = client.post("/v1/entities", json=ENTITY, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "not this server's" in wrong.json()["detail"]
        assert client.get("/v1/model", headers={"X-API-Key": KEY + "x"}).status_code == 401
        assert client.get("/v1/model", headers={"Authorization": "Basic " + KEY}).status_code == 401
        for headers in (
            {"Authorization": f"Bearer {KEY}"},
            {"authorization": f"bearer {KEY}"},
            {"X-API-Key": KEY},
        ):
            r = client.post("/v1/entities", json=ENTITY, headers=headers)
            assert r.status_code == 200, (headers, r.text)
            assert r.json()["entities"][0]["text"] == "Ada"
        assert client.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
        for path in ("/", "/app.js", "/health", "/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        assets = [r.path for r in client.app.routes if getattr(r, "path", "").startswith(serve.DOCS_ASSETS)]
        for path in assets:
            assert client.get(path).status_code == 200, path


def test_the_schema_says_the_key():
    """With a key, the OpenAPI schema names both headers (/docs gets an "Authorize" button)."""
    with TestClient(create_app(StubModel())) as client:
        assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})
    with TestClient(create_app(StubModel(), api_key=KEY)) as client:
        doc = client.get("/openapi.json").json()
    schemes = doc["components"]["securitySchemes"]
    assert {(s["type"], s.get("scheme"), s.get("name")) for s in schemes.values()} == {
        ("http", "bearer", None), ("apiKey", None, "X-API-Key"),
    }  # fmt: skip
    for path, method in (("/v1/entities", "post"), ("/v1/model", "get")):
        op = doc["paths"][path][method]
        assert sorted(k for alt in op["security"] for k in alt) == sorted(schemes), path
        assert "401" in op["responses"]
    assert "security" not in doc["paths"]["/health"]["get"]


def test_the_key_is_never_logged_nor_echoed(caplog, tmp_path, monkeypatch):
    caplog.set_level(logging.DEBUG)  # every logger, every level
    caplog.handler.addFilter(deploy.RequestIdFilter())
    (tmp_path / "key").write_text(KEY + "\n")
    key = deploy.read_api_key(tmp_path / "key")
    assert key == KEY
    seen = []
    with TestClient(create_app(StubModel(), api_key=key)) as client:
        for headers in (
            {"Authorization": f"Bearer {KEY}"},
            {"X-API-Key": KEY[:-1]},
            {"X-API-Key": KEY + "!"},
            {},
        ):
            for r in (
                client.post("/v1/entities", json=ENTITY, headers=headers),
                client.get("/v1/model", headers=headers),
                client.get("/metrics", headers=headers),
                client.get("/health", headers=headers),
                client.get("/openapi.json", headers=headers),
            ):
                seen.append(r.text + json.dumps(dict(r.headers)))
    assert any("access" in rec.name for rec in caplog.records), "the access log was captured"
    logged = "\n".join(caplog.handler.format(rec) for rec in caplog.records)
    for text in (logged, *seen):
        assert KEY not in text and KEY[:-1] not in text
    for wrong in ("", " \n"):  # an empty key file is an error at start-up, which names the file only
        (tmp_path / "key").write_text(wrong)
        with pytest.raises(ValueError, match="API key file .* is empty"):
            deploy.read_api_key(tmp_path / "key")
    monkeypatch.setenv(deploy.API_KEY_ENV, KEY)
    with pytest.raises(ValueError, match="given twice") as e:
        deploy.read_api_key(tmp_path / "key")
    assert KEY not in str(e.value)


def test_the_key_comes_from_a_file_or_the_environment(tmp_path):
    assert deploy.read_api_key(None, env={}) is None
    assert deploy.read_api_key(None, env={deploy.API_KEY_ENV: f" {KEY}\n"}) == KEY
    with pytest.raises(ValueError, match="ANYNER_API_KEY is empty"):
        deploy.read_api_key(None, env={deploy.API_KEY_ENV: ""})
    for bad in ("two words", "line\nbreak", "clé-à-accents"):
        (tmp_path / "key").write_text(bad, encoding="utf-8")
        with pytest.raises(ValueError, match="visible ASCII") as e:
            deploy.read_api_key(tmp_path / "key", env={})
        assert bad not in str(e.value)
    with pytest.raises(FileNotFoundError):
        deploy.read_api_key(tmp_path / "missing", env={})


def test_a_short_key_is_served_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="anyner"):
        assert deploy.read_api_key(None, env={deploy.API_KEY_ENV: "short"}) == "short"
    assert "shorter than 16 characters" in caplog.text and "short" not in caplog.text.replace("shorter", "")


def test_the_key_is_checked_on_the_route_path_under_a_root_path():
    """Behind a proxy that strips a prefix (``--root-path``), the open paths stay open, the API guarded."""
    app = create_app(StubModel(), api_key=KEY)
    with TestClient(app, root_path="/ner") as client:
        assert client.get("/ner/health").status_code == 200
        assert client.get("/ner/v1/model").status_code == 401
        assert client.get("/ner/v1/model", headers={"X-API-Key": KEY}).status_code == 200
    assert deploy.route_path({"path": "/ner/v1/model", "root_path": "/ner"}) == "/v1/model"
    assert deploy.route_path({"path": "/nerv1/model", "root_path": "/ner"}) == "/nerv1/model"
    assert deploy.route_path({"path": "/ner", "root_path": "/ner"}) == "/"


# ---------------------------------------------------------------------- CORS


def preflight(client, origin: str, method: str = "POST"):
    return client.options(
        "/v1/entities",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_cors_is_off_by_default():
    with TestClient(create_app(StubModel())) as client:
        r = preflight(client, "https://app.example.com")
        assert r.status_code == 405 and "access-control-allow-origin" not in r.headers
        r = client.post("/v1/entities", json=ENTITY, headers={"Origin": "https://app.example.com"})
        assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


def test_cors_allows_the_origins_given_and_no_other():
    origins = ["https://app.example.com", "http://localhost:3000"]
    with TestClient(create_app(StubModel(), cors_origins=origins, api_key=KEY)) as client:
        for origin in origins:
            r = preflight(client, origin)  # a preflight carries no key: it is answered before the check
            assert r.status_code == 200, r.text
            assert r.headers["access-control-allow-origin"] == origin
            assert "authorization" in r.headers["access-control-allow-headers"].lower()
            assert "POST" in r.headers["access-control-allow-methods"]
        r = preflight(client, "https://evil.example.org")
        assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
        assert preflight(client, origins[0], method="DELETE").status_code == 400
        # the answers themselves: the allowed origin may read them, a 401 included
        r = client.post("/v1/entities", json=ENTITY, headers={"Origin": origins[0], "X-API-Key": KEY})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origins[0]
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
        r = client.post("/v1/entities", json=ENTITY, headers={"Origin": origins[0]})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == origins[0]
        r = client.post("/v1/entities", json=ENTITY, headers={"Origin": "https://evil.example.org"})
        assert "access-control-allow-origin" not in r.headers


def test_cors_any_origin_and_bad_origins():
    with TestClient(create_app(StubModel(), cors_origins=["*"])) as client:
        assert preflight(client, "https://anywhere.example").headers["access-control-allow-origin"] == "*"
    for bad in ("https://app.example.com/", "app.example.com", "https://app.example.com/path", "ftp://x"):
        with pytest.raises(ValueError, match="is not an origin"):
            create_app(StubModel(), cors_origins=[bad])


# ---------------------------------------------------------------------- metrics


def metric(text: str, name: str, **labels) -> float | None:
    """The value of one sample of a Prometheus exposition text, None when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_metrics_count_requests_latency_and_batches():
    stub = StubModel()
    with TestClient(create_app(stub, batch_size=4)) as client:
        for _ in range(3):
            assert client.post("/v1/entities", json=ENTITY).status_code == 200
        assert client.post("/v1/entities", json={"texts": ["a b", "c d"], "labels": ["x"]}).status_code == 200
        assert client.post("/v1/entities", json={"text": "a", "labels": []}).status_code == 422
        assert client.get("/nowhere").status_code == 404
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    count = lambda **kw: metric(text, "anyner_http_requests_total", **kw)  # noqa: E731
    assert count(route="/v1/entities", method="POST", status="200") == 4
    assert count(route="/v1/entities", method="POST", status="422") == 1
    assert count(route="other", method="GET", status="404") == 1  # no label per invented path
    assert metric(text, "anyner_http_request_duration_seconds_count", route="/v1/entities") == 5
    assert metric(text, "anyner_http_request_duration_seconds_sum", route="/v1/entities") > 0
    assert metric(text, "anyner_queue_depth") == 0
    # one model call per request here (sequential requests): 1, 1, 1 and 2 texts
    assert [len(c["texts"]) for c in stub.calls] == [1, 1, 1, 2]
    assert metric(text, "anyner_batch_texts_count") == 4
    assert metric(text, "anyner_batch_texts_sum") == 5
    assert metric(text, "anyner_batch_texts_bucket", le="1.0") == 3
    assert metric(text, "anyner_label_cache_hits_total") is None  # the stub has no label cache


def test_metrics_show_the_queue_depth():
    gate = threading.Event()
    stub = StubModel(gate=gate)
    with TestClient(create_app(stub, max_wait_ms=0)) as client:
        post = lambda: client.post("/v1/entities", json=ENTITY)  # noqa: E731
        running = in_thread(post)
        assert stub.started.wait(10)
        waiting = [in_thread(post), in_thread(post)]
        wait_until(lambda: client.app.state.batcher.queue.qsize() == 2)
        assert metric(client.get("/metrics").text, "anyner_queue_depth") == 2
        gate.set()
        assert [j().status_code for j in (running, *waiting)] == [200] * 3
        assert metric(client.get("/metrics").text, "anyner_queue_depth") == 0


def test_each_app_has_its_own_metrics():
    with TestClient(create_app(StubModel())) as one, TestClient(create_app(StubModel())) as two:
        one.post("/v1/entities", json=ENTITY)
        one.post("/v1/entities", json=ENTITY)
        two.post("/v1/entities", json=ENTITY)
        ok = dict(route="/v1/entities", method="POST", status="200")
        assert metric(one.get("/metrics").text, "anyner_http_requests_total", **ok) == 2
        assert metric(two.get("/metrics").text, "anyner_http_requests_total", **ok) == 1


def test_metrics_can_be_off():
    with TestClient(create_app(StubModel(), metrics=False)) as client:
        assert client.get("/metrics").status_code == 404
        assert client.post("/v1/entities", json=ENTITY).status_code == 200


def test_without_prometheus_client_the_server_runs_without_metrics(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # its import now fails
    with caplog.at_level(logging.WARNING, logger="anyner"):
        app = create_app(StubModel())
    assert "prometheus_client is not installed" in caplog.text and "anyner[serve]" in caplog.text
    with TestClient(app) as client:
        assert client.get("/metrics").status_code == 404
        assert client.post("/v1/entities", json=ENTITY).status_code == 200


@pytest.fixture(scope="module")
def builtin_onnx():
    from anyner import AnyNER

    try:
        return AnyNER.from_pretrained(backend="onnx")
    except ImportError as e:  # pragma: no cover - onnxruntime is a core dependency
        pytest.skip(f"the built-in ONNX model cannot load: {e}")


def test_metrics_count_the_label_cache_of_a_real_model(builtin_onnx):
    with TestClient(create_app(builtin_onnx)) as client:
        hits = lambda: metric(client.get("/metrics").text, "anyner_label_cache_hits_total")  # noqa: E731
        misses = lambda: metric(client.get("/metrics").text, "anyner_label_cache_misses_total")  # noqa: E731
        body = {"text": "Ada Lovelace lived in London.", "labels": ["person", "city", "a label never asked"]}
        before_hits, before_misses = hits(), misses()
        assert before_hits is not None and before_misses is not None
        assert client.post("/v1/entities", json=body).status_code == 200
        after_first = hits(), misses()
        assert after_first[1] > before_misses  # a new label set: its prompt is tokenized
        assert client.post("/v1/entities", json=body).status_code == 200
        assert hits() > after_first[0] and misses() == after_first[1]  # the same one: from the cache


# ---------------------------------------------------------------------- request ids


def test_request_ids_are_kept_or_made_and_returned():
    with TestClient(create_app(StubModel())) as client:
        r = client.post("/v1/entities", json=ENTITY, headers={"X-Request-ID": "abc-123.x:y"})
        assert r.headers["x-request-id"] == "abc-123.x:y"
        made = {client.get("/health").headers["x-request-id"] for _ in range(3)}
        assert len(made) == 3 and all(re.fullmatch("[0-9a-f]{32}", m) for m in made)
        # an id that is no plain token (it could forge a log line) is replaced
        for bad in ("has spaces", "x" * 129, 'quote"d', "semi;colon"):
            got = client.get("/health", headers={"X-Request-ID": bad}).headers["x-request-id"]
            assert got != bad and re.fullmatch("[0-9a-f]{32}", got)
        # a 401 or a 413, answered before the routes, carries its id too
    with TestClient(create_app(StubModel(), api_key=KEY, limits=Limits(max_body_bytes=50))) as client:
        r = client.get("/v1/model", headers={"X-Request-ID": "refused-1"})
        assert r.status_code == 401 and r.headers["x-request-id"] == "refused-1"
        big = {"text": "x" * 100, "labels": ["a"]}
        r = client.post("/v1/entities", json=big, headers={"X-Request-ID": "big-1", "X-API-Key": KEY})
        assert r.status_code == 413 and r.headers["x-request-id"] == "big-1"


def test_the_log_lines_of_a_request_carry_its_id(caplog):
    class Broken(StubModel):
        def predict_batch(self, texts, labels, **kw):
            raise RuntimeError("out of memory")

    caplog.handler.addFilter(deploy.RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="anyner"), TestClient(create_app(Broken())) as client:
        r = client.post("/v1/entities", json=ENTITY, headers={"X-Request-ID": "req-42"})
        assert r.status_code == 500
        client.get("/health", headers={"X-Request-ID": "req-43"})
    access = [rec for rec in caplog.records if rec.name == "anyner.access"]
    assert [(rec.request_id, rec.getMessage().split()[1:4]) for rec in access] == [
        ("req-42", ["POST", "/v1/entities", "500"]),
        ("req-43", ["GET", "/health", "200"]),
    ]
    failed = [rec for rec in caplog.records if rec.getMessage() == "the model failed on a request"]
    assert len(failed) == 1 and failed[0].request_id == "req-42"  # the endpoint's own log line
    assert deploy.request_id() == "-"  # outside a request


def test_the_log_format_shows_the_request_id(capsys):
    """The format :func:`deploy.log_config` gives uvicorn for the ``anyner`` loggers."""
    import logging.config

    config = deploy.log_config("info")
    assert "[%(request_id)s]" in config["formatters"]["anyner"]["fmt"]
    assert config["loggers"]["anyner"]["handlers"] == ["anyner"]
    # applied to a logger of its own, so that the test leaves the others as they were
    config = {
        "version": 1, "disable_existing_loggers": False,
        "filters": config["filters"], "formatters": {"anyner": config["formatters"]["anyner"]},
        "handlers": {"anyner": {**config["handlers"]["anyner"], "stream": "ext://sys.stdout"}},
        "loggers": {"anyner.test-format": {"handlers": ["anyner"], "level": "INFO", "propagate": False}},
    }  # fmt: skip
    logging.config.dictConfig(config)
    logger = logging.getLogger("anyner.test-format")
    try:
        token = deploy._request_id.set("rid-7")
        logger.info("inside")
        deploy._request_id.reset(token)
        logger.info("outside")
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("[rid-7] anyner.test-format: inside")
    assert lines[1].endswith("[-] anyner.test-format: outside")


# ---------------------------------------------------------------------- graceful shutdown


def test_shutdown_answers_the_queued_requests():
    """The lifespan's shutdown (what uvicorn runs on SIGTERM) lets the queue drain: the requests
    queued when it begins get their entities, not an error. (The app runs in one event loop, as
    under uvicorn: TestClient would stop its loop under the requests still waiting.)"""
    import asyncio

    import httpx

    gate = threading.Event()
    stub = StubModel(gate=gate)
    app = create_app(stub, batch_size=1, max_wait_ms=0)
    batcher = app.state.batcher

    async def until(condition):
        for _ in range(2000):
            if condition():
                return
            await asyncio.sleep(0.005)
        raise AssertionError("timed out")

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://anyner") as client:
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            post = lambda text: client.post("/v1/entities", json={"text": text, "labels": ["a"]})  # noqa: E731
            tasks = [asyncio.create_task(post("first"))]
            await until(stub.started.is_set)
            for n, text in enumerate(["second", "third", "fourth"], 1):
                tasks.append(asyncio.create_task(post(text)))
                await until(lambda n=n: batcher.queue.qsize() == n)
            closing = asyncio.create_task(lifespan.__aexit__(None, None, None))
            await until(lambda: batcher._closed)
            late = await post("too late")  # the shutdown began: no more requests are taken
            gate.set()  # the model answers now, after the shutdown began
            answers = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            await asyncio.wait_for(closing, 30)
            return answers, late

    answers, late = asyncio.run(scenario())
    assert [r.status_code for r in answers] == [200] * 4
    assert [r.json()["entities"][0]["text"] for r in answers] == ["first", "second", "third", "fourth"]
    assert [c["texts"] for c in stub.calls] == [["first"], ["second"], ["third"], ["fourth"]]
    assert late.status_code == 503 and "shutting down" in late.json()["detail"]


def test_a_closed_batcher_takes_no_more_requests():
    import asyncio

    batcher = serve.MicroBatcher(StubModel(), max_wait_ms=0)
    predict = lambda: batcher.predict(["a"], ["x"], 0.5, True, False)  # noqa: E731
    assert asyncio.run(predict())[0][0].text == "a"
    batcher.close()
    with pytest.raises(serve.Closed):
        asyncio.run(predict())
    batcher.start()  # a new lifespan (the same app served again) opens it again
    assert asyncio.run(predict())[0][0].text == "a"
    batcher.close()


def test_a_request_during_shutdown_gets_503():
    app = create_app(StubModel())
    with TestClient(app) as client:
        app.state.batcher.close()  # as the lifespan's shutdown does
        r = client.post("/v1/entities", json=ENTITY)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "shutting down" in r.json()["detail"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLOW_SERVER = """
import sys, time
from anyner import serve
from tests.conftest import StubModel

class Slow(StubModel):
    def predict_batch(self, texts, labels, **kw):
        time.sleep(0.3)
        return super().predict_batch(texts, labels, **kw)

serve.run(Slow(), port=int(sys.argv[1]), batch_size=1, max_wait_ms=0, log_level="warning")
"""


@pytest.mark.slow
def test_sigterm_drains_the_queue_of_a_real_server():
    """uvicorn under SIGTERM: the requests under way and queued are answered, then it exits.

    The whole chain: uvicorn waits for its connections (up to ``--shutdown-timeout``), then runs
    the lifespan's shutdown. (That the batcher itself drains is the test above.)"""
    import httpx

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVER, str(port)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, proc, timeout=60)
        post = lambda i: httpx.post(url + "/v1/entities", json={"text": f"t{i}", "labels": ["a"]}, timeout=30)  # noqa: E731
        joins = [in_thread(post, i) for i in range(5)]
        wait_until(lambda: httpx.get(url + "/health").json()["queued"] >= 3)
        proc.send_signal(signal.SIGTERM)
        answers = [j() for j in joins]
        assert [r.status_code for r in answers] == [200] * 5
        assert sorted(r.json()["entities"][0]["text"] for r in answers) == [f"t{i}" for i in range(5)]
        # uvicorn re-raises the signal once it has shut down: the exit of a process ended by SIGTERM
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert "Traceback" not in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


# ---------------------------------------------------------------------- the CLI and the workers


@pytest.fixture
def served(monkeypatch):
    """What ``anyner serve`` passes to ``serve.run``, and the models it loads (none is run)."""
    got: dict = {"loads": []}

    def load(name, backend="auto", threads=None):
        got["loads"].append((name, backend))
        got["threads"] = threads
        return StubModel()

    monkeypatch.setattr(cli, "load_model", load)
    monkeypatch.setattr(serve, "run", lambda model, **kw: got.update(model=model, **kw))
    return got


def test_cli_serve_reads_the_key_and_the_origins(served, tmp_path, monkeypatch, capsys):
    (tmp_path / "key").write_text(KEY + "\n")
    argv = ["serve", "--api-key-file", str(tmp_path / "key"), "--cors-origin", "https://a.example"]
    assert cli.main([*argv, "--cors-origin", "http://b.example:8080", "--shutdown-timeout", "5"]) == 0
    assert served["api_key"] == KEY and served["cors_origins"] == [
        "https://a.example",
        "http://b.example:8080",
    ]
    assert served["shutdown_timeout"] == 5 and "workers" not in served
    monkeypatch.setenv(deploy.API_KEY_ENV, KEY)
    assert cli.main(["serve"]) == 0 and served["api_key"] == KEY
    monkeypatch.delenv(deploy.API_KEY_ENV)
    assert cli.main(["serve"]) == 0 and served["api_key"] is None
    loads = len(served["loads"])
    (tmp_path / "empty").write_text("")
    for bad, message in (
        (["--api-key-file", str(tmp_path / "empty")], "is empty"),
        (["--cors-origin", "https://a.example/"], "is not an origin"),
        (["--workers", "0"], "--workers must be a positive integer"),
        (["--threads", "0"], "--threads must be a positive integer"),
        (["--shutdown-timeout", "-1"], "--shutdown-timeout must be"),
    ):
        assert cli.main(["serve", *bad]) == 2, bad
        assert message in capsys.readouterr().err
    assert cli.main(["serve", "--api-key-file", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    assert len(served["loads"]) == loads  # a bad argument is reported before the model loads


def test_cli_serve_workers_pass_their_options_not_the_key(served, tmp_path):
    (tmp_path / "key").write_text(KEY)
    argv = ["serve", "--workers", "3", "--model", "some/model", "--backend", "onnx", "--max-texts", "7"]
    assert cli.main([*argv, "--api-key-file", str(tmp_path / "key"), "--cors-origin", "*"]) == 0
    assert served["model"] is None and served["workers"] == 3
    assert served["loads"] == [("some/model", "onnx")]  # loaded once here, to check it
    spec = served["worker_options"]
    assert KEY not in spec
    options = json.loads(spec)
    assert options["model"] == "some/model" and options["backend"] == "onnx"
    assert options["api_key_file"] == str(tmp_path / "key")
    assert options["app"]["limits"]["max_texts"] == 7 and options["app"]["cors_origins"] == ["*"]
    cores = len(os.sched_getaffinity(0))
    assert options["threads"] == max(1, cores // 3)  # N workers share the cores, not N x cores threads
    assert cli.main([*argv, "--threads", "2"]) == 0 and json.loads(served["worker_options"])["threads"] == 2


def test_cli_serve_one_worker_threads(served):
    assert cli.main(["serve"]) == 0 and served["threads"] is None  # ONNX Runtime's default: all cores
    assert cli.main(["serve", "--threads", "1"]) == 0 and served["threads"] == 1


def test_each_worker_builds_its_app_from_the_environment(monkeypatch, tmp_path):
    (tmp_path / "key").write_text(KEY)
    loads = []
    monkeypatch.setattr(
        workers,
        "load_model",
        lambda name, backend, threads: loads.append((name, backend, threads)) or StubModel(),
    )
    spec = deploy.worker_options(
        model="m", backend="auto", api_key_file=str(tmp_path / "key"), limits=Limits(max_texts=2),
        batch_size=3, queue_size=5, max_wait_ms=1.0, name="m", cors_origins=["https://a.example"],
        shutdown_timeout=2.0, threads=1,
    )  # fmt: skip
    monkeypatch.setenv(deploy.OPTIONS_ENV, spec)
    app = workers.app_from_env()
    assert loads == [("m", "auto", 1)]
    with TestClient(app) as client:
        assert client.get("/v1/model").status_code == 401
        info = client.get("/v1/model", headers={"X-API-Key": KEY}).json()
        assert info["limits"]["max_texts"] == 2 and info["batch_size"] == 3 and info["queue_size"] == 5
        assert preflight(client, "https://a.example").status_code == 200
    monkeypatch.setenv(deploy.OPTIONS_ENV, "{}")
    with pytest.raises(RuntimeError, match="does not hold the options"):
        workers.app_from_env()
    monkeypatch.delenv(deploy.OPTIONS_ENV)
    with pytest.raises(RuntimeError, match="is not set"):
        workers.app_from_env()


def test_run_starts_uvicorn_workers_with_the_factory(monkeypatch):
    import logging.config

    import uvicorn

    calls, configs = [], []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(logging.config, "dictConfig", configs.append)  # the test's logging stays as it is
    monkeypatch.setenv(deploy.OPTIONS_ENV, "")  # so that the test's end removes what run() sets
    serve.run(None, workers=2, worker_options='{"x": 1}', port=9, shutdown_timeout=4.0)
    app, kw = calls[-1]
    assert app == "anyner.workers:app_from_env" and kw["factory"] is True and kw["workers"] == 2
    assert kw["timeout_graceful_shutdown"] == 4.0 and kw["access_log"] is False and kw["port"] == 9
    assert os.environ[deploy.OPTIONS_ENV] == '{"x": 1}'  # what the workers read
    assert configs[-1] is kw["log_config"] and "anyner" in configs[-1]["loggers"]
    serve.run(StubModel(), port=9)
    app, kw = calls[-1]
    assert app.state.batcher is not None and "workers" not in kw
    with pytest.raises(ValueError, match="worker_options"):
        serve.run(None, workers=2)
    with pytest.raises(ValueError, match="workers"):
        serve.run(StubModel(), workers=0)


@pytest.mark.slow
def test_two_workers_serve_the_builtin_model(tmp_path):
    """``anyner serve --workers 2`` for real: two processes, each loading the built-in model
    through the factory, both behind the key; SIGTERM stops them all."""
    import httpx

    (tmp_path / "key").write_text(KEY)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_OFFLINE": "1"}
    env.pop(deploy.API_KEY_ENV, None)
    cmd = [
        sys.executable,
        "-m",
        "anyner.cli",
        "serve",
        "--port",
        str(port),
        "--workers",
        "2",
        "--backend",
        "onnx",
    ]
    proc = subprocess.Popen(
        [*cmd, "--api-key-file", str(tmp_path / "key")], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, proc, timeout=120)
        body = {"text": "Ada Lovelace lived in London.", "labels": ["person", "city"]}
        assert httpx.post(url + "/v1/entities", json=body, timeout=30).status_code == 401
        with httpx.Client(headers={"X-API-Key": KEY}, timeout=30) as client:
            answers = [client.post(url + "/v1/entities", json=body) for _ in range(6)]
        assert {r.status_code for r in answers} == {200}
        assert {e["text"] for e in answers[0].json()["entities"]} == {"Ada Lovelace", "London"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) in (0, -signal.SIGTERM)
        log = proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    workers = set(re.findall(r"Started server process \[(\d+)\]", log))
    assert len(workers) == 2, log
    assert len(re.findall(r"Finished server process \[(\d+)\]", log)) == 2, log
    assert "Traceback" not in log and KEY not in log
