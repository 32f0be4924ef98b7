"""anyner: open-type named entity recognition with GLiNER span models."""

from anyner.config import AnyNERConfig
from anyner.pipeline import AnyNER
from anyner.types import Entity

__version__ = "0.1.0"
__all__ = ["AnyNER", "AnyNERConfig", "Entity", "__version__"]
