"""Calibrated thresholds (``threshold="auto"``): one threshold per label-frequency band.

A model folder may hold ``calibration.json``: thresholds fitted on held-out dev sets for
labels seen often, rarely or never in the training data. Under ``threshold="auto"`` a label
``L`` gets its threshold so (the key is ``L`` stripped and lowercased; for a label given
with a description, its name):

1. ``labels[key]`` when the file names the label itself;
2. else the first band whose ``max_count`` is null or at least ``label_counts.get(key, 0)``.

The file (version 1)::

    {"version": 1,
     "default": 0.5,
     "bands": [{"max_count": 0, "threshold": 0.3}, {"max_count": 1000, "threshold": 0.4},
               {"max_count": null, "threshold": 0.5}],
     "labels": {"person": 0.55},
     "label_counts": {"person": 51234, "actor": 812},
     "fitted_on": "free text: which dev sets, how many sentences, the F1 before/after"}

``bands`` are sorted by ``max_count``, the last one null (any count). ``default`` is the
threshold :func:`anyner.calibrate.fit_bands` gave the bands in which no dev label fell. ``labels`` and
``fitted_on`` may be left out; ``label_counts`` too (every label then counts 0).

:func:`anyner.calibrate.fit_bands` fits the band thresholds on benchmark folders: it scores each dev set once,
at a low threshold, keeping every candidate (span, label, score), then decodes those
candidates again for each threshold tried (coordinate ascent over the bands), with the
decoder :meth:`anyner.AnyNER.predict` uses, so that the F1 it reports is that of
``predict(..., threshold=calibration.thresholds(labels))``.

Loading and resolving need neither torch nor a model (the light install reads the file too).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anyner import validate
from anyner.fileio import atomic_write_text

if TYPE_CHECKING:
    pass

CALIBRATION_NAME = "calibration.json"
CALIBRATION_VERSION = 1
AUTO = "auto"
"""The threshold that asks for the model's calibrated thresholds."""
DEFAULT_EDGES: tuple[int, ...] = (0, 100, 1000, 10000)
"""The ``max_count`` of the bands :func:`anyner.calibrate.fit_bands` fits by default; a last band takes any count."""
GRID: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 20))
"""The thresholds :func:`anyner.calibrate.fit_bands` tries: 0.05, 0.10, ..., 0.95."""
_KEYS = ("version", "default", "bands", "labels", "label_counts", "fitted_on")


def is_auto(threshold: Any) -> bool:
    """Whether ``threshold`` asks for the calibrated thresholds (the string ``"auto"``)."""
    return isinstance(threshold, str) and threshold == AUTO


def no_calibration_message(what: str = "threshold='auto'") -> str:
    """The error of ``threshold="auto"`` on a model without ``calibration.json``."""
    return (
        f"{what} needs the model's calibrated thresholds, and this model has no calibration (no "
        f"{CALIBRATION_NAME} in its folder): pass a number instead, e.g. 0.5, or fit one with "
        "`anyner calibrate MODEL_DIR --dev FOLDER ... --label-counts FILE.json`"
    )


def label_key(label: str) -> str:
    """The key of a label in ``calibration.json``: the name stripped and lowercased."""
    return label.strip().lower()


@dataclass(frozen=True, slots=True)
class Band:
    """Labels seen at most ``max_count`` times in training (None: any number) get ``threshold``."""

    max_count: int | None
    threshold: float


@dataclass(frozen=True)
class Calibration:
    """Thresholds per label-frequency band (and per label), as ``calibration.json`` holds them.

    Build one with :meth:`load`, :func:`anyner.calibrate.fit_bands` or directly; every field is checked (ValueError).
    Label keys (of ``labels`` and ``label_counts``) are stripped and lowercased.

    Example:
        >>> cal = Calibration(bands=(Band(0, 0.3), Band(None, 0.5)), label_counts={"person": 9000})
        >>> cal.thresholds(["person", "spaceship"])
        {'person': 0.5, 'spaceship': 0.3}
    """

    default: float = 0.5
    bands: tuple[Band, ...] = (Band(None, 0.5),)
    labels: Mapping[str, float] = field(default_factory=dict)
    label_counts: Mapping[str, int] = field(default_factory=dict)
    fitted_on: str = ""
    source: str | None = field(default=None, compare=False)  # the file it was read from

    def __post_init__(self) -> None:
        where = self.source or "calibration"
        set_ = object.__setattr__  # frozen: the checked, normalized values replace the given ones
        set_(self, "default", checked_unit(self.default, f"{where}: default"))
        set_(self, "bands", _check_bands(self.bands, where))
        set_(self, "labels", keyed_values(self.labels, where, "labels", lambda v, w: checked_unit(v, w)))
        set_(self, "label_counts", keyed_values(self.label_counts, where, "label_counts", checked_count))
        if not isinstance(self.fitted_on, str):
            raise ValueError(f"{where}: fitted_on must be a string, got {self.fitted_on!r}")

    # ------------------------------------------------------------------ resolution

    def band_index(self, count: int) -> int:
        """The index in :attr:`bands` of the band of a label seen ``count`` times in training."""
        for i, band in enumerate(self.bands):
            if band.max_count is None or count <= band.max_count:
                return i
        raise AssertionError("the last band takes any count")  # checked in __post_init__

    def band_for(self, count: int) -> Band:
        """The band of a label seen ``count`` times in training: the first whose ``max_count`` is
        None or at least ``count``."""
        return self.bands[self.band_index(count)]

    def threshold_for(self, label: str) -> float:
        """The calibrated threshold of one label (see the module docstring)."""
        if not isinstance(label, str):
            raise TypeError(f"a label must be a str, got {label!r}")
        key = label_key(label)
        if key in self.labels:
            return self.labels[key]
        return self.band_for(self.label_counts.get(key, 0)).threshold

    def thresholds(self, labels: Iterable[str] | Mapping[str, str]) -> dict[str, float]:
        """``label -> threshold`` for label names (a dict label -> description: its names), as
        ``predict(..., threshold=...)`` takes it."""
        if isinstance(labels, str):
            raise TypeError(f"labels must be a list of strings, not the string {labels!r}")
        return {name: self.threshold_for(name) for name in labels}

    # ------------------------------------------------------------------ files

    @classmethod
    def from_dict(cls, data: Any, source: str = CALIBRATION_NAME) -> Calibration:
        """A calibration from the parsed JSON of ``calibration.json``; ValueError naming ``source``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        unknown = [k for k in data if k not in _KEYS]
        if unknown:
            raise ValueError(f"{source}: unknown field {unknown[0]!r}; the fields are {', '.join(_KEYS)}")
        version = data.get("version")
        if version != CALIBRATION_VERSION or isinstance(version, bool):
            raise ValueError(
                f"{source}: version must be {CALIBRATION_VERSION}, got {version!r} (a newer anyner may read it)"
            )
        for key in ("default", "bands"):
            if key not in data:
                raise ValueError(f"{source}: the field {key!r} is missing")
        bands = data["bands"]
        if not isinstance(bands, list):
            raise ValueError(f"{source}: bands must be a list of {{max_count, threshold}} objects")
        parsed = []
        for i, band in enumerate(bands):
            if not isinstance(band, dict) or set(band) != {"max_count", "threshold"}:
                raise ValueError(
                    f"{source}: bands[{i}] must be an object with exactly max_count and threshold, got {band!r}"
                )
            parsed.append(Band(band["max_count"], band["threshold"]))
        for key in ("labels", "label_counts"):
            if not isinstance(data.get(key, {}), dict):
                raise ValueError(f"{source}: {key} must be an object label -> value")
        return cls(
            default=data["default"], bands=tuple(parsed), labels=data.get("labels", {}),
            label_counts=data.get("label_counts", {}), fitted_on=data.get("fitted_on", ""), source=source,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``calibration.json``."""
        return {
            "version": CALIBRATION_VERSION,
            "default": self.default,
            "bands": [{"max_count": b.max_count, "threshold": b.threshold} for b in self.bands],
            "labels": dict(self.labels),
            "label_counts": dict(self.label_counts),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        """Read ``calibration.json``: the file, or a model folder holding it.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file is not a valid calibration (the message names it).
        """
        path = Path(path)
        if path.is_dir():
            path = path / CALIBRATION_NAME
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such calibration file") from None
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}: not UTF-8 text ({e.reason})") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{e.lineno}: invalid JSON: {e.msg}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def find(cls, folder: str | Path) -> Calibration | None:
        """The calibration of a model folder, None when it has no ``calibration.json``.

        Raises:
            ValueError: the folder's file is not a valid calibration.
        """
        path = Path(folder) / CALIBRATION_NAME
        return cls.load(path) if path.is_file() else None

    def save(self, path: str | Path) -> Path:
        """Write ``calibration.json`` (to ``path``, or into ``path`` when it is a folder), atomically:
        a reader sees the old file or the new one, never a part. Returns the file's path."""
        path = Path(path)
        if path.is_dir():
            path = path / CALIBRATION_NAME
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")


def checked_unit(value: Any, what: str) -> float:
    return validate.unit_interval(value, what)


def checked_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be an integer >= 0, got {value!r}")
    return int(value)


def keyed_values(values: Any, where: str, name: str, check: Callable[[Any, str], Any]) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise ValueError(f"{where}: {name} must be an object label -> value, got {type(values).__name__}")
    out: dict[str, Any] = {}
    for label, value in values.items():
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"{where}: {name} has a blank or non-string label {label!r}")
        key = label_key(label)
        value = check(value, f"{where}: {name}[{label!r}]")
        if key in out and out[key] != value:
            raise ValueError(
                f"{where}: {name} gives {key!r} two values ({out[key]} and {value}) under labels that differ "
                "only in case or spaces"
            )
        out[key] = value
    return out


def _check_bands(bands: Any, where: str) -> tuple[Band, ...]:
    if not isinstance(bands, Sequence) or isinstance(bands, str) or not bands:
        raise ValueError(f"{where}: bands must be a non-empty list, the last with max_count null")
    out, last = [], -1
    for i, band in enumerate(bands):
        if not isinstance(band, Band):
            raise ValueError(f"{where}: bands[{i}] must be a Band(max_count, threshold), got {band!r}")
        threshold = checked_unit(band.threshold, f"{where}: bands[{i}].threshold")
        count = band.max_count
        if count is None:
            if i != len(bands) - 1:
                raise ValueError(f"{where}: bands[{i}] has max_count null, which only the last band may have")
        else:
            count = checked_count(count, f"{where}: bands[{i}].max_count")
            if count <= last:
                raise ValueError(
                    f"{where}: bands must be sorted by max_count, each larger than the one before; "
                    f"bands[{i}] has {count} after {last}"
                )
            last = count
        out.append(Band(count, threshold))
    if out[-1].max_count is not None:
        raise ValueError(
            f"{where}: the last band must have max_count null (any count), got {out[-1].max_count}"
        )
    return tuple(out)


def bands_from_edges(edges: Sequence[int], thresholds: Sequence[float] | float = 0.5) -> tuple[Band, ...]:
    """Bands ``max_count`` = each edge, then None, with ``thresholds`` (one for all, or one per band)."""
    counts: list[int | None] = [*edges, None]
    values = [thresholds] * len(counts) if isinstance(thresholds, int | float) else list(thresholds)
    if len(values) != len(counts):
        raise ValueError(f"{len(values)} thresholds for {len(counts)} bands")
    return tuple(Band(c, t) for c, t in zip(counts, values, strict=True))


def check_edges(edges: Any, what: str = "edges") -> tuple[int, ...]:
    """Band edges: integers >= 0, strictly increasing (may be empty: one band for every count)."""
    if isinstance(edges, str) or not isinstance(edges, Sequence):
        raise ValueError(f"{what} must be a list of integers >= 0, got {edges!r}")
    out = tuple(checked_count(e, f"each of {what}") for e in edges)
    if any(b <= a for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"{what} must be strictly increasing, got {list(out)}")
    return out


__all__ = [
    "AUTO",
    "CALIBRATION_NAME",
    "DEFAULT_EDGES",
    "GRID",
    "Band",
    "Calibration",
    "bands_from_edges",
    "check_edges",
    "is_auto",
    "label_key",
    "no_calibration_message",
]
