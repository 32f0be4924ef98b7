"""The version of this copy of anyner, read without importing anything heavy."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

UNKNOWN = "0+unknown"

_PACKAGE = Path(__file__).resolve().parent
_VERSION_LINE = re.compile(r'^version\s*=\s*"([^"]+)"\s*$', re.M)


def _source_tree_version() -> str | None:
    """The version in ``pyproject.toml`` when this package runs from a source checkout (``src/anyner``).

    A checkout is read first: the installed distribution's metadata may belong to another
    checkout (an editable install elsewhere, with ``PYTHONPATH`` pointing here) or be stale.
    """
    if _PACKAGE.parent.name != "src":
        return None
    pyproject = _PACKAGE.parent.parent / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    project = text.split("[project]", 1)[1] if "[project]" in text else ""
    project = re.split(r"^\[", project, maxsplit=1, flags=re.M)[0]  # only the [project] table
    m = _VERSION_LINE.search(project)
    return m.group(1) if m else None


def package_version() -> str:
    """This copy's version: the source checkout's ``pyproject.toml``, else the installed
    distribution's metadata, else ``"0+unknown"`` (files copied without either)."""
    found = _source_tree_version()
    if found:
        return found
    try:
        return metadata.version("anyner")
    except metadata.PackageNotFoundError:
        return UNKNOWN
