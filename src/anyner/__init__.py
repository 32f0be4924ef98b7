"""anyner: open-type named entity recognition with GLiNER span models.

``import anyner`` is light: torch and transformers load on first use of ``AnyNER``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anyner._version import package_version
from anyner.types import Entity, Relation

if TYPE_CHECKING:
    from anyner.config import AnyNERConfig
    from anyner.label_vectors import LabelEmbeddings
    from anyner.pipeline import AnyNER

__version__: str = package_version()
__all__ = ["AnyNER", "AnyNERConfig", "Entity", "LabelEmbeddings", "Relation", "__version__"]


def __getattr__(name: str):
    if name == "AnyNER":
        from anyner.pipeline import AnyNER

        return AnyNER
    if name == "AnyNERConfig":
        from anyner.config import AnyNERConfig

        return AnyNERConfig
    if name == "LabelEmbeddings":
        from anyner.label_vectors import LabelEmbeddings

        return LabelEmbeddings
    raise AttributeError(f"module 'anyner' has no attribute {name!r}")
