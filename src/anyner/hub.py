"""Uploading a model folder to the Hugging Face Hub (``AnyNER.push_to_hub``, ``anyner push``).

The folder is the one ``save_pretrained`` writes (``gliner_config.json``, ``model.safetensors``,
the tokenizer) plus a model card (``README.md``), so the Hub repository loads in anyner and in
the ``gliner`` package. Every way the upload can fail (offline, no token, a refused token, no
network) is one :class:`HubError` that says what happened and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CARD_NAME = "README.md"
LOGIN_HINT = "set HF_TOKEN to a token with write access, or run `huggingface-cli login` (`hf auth login`)"
_TRUE = {"1", "on", "yes", "true"}


class HubError(OSError):
    """The Hub cannot be reached or refused the upload; the message says why and what to do."""


def offline() -> bool:
    """Whether the Hub is switched off for this process (``HF_HUB_OFFLINE``), read at each call."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def check_online(repo_id: str) -> None:
    """A :class:`HubError` when ``HF_HUB_OFFLINE`` switches the Hub off: nothing can be pushed."""
    if offline():
        raise HubError(
            f"cannot push to {repo_id!r}: the Hugging Face Hub is switched off in this environment "
            "(HF_HUB_OFFLINE is set); unset HF_HUB_OFFLINE where there is a network, and " + LOGIN_HINT
        )


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it is a Hub repository id (``name`` or ``owner/name``), else a ValueError."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or not repo_id:
        raise ValueError(f"repo_id must be a Hub repository id such as 'you/my-ner-model', got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ValueError(
            f"repo_id {repo_id!r} is not a Hub repository id such as 'you/my-ner-model': {e}"
        ) from e
    return repo_id


def model_card(repo_id: str, config: Any, version: str) -> str:
    """A model card for ``repo_id``: Hub metadata, how to load the model, its settings."""
    settings = {
        "encoder": config.encoder,
        "span mode": config.span_mode,
        "widest span (words)": config.max_width,
        "head width": config.hidden_size,
        "words per window": config.max_len,
    }
    rows = "\n".join(f"| {k} | `{v}` |" for k, v in settings.items())
    return f"""---
library_name: gliner
pipeline_tag: token-classification
tags:
- anyner
- gliner
- named-entity-recognition
---

# {repo_id.split("/")[-1]}

A GLiNER span model for open-type named entity recognition: it finds entities of any
type named at prediction time. Saved by anyner {version}.

```python
from anyner import AnyNER

model = AnyNER.from_pretrained("{repo_id}")
model.predict("Bill Gates founded Microsoft.", ["person", "organization"])
```

The folder is in the `gliner` package's format, so `GLiNER.from_pretrained("{repo_id}")`
loads it too.

| setting | value |
|---|---|
{rows}
"""


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
    revision: str | None = None,
) -> str:
    """Create ``repo_id`` on the Hub if needed and upload ``folder`` into it; returns the commit URL.

    Raises:
        ValueError: ``repo_id`` is not a Hub repository id (``name`` or ``owner/name``).
        HubError: offline (``HF_HUB_OFFLINE``), no token or a refused one, no network.
    """
    check_repo_id(repo_id)
    check_online(repo_id)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            revision=revision,
            commit_message=commit_message or "Upload model saved by anyner",
        )
    except Exception as e:  # the Hub library's errors have no common base: map each to one message
        raise HubError(_explain(repo_id, e)) from e
    return str(getattr(info, "commit_url", None) or info)


def _explain(repo_id: str, e: Exception) -> str:
    """One line saying why the push of ``repo_id`` failed and what to do."""
    from huggingface_hub import errors

    what = f"cannot push to {repo_id!r}"
    if isinstance(e, errors.OfflineModeIsEnabled):
        return (
            f"{what}: the Hugging Face Hub is switched off (HF_HUB_OFFLINE is set); unset it, and "
            + LOGIN_HINT
        )
    if isinstance(e, errors.LocalTokenNotFoundError):
        return f"{what}: no Hugging Face token found; " + LOGIN_HINT
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        return (
            f"{what}: the Hub refused the token (HTTP {status}); {LOGIN_HINT}, and check that the "
            f"token may write to {repo_id.split('/')[0]!r}"
        )
    if isinstance(e, errors.HfHubHTTPError):
        return f"{what}: the Hub answered HTTP {status}: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return (
        f"{what}: the Hugging Face Hub could not be reached ({type(e).__name__}: "
        f"{str(e).splitlines()[0] if str(e) else 'no detail'}); check the network, and " + LOGIN_HINT
    )


__all__ = ["CARD_NAME", "HubError", "check_online", "check_repo_id", "model_card", "offline", "push_folder"]
