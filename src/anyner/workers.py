"""The app factory of ``anyner serve --workers N``: uvicorn imports it by name in each worker
process (``anyner.workers:app_from_env``, ``factory=True``), and each worker loads its own model.

A module of its own: it needs the server, the deployment options and the model loader, and
none of those imports it, so no import circle forms.
"""

from __future__ import annotations

import json
import os
from typing import Any

from anyner import deploy


def load_model(name: str | None, backend: str, threads: int | None = None) -> Any:
    """The worker's model. The parent process loaded it once to check it before starting the
    workers, so an error here is not expected; it is raised as it comes."""
    from anyner.pipeline import AnyNER

    return AnyNER.from_pretrained(name, backend=backend, threads=threads)


def app_from_env() -> Any:
    """The app of one uvicorn worker (``--workers N``), each with its own model: uvicorn calls
    it in each worker process (``factory=True``), with the options of ``ANYNER_SERVE_OPTIONS``.

    Raises:
        RuntimeError: the variable is missing or is not such options.
    """
    from anyner import serve

    raw = os.environ.get(deploy.OPTIONS_ENV)
    if not raw:
        raise RuntimeError(
            f"{deploy.OPTIONS_ENV} is not set: this factory is for the workers of `anyner serve --workers N`"
        )
    try:
        spec = json.loads(raw)
        options = dict(spec["app"])
        model_name, backend, key_file = spec["model"], spec["backend"], spec["api_key_file"]
        threads = spec.get("threads")
    except (ValueError, KeyError, TypeError) as e:
        raise RuntimeError(f"{deploy.OPTIONS_ENV} does not hold the options of `anyner serve`: {e}") from e
    if options.get("limits") is not None:
        options["limits"] = serve.Limits(**options["limits"])
    key = deploy.read_api_key(key_file)
    model = load_model(model_name, backend, threads)
    return serve.create_app(model, api_key=key, **options)


__all__ = ["app_from_env", "load_model"]
