"""Regression guard for the built-in model: plain cases it must get right (a guard, not a metric)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

BUILTIN = Path(str(resources.files("anyner.resources") / "builtin"))

pytestmark = pytest.mark.skipif(
    not (BUILTIN / "gliner_config.json").is_file(), reason="this install ships no trained built-in model"
)

CASES = [
    (
        "Bill Gates founded Microsoft on April 4, 1975.",
        ["person", "organization", "date"],
        {("Bill Gates", "person"), ("Microsoft", "organization"), ("April 4, 1975", "date")},
    ),
    (
        "Angela Merkel met Emmanuel Macron in Paris.",
        ["person", "city"],
        {("Angela Merkel", "person"), ("Emmanuel Macron", "person")},  # v0.3 and v0.4 call Paris a person
    ),
    (
        "Apple released the iPhone in California in 2007.",
        ["organization", "product", "location", "date"],
        {
            ("iPhone", "product"),
            ("California", "location"),
            ("2007", "date"),
        },  # Apple: v0.3 product, v0.4 right
    ),
]


@pytest.fixture(scope="module")
def builtin():
    from anyner import AnyNER

    return AnyNER.from_pretrained()


@pytest.mark.parametrize("text, labels, expected", CASES)
def test_builtin_finds_plain_entities(builtin, text, labels, expected):
    found = {(e.text, e.label) for e in builtin.predict(text, labels)}
    assert expected <= found, f"missing {expected - found}; found {found}"


def test_builtin_is_the_default_and_loads_offline(builtin):
    assert builtin.config.encoder == "sentence-transformers/all-MiniLM-L6-v2"
    assert (BUILTIN / "MODEL_CARD.md").is_file()
