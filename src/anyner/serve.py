"""``anyner serve``: an HTTP API and a web page for a model, with FastAPI and uvicorn.

Endpoints: ``POST /v1/entities`` (one text or a batch), ``GET /v1/model``, ``GET /health``,
``GET /`` (a page to try the model), ``/docs`` and ``/openapi.json``. A single worker thread
micro-batches requests from a bounded queue (see :class:`MicroBatcher`); a full queue answers
503 with ``Retry-After``. Errors are JSON ``{"detail": ...}``: 413 for a body larger than
``max_body_bytes``, 422 for every other limit and bad argument (the model's ValueError and
TypeError), 500 when the model fails otherwise. No request names a file the server reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import PurePath
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from anyner.render import render, render_table

__all__ = ["Limits", "MicroBatcher", "QueueFull", "create_app", "run"]

log = logging.getLogger("anyner.serve")
RETRY_AFTER_SECONDS = 1
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Limits:
    """What one request may hold. Each field is a CLI flag: ``max_text_chars`` is ``--max-text-chars``."""

    max_text_chars: int = 10_000  # characters in one text
    max_texts: int = 64  # texts in one request
    max_labels: int = 50  # labels in one request
    max_label_chars: int = 200  # characters in one label or label description
    max_body_bytes: int = 1_048_576  # bytes in one request body

    def __post_init__(self) -> None:
        for f in fields(self):
            _positive(f.name, getattr(self, f.name))


def _positive(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# ---------------------------------------------------------------------- request and response bodies

# strict: a threshold is a JSON number, not `true` or "0.5" (the library refuses those too)
Score = Annotated[float, Field(ge=0.0, le=1.0, strict=True, allow_inf_nan=False)]
_EXAMPLES = [
    {"text": "Bill Gates founded Microsoft.", "labels": ["person", "organization"]},
    {
        "texts": ["Ada Lovelace lived in London."],
        "labels": {"person": "a name"},
        "threshold": {"person": 0.4},
    },
]


class EntitiesRequest(BaseModel):
    """Find entities of the given labels in one text (``text``) or a batch (``texts``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": _EXAMPLES})
    text: str | None = Field(None, description="One text. Give this or `texts`; the answer is `{entities}`.")
    texts: list[str] | None = Field(
        None, description="A batch of texts. Give this or `text`; the answer is `{results: [{entities}]}`."
    )
    labels: list[str] | dict[str, str] = Field(
        description="The entity types to find: a list of names, or an object label -> description "
        "(the model reads the description, the entities carry the label)."
    )
    threshold: Score | dict[str, Score] = Field(
        0.5, description="Minimum score in [0, 1], or an object label -> threshold (other labels use 0.5)."
    )
    flat: bool = Field(True, description="No overlapping entities (true) or nested ones allowed (false).")
    nested: bool | None = Field(None, description="The opposite of `flat`; give one of the two.")
    multi_label: bool = Field(False, description="Let one span carry several labels.")
    html: bool = Field(
        False,
        description="Also return, per text, `html` (the text with its entities highlighted) and "
        "`table` (an HTML table of the entities), escaped, as `anyner.render` draws them.",
    )

    @model_validator(mode="after")
    def _check(self) -> EntitiesRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of `text` (one text) or `texts` (a list of texts)")
        if self.nested is not None and "flat" in self.model_fields_set and self.flat == self.nested:
            raise ValueError("`flat` and `nested` contradict each other; give one of them")
        _check_unicode(self)
        return self


# JSON may spell a lone surrogate ("\ud800"); Python keeps it in the str, but it is not text:
# it cannot be written back as UTF-8 (nor read by the tokenizers), so a request holding one is refused.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_unicode(req: EntitiesRequest) -> None:
    strings: list[tuple[str, str]] = []
    if req.text is not None:
        strings.append(("text", req.text))
    strings += [(f"texts[{i}]", t) for i, t in enumerate(req.texts or [])]
    pairs = req.labels.items() if isinstance(req.labels, dict) else ((x, None) for x in req.labels)
    for i, (name, description) in enumerate(pairs):
        strings.append((f"labels[{i}]", name))
        if description is not None:
            strings.append((f"the description of labels[{i}]", description))
    if isinstance(req.threshold, dict):
        strings += [("a label of threshold", k) for k in req.threshold]
    for where, value in strings:
        if m := _SURROGATE.search(value):
            raise ValueError(
                f"{where} holds a lone surrogate {m.group()!r} at index {m.start()}, which is not "
                "Unicode text; send the text as valid UTF-8"
            )


class EntityOut(BaseModel):
    start: int = Field(description="Character offset of the entity's first character.")
    end: int = Field(description="Character offset one past the entity's last character.")
    text: str = Field(description="The entity's text, `text[start:end]`.")
    label: str = Field(description="The label, as the request names it.")
    score: float = Field(description="The model's probability for this span and label.")


class TextResult(BaseModel):
    entities: list[EntityOut] = Field(description="The entities found, sorted by start.")
    html: str | None = Field(None, description="The text with its entities highlighted (with `html: true`).")
    table: str | None = Field(None, description="An HTML table of the entities (with `html: true`).")


class BatchResult(BaseModel):
    results: list[TextResult] = Field(description="One result per text, in the order of `texts`.")


class ModelInfo(BaseModel):
    name: str = Field(description="The model's name.")
    encoder: str | None = Field(None, description="The model's encoder.")
    max_words: int | None = Field(None, description="Most words read at once; longer texts are windowed.")
    max_tokens: int | None = Field(None, description="Most subword tokens in one encoder sequence.")
    batch_size: int = Field(description="Most texts the worker passes to the model at once.")
    queue_size: int = Field(description="Most requests waiting; beyond it the answer is 503.")
    limits: dict[str, int] = Field(description="The request limits, by name (see `Limits`).")


class Health(BaseModel):
    status: str = Field(description="`ok` while the server answers.")
    queued: int = Field(description="Requests waiting for the model.")


class _AsciiJSONResponse(JSONResponse):
    """JSON that can echo any input: non-ASCII escaped (lone surrogates too), NaN and infinities as strings."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


class ErrorOut(BaseModel):
    detail: str = Field(description="What went wrong; a limit is named with its value.")


# ---------------------------------------------------------------------- micro-batching


class QueueFull(Exception):
    """The request queue is full."""


@dataclass(eq=False)
class _Work:
    texts: list[str]
    key: tuple
    args: dict[str, Any]
    future: Future = field(default_factory=Future)  # set by the worker thread


def _group_key(labels: Any, threshold: Any, flat: bool, multi_label: bool) -> tuple:
    lab = ("dict", tuple(labels.items())) if isinstance(labels, Mapping) else ("list", tuple(labels))
    thr = tuple(sorted(threshold.items())) if isinstance(threshold, Mapping) else float(threshold)
    return lab, thr, bool(flat), bool(multi_label)


class MicroBatcher:
    """One worker thread feeding the model from a bounded queue of requests.

    The worker takes a request, then more for up to ``max_wait_ms`` or until it holds
    ``batch_size`` texts, and calls ``model.predict_batch`` once per group of requests
    sharing labels, threshold, flat and multi_label. When a group fails, each of its
    requests is run alone, so that only the faulty one gets the error.
    """

    def __init__(self, model: Any, batch_size: int = 8, queue_size: int = 64, max_wait_ms: float = 5.0):
        _positive("batch_size", batch_size)
        _positive("queue_size", queue_size)
        if not 0 <= max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {max_wait_ms!r}")
        self.model, self.batch_size, self.max_wait = model, batch_size, max_wait_ms / 1000
        self.queue: queue.Queue[_Work] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="anyner-batcher", daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker; requests still queued get a RuntimeError rather than wait forever."""
        self._stop.set()
        with self._lock:
            if self._thread is not None:
                self._thread.join(timeout)
                self._thread = None
        while True:
            try:
                work = self.queue.get_nowait()
            except queue.Empty:
                break
            if work.future.set_running_or_notify_cancel():
                work.future.set_exception(RuntimeError("the server is shutting down"))

    async def predict(
        self, texts: Sequence[str], labels: Any, threshold: Any, flat: bool, multi_label: bool
    ) -> list[list[Any]]:
        """Entities per text, from the worker thread; raises :class:`QueueFull` at once when full."""
        self.start()
        args = dict(labels=labels, threshold=threshold, flat=flat, multi_label=multi_label)
        work = _Work(list(texts), _group_key(labels, threshold, flat, multi_label), args)
        try:
            self.queue.put_nowait(work)
        except queue.Full:
            raise QueueFull from None
        return await asyncio.wrap_future(work.future)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self.queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch, n = [first], len(first.texts)
            deadline = time.monotonic() + self.max_wait
            while n < self.batch_size and (left := deadline - time.monotonic()) > 0:
                try:
                    work = self.queue.get(timeout=left)
                except queue.Empty:
                    break
                batch.append(work)
                n += len(work.texts)
            # A request whose caller went away (its future cancelled) is dropped; the others can
            # no longer be cancelled, so setting their result below cannot fail.
            batch = [work for work in batch if work.future.set_running_or_notify_cancel()]
            try:
                groups: dict[tuple, list[_Work]] = {}
                for work in batch:
                    groups.setdefault(work.key, []).append(work)
                for group in groups.values():
                    self._run(group)
            except Exception as e:  # a bug here must not kill the worker and leave requests waiting
                log.exception("the batcher failed")
                for work in batch:
                    if not work.future.done():
                        work.future.set_exception(e)

    def _run(self, group: list[_Work]) -> None:
        texts = [t for work in group for t in work.texts]
        try:
            found = self.model.predict_batch(texts, batch_size=self.batch_size, **group[0].args)
        except Exception as e:
            if len(group) > 1:
                for work in group:
                    self._run([work])
            else:
                group[0].future.set_exception(e)
            return
        i = 0
        for work in group:
            work.future.set_result(found[i : i + len(work.texts)])
            i += len(work.texts)


# ---------------------------------------------------------------------- the request body limit


class BodyLimit:
    """ASGI middleware: 413 when Content-Length or the streamed body exceeds ``max_bytes``."""

    def __init__(self, app: Any, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")  # the server checked its syntax
        too_large = length.isdigit() and int(length) > self.max_bytes
        chunks, size, more = [], 0, True
        while more and not too_large:  # read the body, counting: it may come without Content-Length
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size, more = size + len(chunks[-1]), message.get("more_body", False)
            too_large = size > self.max_bytes
        if too_large:
            detail = f"the request body is too large; the limit max_body_bytes is {self.max_bytes} bytes"
            await JSONResponse({"detail": detail}, status_code=413)(scope, receive, send)
            return
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# ---------------------------------------------------------------------- the app


def _check_limits(req: EntitiesRequest, texts: list[str], limits: Limits) -> None:
    def fail(message: str) -> None:
        raise HTTPException(422, message)

    if len(texts) > limits.max_texts:
        fail(f"too many texts: {len(texts)}; the limit max_texts is {limits.max_texts}")
    for i, t in enumerate(texts):
        if len(t) > limits.max_text_chars:
            where = "text" if req.text is not None else f"texts[{i}]"
            fail(f"{where} has {len(t)} characters; the limit max_text_chars is {limits.max_text_chars}")
    if len(req.labels) > limits.max_labels:
        fail(f"too many labels: {len(req.labels)}; the limit max_labels is {limits.max_labels}")
    pairs = req.labels.items() if isinstance(req.labels, dict) else ((x, x) for x in req.labels)
    for i, (name, description) in enumerate(pairs):
        for what, value in (("label", name), ("description", description)):
            if len(value) > limits.max_label_chars:
                fail(
                    f"the {what} of labels[{i}] has {len(value)} characters; "
                    f"the limit max_label_chars is {limits.max_label_chars}"
                )


def _result(text: str, entities: list[Any], html: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"entities": [e.to_dict() for e in entities]}
    if html:
        out["html"], out["table"] = render(text, entities), render_table(text, entities)
    return out


def _public(name: str | None) -> str | None:
    """A name to show: a local path loses its folders (a Hub id such as ``org/model`` is kept)."""
    return PurePath(name).name if name and PurePath(name).is_absolute() else name


def _web_file(name: str) -> str:
    return (resources.files("anyner") / "web" / name).read_text(encoding="utf-8")


def create_app(
    model: Any,
    *,
    limits: Limits | None = None,
    batch_size: int = 8,
    queue_size: int = 64,
    max_wait_ms: float = 5.0,
    name: str | None = None,
) -> FastAPI:
    """The FastAPI app serving ``model`` (an :class:`~anyner.AnyNER` or anything with its ``predict_batch``).

    Args:
        limits: what one request may hold (default :class:`Limits`).
        batch_size: most texts the worker passes to ``predict_batch`` at once.
        queue_size: most requests waiting for the worker; more are answered 503.
        max_wait_ms: how long the worker waits for more requests to fill a batch.
        name: the model's name in ``GET /v1/model`` (default ``model.config.name``).
    """
    from anyner import __version__

    limits = limits if limits is not None else Limits()
    batcher = MicroBatcher(model, batch_size=batch_size, queue_size=queue_size, max_wait_ms=max_wait_ms)
    config = getattr(model, "config", None)
    info = ModelInfo(
        name=_public(name or getattr(config, "name", None) or type(model).__name__),
        encoder=_public(getattr(config, "encoder", None)),
        max_words=getattr(config, "max_len", None), max_tokens=getattr(model, "max_tokens", None),
        batch_size=batch_size, queue_size=queue_size, limits=asdict(limits),
    )  # fmt: skip
    page, script = _web_file("index.html"), _web_file("app.js")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        try:
            yield
        finally:
            await asyncio.to_thread(batcher.close)

    description = "Open-type named entity recognition: find entities of any type you name."
    app = FastAPI(title="anyner", version=__version__, description=description, lifespan=lifespan)
    app.state.batcher, app.state.limits = batcher, limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler, except that the errors echo the input, which may hold anything
        return _AsciiJSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/app.js", include_in_schema=False)
    async def app_js() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8", headers=_PAGE_HEADERS)

    @app.get("/health", response_model=Health, summary="Whether the server answers")
    async def health() -> Health:
        return Health(status="ok", queued=batcher.queue.qsize())

    @app.get("/v1/model", response_model=ModelInfo, summary="The model's name and the limits")
    async def model_info() -> ModelInfo:
        return info

    errors: dict[int | str, dict[str, Any]] = {code: {"model": ErrorOut} for code in (413, 500, 503)}
    errors[503]["description"] = "The queue is full; retry after `Retry-After` seconds"

    @app.post(
        "/v1/entities",
        response_model=TextResult | BatchResult,
        response_model_exclude_none=True,
        summary="Find entities in one text or a batch",
        responses=errors,
    )
    async def entities(req: EntitiesRequest) -> dict[str, Any]:
        texts = [req.text] if req.text is not None else list(req.texts or [])
        _check_limits(req, texts, limits)
        flat = not req.nested if req.nested is not None else req.flat
        if not texts:  # nothing to run, but the labels and threshold are still checked
            try:
                model.predict_batch(
                    [], req.labels, threshold=req.threshold, flat=flat, multi_label=req.multi_label
                )
            except (ValueError, TypeError) as e:
                raise HTTPException(422, str(e)) from e
            return {"results": []}
        try:
            found = await batcher.predict(texts, req.labels, req.threshold, flat, req.multi_label)
        except QueueFull:
            raise HTTPException(
                503,
                f"the server is busy: its queue of {queue_size} requests (queue_size) is full; retry later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None
        except (ValueError, TypeError) as e:
            raise HTTPException(422, str(e)) from e
        except Exception as e:
            log.exception("the model failed on a request")
            raise HTTPException(500, f"the model failed: {type(e).__name__}: {e}") from e
        pairs = list(zip(texts, found, strict=True))
        build = lambda: [_result(t, ents, req.html) for t, ents in pairs]  # noqa: E731
        results = await asyncio.to_thread(build) if req.html else build()  # rendering may take a while
        return results[0] if req.text is not None else {"results": results}

    return app


def run(
    model: Any, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **options: Any
) -> None:
    """Serve ``model`` with uvicorn until interrupted; ``options`` go to :func:`create_app`."""
    import uvicorn

    app = create_app(model, **options)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "listening on %s: the server has no authentication; anyone who reaches it can use it", host
        )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
