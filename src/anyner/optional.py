"""Optional dependencies, imported on first use with an error that names the extra to install.

The light install (``pip install anyner``) has neither torch nor transformers: it runs
ONNX exports with ONNX Runtime. Modules that need torch for some of their functions (the
checkpoint reader's weight functions, the pipeline's torch backend) hold a
:class:`OptionalModule` in place of the module, so that importing them stays possible and
light, and only the functions that need the package fail, saying what to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

# package -> the extra that installs it
EXTRAS = {"torch": "torch", "transformers": "torch", "onnx": "onnx", "onnxruntime": "onnx"}


def available(name: str) -> bool:
    """Whether the package ``name`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def require(name: str, what: str = "this") -> Any:
    """``import name``, or an ImportError naming the extra that installs it."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        root = name.split(".")[0]
        extra = EXTRAS.get(root, root)
        raise ImportError(
            f"{what} needs {root}, which is not installed: pip install 'anyner[{extra}]' "
            "(the light install runs exported ONNX models only)"
        ) from e


class OptionalModule:
    """A module imported on first attribute access (``torch.float32``, ``torch.device(...)``)."""

    def __init__(self, name: str, what: str = "this"):
        self._name, self._what, self._module = name, what, None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = require(self._name, self._what)
        return getattr(self._module, attr)


__all__ = ["EXTRAS", "OptionalModule", "available", "require"]
