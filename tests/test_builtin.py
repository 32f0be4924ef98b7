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


def test_builtin_finds_plain_relations(builtin):
    """The built-in relation model (builtin/relations, loaded on the first call) on a plain case,
    with relation names of the kind it was trained on (Wikidata properties)."""
    pytest.importorskip("torch")
    text = "Marie Curie was born in Warsaw and worked at the University of Paris."
    entities, relations = builtin.predict_relations(
        text, ["person", "city", "organization"], ["place of birth", "employer"]
    )
    found = {(r.head.text, r.label, r.tail.text) for r in relations}
    assert found == {
        ("Marie Curie", "place of birth", "Warsaw"),
        ("Marie Curie", "employer", "University of Paris"),
    }
    assert all(r.head in entities and r.tail in entities for r in relations)
    assert (BUILTIN / "relations" / "MODEL_CARD.md").is_file()
    # entities alone are the entity model's, whether or not the relation model was loaded
    assert builtin.predict(text, ["person", "city"]) == type(builtin).from_pretrained().predict(
        text, ["person", "city"]
    )
