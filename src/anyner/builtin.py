"""The model shipped inside the package, used when no model is named.

This module only finds the folder: it imports nothing of the pipeline, builds no
model and touches no global state (random seeds, temporary folders).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

BUILTIN_DIR = "builtin"
# The name that stands for the built-in model wherever a model is named (CLI --model, HTTP /v1/model).
BUILTIN_NAME = "builtin"


def builtin_model_path() -> Path:
    """Folder of the built-in model (``anyner/resources/builtin``).

    Raises:
        FileNotFoundError: this install lacks the model's files (a broken or trimmed
            install); the message says how to repair it or pass a model folder.
    """
    folder = Path(str(resources.files("anyner.resources") / BUILTIN_DIR))
    if not (folder / "gliner_config.json").is_file():
        raise FileNotFoundError(
            f"the built-in model is missing from this install ({folder} has no gliner_config.json): "
            "reinstall anyner, or pass a model folder (--model PATH / AnyNER.from_pretrained(PATH))"
        )
    return folder


__all__ = ["BUILTIN_NAME", "builtin_model_path"]
