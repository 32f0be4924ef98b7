"""What a deployed ``anyner serve`` has around its app: an API key, CORS, Prometheus metrics,
request ids in the logs, and several worker processes.

* :class:`ApiKey`: with a key (``--api-key-file`` or ``ANYNER_API_KEY``), every request needs it
  (``Authorization: Bearer KEY`` or ``X-API-Key: KEY``) except those of :data:`OPEN_PATHS`: the
  page, ``/health`` and the documentation. The key is compared in constant time and never logged.
* :func:`cors_options`: the ``--cors-origin`` origins, checked, as Starlette's CORSMiddleware takes them.
* :class:`Metrics`: a Prometheus registry of its own per app (several apps in one process do
  not collide): requests by route, method and status, latency, queue depth, texts per model
  call, and the hits of the model's label-prompt cache when the model has one.
* :class:`RequestLog`: an id per request (the client's ``X-Request-ID`` when it is a plain
  token, else a new uuid4 hex), returned in ``X-Request-ID``, held in a context variable that
  :class:`RequestIdFilter` adds to every log record (``%(request_id)s``), and one access log
  line per request on the ``anyner.access`` logger.
* :func:`anyner.workers.app_from_env`: the app factory each uvicorn worker calls (``--workers N``): the options
  travel in the ``ANYNER_SERVE_OPTIONS`` environment variable, never the key itself.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

__all__ = [
    "API_KEY_ENV", "OPEN_PATHS", "OPTIONS_ENV", "ApiKey", "Metrics", "RequestIdFilter", "RequestLog",
    "cors_options", "log_config", "read_api_key", "request_id",
]  # fmt: skip

API_KEY_ENV = "ANYNER_API_KEY"
OPTIONS_ENV = "ANYNER_SERVE_OPTIONS"
OPEN_PATHS = frozenset(
    {"/", "/app.js", "/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/favicon.ico"}
)
"""Paths that need no API key: the page, the health check and the documentation (and, below
``/docs-assets/``, the documentation's files). Every other path needs it, ``/v1/*`` and
``/metrics`` included: a path added later is protected unless it is listed here."""
OPEN_PREFIXES = ("/docs-assets/",)
MIN_KEY_CHARS = 16

log = logging.getLogger("anyner.serve")
access_log = logging.getLogger("anyner.access")

# ---------------------------------------------------------------------- the API key

_KEY = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an HTTP header carries as it is


def read_api_key(path: str | os.PathLike | None, env: Mapping[str, str] | None = None) -> str | None:
    """The server's API key: the content of ``path`` (surrounding whitespace stripped: a file
    written by ``echo`` ends with a newline), else the ``ANYNER_API_KEY`` environment variable,
    else None (no key: every request is served).

    Raises:
        ValueError: both are given, the key is empty, or it holds characters other than visible
            ASCII (which no header carries as they are). The message never holds the key.
        OSError: the file cannot be read.
    """
    env = os.environ if env is None else env
    from_env = env.get(API_KEY_ENV)
    if path is not None:
        if from_env:
            raise ValueError(
                f"the API key is given twice, by --api-key-file and by {API_KEY_ENV}: give one of them"
            )
        key, where = Path(path).read_text(encoding="utf-8").strip(), f"the API key file {str(path)!r}"
    elif from_env is not None:
        key, where = from_env.strip(), f"the environment variable {API_KEY_ENV}"
    else:
        return None
    if not key:
        raise ValueError(f"{where} is empty: put the key in it (or give no key to serve without one)")
    if not _KEY.fullmatch(key):
        raise ValueError(
            f"{where} holds characters other than visible ASCII (spaces, other lines, non-ASCII "
            "letters): a key is one token, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
        )
    if len(key) < MIN_KEY_CHARS:
        log.warning("the API key is shorter than %d characters: it is easy to guess", MIN_KEY_CHARS)
    return key


def route_path(scope: Mapping[str, Any]) -> str:
    """The path the app's routes see: the request's path less the ``root_path`` (Starlette's rule)."""
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


class ApiKey:
    """ASGI middleware: a request to a path outside :data:`OPEN_PATHS` needs the key, in
    ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``; else 401, before its body is read.

    The comparison takes the same time whatever the key sent (``hmac.compare_digest``).
    """

    def __init__(self, app: Any, key: str):
        if not key or not _KEY.fullmatch(key):
            raise ValueError("the API key must be a non-empty token of visible ASCII characters")
        self.app, self._key = app, key.encode("ascii")

    def _allowed(self, headers: Iterable[tuple[bytes, bytes]]) -> bool | None:
        """True: the key; False: a wrong one; None: none given."""
        given: list[bytes] = []
        for name, value in headers:
            if name == b"x-api-key":
                given.append(value.strip())
            elif name == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    given.append(token.strip())
        if not given:
            return None
        # every one is compared (no early exit), so the time does not say which header matched
        return sum(hmac.compare_digest(g, self._key) for g in given) > 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(scope["headers"])
        if allowed:
            await self.app(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        detail = (
            "this server needs an API key: send it as `Authorization: Bearer KEY` or `X-API-Key: KEY`"
            if allowed is None
            else "the API key sent is not this server's"
        )
        headers = {"WWW-Authenticate": 'Bearer realm="anyner"'}
        await JSONResponse({"detail": detail}, status_code=401, headers=headers)(scope, receive, send)


# ---------------------------------------------------------------------- CORS

_ORIGIN = re.compile(r"https?://[^/\s?#]+")


def cors_options(origins: Sequence[str]) -> dict[str, Any]:
    """The keyword arguments of Starlette's CORSMiddleware for ``--cors-origin`` origins.

    An origin is ``scheme://host[:port]`` with no path (a browser sends no trailing ``/``), or
    ``*`` for any. Browsers may send the API key headers and ``X-Request-ID``, and read back
    ``X-Request-ID`` and ``Retry-After``; no cookies are involved (the key is a header).

    Raises:
        ValueError: an origin that no browser sends, named.
    """
    origins = list(origins)
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"--cors-origin {origin!r} is not an origin: give scheme://host[:port] with no path and "
                "no trailing slash, e.g. https://app.example.com, or * for any origin"
            )
    return dict(
        allow_origins=origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Retry-After"],
        allow_credentials=False,
        max_age=600,
    )


# ---------------------------------------------------------------------- request ids and the access log

_request_id: ContextVar[str] = ContextVar("anyner_request_id", default="-")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # a plain token: nothing that could forge a log line


def request_id() -> str:
    """The id of the request being served (``-`` outside a request)."""
    return _request_id.get()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (the request being served, or ``-``) to every record it sees, so that
    a format may hold ``%(request_id)s``. Put it on a handler: it then sees every logger's records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        return True


class RequestLog:
    """ASGI middleware, the outermost: gives each request its id (the client's ``X-Request-ID``
    when it is a token of at most 128 letters, digits and ``._:-``, else a new uuid4 hex), returns
    it in the ``X-Request-ID`` header, logs one ``anyner.access`` line and counts the request in
    ``metrics``. The line holds the client address, method, path (no query string), status and
    milliseconds; never a header nor the body, so never the API key."""

    def __init__(self, app: Any, metrics: Metrics | None = None):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        rid = given if _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        token = _request_id.set(rid)
        status, start = 500, time.perf_counter()  # 500: the app raised before it answered

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode("ascii"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            client = scope.get("client")
            access_log.info(
                "%s %s %s %d %.1f ms",
                client[0] if client else "-", scope["method"], scope["path"], status, seconds * 1000,
            )  # fmt: skip
            if self.metrics is not None:
                self.metrics.observe_request(_route_label(scope), scope["method"], status, seconds)
            _request_id.reset(token)


def _route_label(scope: Mapping[str, Any]) -> str:
    """The route's path template (``/v1/entities``), or ``other`` for a path no route has: a
    label per path the clients invent would let them grow the metrics without bound."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    app, asked = scope.get("app"), route_path(scope)
    for r in getattr(app, "routes", ()):  # answered before routing (a 401, a 413): the path, if a route's
        if getattr(r, "path", None) == asked:
            return asked
    return "other"


def log_config(level: str = "info") -> dict[str, Any]:
    """uvicorn's logging config, plus the ``anyner`` loggers with the request id in each line
    (``[id]``; ``[-]`` outside a request). uvicorn's own access log is replaced by ``anyner.access``."""
    from uvicorn.config import LOGGING_CONFIG

    config = json.loads(json.dumps(LOGGING_CONFIG))  # a deep copy
    config.setdefault("filters", {})["request_id"] = {"()": "anyner.deploy.RequestIdFilter"}
    config["formatters"]["anyner"] = {
        "()": "uvicorn.logging.DefaultFormatter",
        "fmt": "%(levelprefix)s [%(request_id)s] %(name)s: %(message)s",
    }
    config["handlers"]["anyner"] = {
        "formatter": "anyner", "class": "logging.StreamHandler", "stream": "ext://sys.stderr",
        "filters": ["request_id"],
    }  # fmt: skip
    config["loggers"]["anyner"] = {"handlers": ["anyner"], "level": level.upper(), "propagate": False}
    return config


# ---------------------------------------------------------------------- Prometheus metrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The app's Prometheus metrics, in a registry of its own (``self.registry``).

    ``anyner_http_requests_total{route,method,status}``, ``anyner_http_request_duration_seconds
    {route}`` (a histogram), ``anyner_queue_depth`` (requests waiting for the model, read at each
    scrape), ``anyner_batch_texts`` (a histogram of the texts per model call), and, for a model
    with a label-prompt cache (:class:`~anyner.AnyNER` has one per model), ``anyner_label_cache_hits_total``
    and ``anyner_label_cache_misses_total``: label sets whose prompt was (or was not) tokenized already.

    Needs ``prometheus_client`` (in the ``serve`` extra).
    """

    def __init__(self, queue_depth: Any, model: Any = None):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "anyner_http_requests", "HTTP requests answered, by route, method and status",
            ["route", "method", "status"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "anyner_http_request_duration_seconds", "Seconds from a request's arrival to its answer, by route",
            ["route"], buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.queue = Gauge("anyner_queue_depth", "Requests waiting for the model", registry=self.registry)
        self.queue.set_function(queue_depth)
        self.batch = Histogram(
            "anyner_batch_texts", "Texts per model call (a micro-batch of one label set)",
            buckets=BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        if _label_cache(model) is not None:
            self.registry.register(_LabelCacheCollector(model))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_batch(self, texts: int) -> None:
        self.batch.observe(texts)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def _label_cache(model: Any) -> Any:
    """The model's cache of label-set prompts (an ``lru_cache``), or None. Read at each scrape:
    a model whose limits change gets a new featurizer, and so a new cache (the counts restart)."""
    cache = getattr(getattr(getattr(model, "featurizer", None), "prompts", None), "prompt", None)
    return cache if callable(getattr(cache, "cache_info", None)) else None


class _LabelCacheCollector:
    def __init__(self, model: Any):
        self.model = model

    def describe(self) -> list:
        return []  # nothing fixed to describe: collected at each scrape

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily

        cache = _label_cache(self.model)
        if cache is None:
            return
        info = cache.cache_info()
        yield CounterMetricFamily(
            "anyner_label_cache_hits", "Label sets whose prompt was already tokenized", value=info.hits
        )
        yield CounterMetricFamily(
            "anyner_label_cache_misses", "Label sets whose prompt was tokenized", value=info.misses
        )


# ---------------------------------------------------------------------- workers


def worker_options(
    *,
    model: str | None,
    backend: str,
    api_key_file: str | None,
    threads: int | None = None,
    **create_app_options: Any,
) -> str:
    """The JSON of ``ANYNER_SERVE_OPTIONS`` for :func:`anyner.workers.app_from_env`: the model to load, the key
    file (the key itself stays out: a worker reads the file, or inherits ``ANYNER_API_KEY``),
    the threads of each worker's model and :func:`~anyner.serve.create_app`'s options (``limits`` as a dict)."""
    from dataclasses import asdict, is_dataclass

    limits = create_app_options.get("limits")
    if is_dataclass(limits):
        create_app_options["limits"] = asdict(limits)
    spec = {
        "model": model, "backend": backend, "api_key_file": api_key_file, "threads": threads,
        "app": create_app_options,
    }  # fmt: skip
    return json.dumps(spec)
