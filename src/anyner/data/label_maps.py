"""Per-corpus maps from publisher label codes to natural names.

Each corpus family has one reviewable JSON file in ``anyner.resources.label_maps``::

    {"corpus": ..., "description": ..., "source": ..., "license": ...,
     "aliases": [...], "notes": ..., "labels": {code: natural name}}

A model prompted with natural language learns more from ``"gene or gene product"``
than from ``Gene_or_gene_product``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

MAPS_PACKAGE = "anyner.resources.label_maps"


@cache
def _load_all() -> dict[str, dict[str, Any]]:
    maps: dict[str, dict[str, Any]] = {}
    for entry in resources.files(MAPS_PACKAGE).iterdir():
        if not entry.name.endswith(".json"):
            continue
        data = json.loads(entry.read_text(encoding="utf-8"))
        labels = data.get("labels")
        if not isinstance(labels, dict) or not all(
            isinstance(code, str) and isinstance(name, str) and name.strip() for code, name in labels.items()
        ):
            raise ValueError(f"label map {entry.name}: 'labels' must map codes to non-empty names")
        maps[entry.name.removesuffix(".json")] = data
    return maps


def available_label_maps() -> list[str]:
    """The corpus names that have a label map, sorted."""
    return sorted(_load_all())


def _resolve(corpus: str) -> str:
    maps = _load_all()
    if corpus in maps:
        return corpus
    for name, data in maps.items():
        if corpus in data.get("aliases", ()):
            return name
    raise KeyError(f"no label map for {corpus!r}; available: {', '.join(sorted(maps))}")


def load_label_map(corpus: str) -> dict[str, str]:
    """The code -> natural name map of a corpus (its name or an alias, e.g. ``"multiconer2-en"``).

    Example:
        >>> load_label_map("bionlp13cg")["Gene_or_gene_product"]
        'gene or gene product'

    Raises:
        KeyError: no map has that name or alias.
    """
    return dict(_load_all()[_resolve(corpus)]["labels"])


def label_map_info(corpus: str) -> dict[str, Any]:
    """The whole map file of a corpus: corpus, description, source, license, aliases, notes, labels."""
    return json.loads(json.dumps(_load_all()[_resolve(corpus)]))
