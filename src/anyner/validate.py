"""The argument checks every entry point shares: the library, the CLI, the server and the
training config raise the same error, with the same words, for the same bad value.

Each check returns the value it accepted (as the plain Python type) or raises
``ValueError`` naming ``what`` and the value. Nothing here imports torch.
"""

from __future__ import annotations

from numbers import Real
from typing import Any


def positive_int(value: Any, what: str) -> int:
    """An integer >= 1 (bools are refused: ``True`` is no batch size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(value: Any, what: str) -> int:
    """An integer >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return int(value)


def unit_interval(value: Any, what: str) -> float:
    """A number in [0, 1]; numpy scalars are numbers too (``numbers.Real``), bools and NaN are not."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{what} must be a number in [0, 1], got {value!r}")
    return float(value)


def threshold(value: Any, what: str = "threshold") -> float:
    """A score threshold: a number in [0, 1]."""
    return unit_interval(value, what)


__all__ = ["non_negative_int", "positive_int", "threshold", "unit_interval"]
