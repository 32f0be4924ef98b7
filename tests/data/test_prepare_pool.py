"""scripts/prepare_pool.py: the training pool's sets in other forms, read on the real files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import shared_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "prepare_pool.py"


@pytest.fixture(scope="module")
def pool():
    spec = importlib.util.spec_from_file_location("prepare_pool", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if (
        shared_dir() is not None
    ):  # the script reads ../shared beside the repository; tests may find it elsewhere
        module.DATA = shared_dir() / "data" / "train"
    return module


def test_sentences_never_cut_inside_a_span_or_after_an_abbreviation(pool):
    text = "The U.S. Army left. Dr. Smith stayed in St. Louis. Then the New York Times. Wrote it."
    ranges = pool.sentences(text)
    assert [text[a:b].strip() for a, b in ranges] == [
        "The U.S. Army left.",
        "Dr. Smith stayed in St. Louis.",
        "Then the New York Times.",
        "Wrote it.",
    ]
    # a span across a would-be break keeps the two sentences together
    start = text.index("Times")
    merged = pool.sentences(text, [(start, text.index("Wrote") + 5)])
    assert text[merged[-1][0] : merged[-1][1]].strip() == "Then the New York Times. Wrote it."


def test_bio_tags_become_spans_with_natural_names(pool):
    tally = pool.Tally("t")
    rows = [("R", "B-pers.author"), ("Ellis", "I-pers.author"), ("on", "O"), ("Ajax", "I-work.primlit")]
    words, spans = pool._bio(rows, {"pers.author": "ancient author", "work.primlit": "ancient work"}, tally)
    assert words == ["R", "Ellis", "on", "Ajax"]
    assert spans == [(0, 2, "ancient author"), (3, 4, "ancient work")]  # an I- after O starts a span
    pool._bio([("x", "B-NEW")], {}, tally)
    assert tally.unmapped == {"NEW": 1}


# what each set's publisher (or ../shared/data/README.md) says it holds, in records and spans
EXPECTED = {
    "maintie": (1076, 3397),
    "hands_fine": (982, 2420),  # one span a mention
    "nlupp": (3080, 1987),
    "restaurant8k": (8198 + 3731, 7635 + 3477),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_sets_convert_with_their_published_counts(pool, name, tmp_path):
    if shared_dir() is None or not (shared_dir() / "data" / "train").is_dir():
        pytest.skip("needs the training pool at ../shared/data/train")
    tally = pool.convert(name, tmp_path)
    assert (tally.records, tally.spans) == EXPECTED[name]
    lines = (tmp_path / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == tally.records
    for line in lines:
        record = json.loads(line)
        for start, end, label in record["ner"]:
            assert 0 <= start <= end < len(record["tokenized_text"]) and label.strip()


def test_annoctr_splits_and_every_set_reads(pool):
    if shared_dir() is None or not (shared_dir() / "data" / "train").is_dir():
        pytest.skip("needs the training pool at ../shared/data/train")
    full, ext = pool.convert("annoctr", None), pool.convert("annoctr_ext", None)
    assert full.spans + ext.spans == 18269  # the README's span count for all 400 reports
    assert ext.records == 34347 and set(ext.labels) == {
        "organization", "location", "industry sector", "date", "command or code snippet"
    }  # fmt: skip
    for name in ("gro", "hipe_ajmc", "presidio", "re3d", "hands"):
        tally = pool.convert(name, None)
        assert tally.records and tally.spans, name
