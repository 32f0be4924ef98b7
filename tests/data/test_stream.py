"""Indexed corpora: reading by position gives exactly what the ordinary reader gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anyner.data import load_label_map, read_examples
from anyner.data.stream import index_examples
from tests.conftest import shared_dir

DATA = ((shared_dir() or Path(__file__).resolve().parents[2].parent / "shared") / "data").resolve()


def write(path: Path, text: str, newline: str = "\n", bom: bool = False) -> Path:
    data = text.replace("\n", newline).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def as_tuples(examples) -> list:
    return [(e.words, [(s.start, s.end, s.label) for s in e.spans], e.source) for e in examples]


def same_as_reader(path: Path, **kwargs) -> None:
    expected, expected_report = read_examples(path, **kwargs)
    index, report = index_examples(path, **kwargs)
    assert index.streamed
    assert as_tuples(index) == as_tuples(expected)
    assert str(report) == str(expected_report)
    assert as_tuples([index[-1]]) == as_tuples(expected[-1:]) if expected else len(index) == 0


CONLL = """-DOCSTART- -X- O O

# id 1
EU\tB-ORG
rejects\tO
German\tB-MISC

Peter B-PER
Blackburn I-PER
# id 2
Ünïcödé B-LOC
ok O
"""


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", [False, True])
def test_conll_index_matches_reader(tmp_path, newline, bom):
    same_as_reader(write(tmp_path / "a.conll", CONLL, newline, bom))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("bom", [False, True])
def test_jsonl_index_matches_reader(tmp_path, newline, bom):
    records = [
        {"tokenized_text": ["Ünïcödé", "city", "🙂"], "ner": [[0, 0, "city"]]},
        {"tokenized_text": [], "ner": []},  # empty: skipped and counted
        {"tokenized_text": ["a", "b"], "ner": [[0, 1, "x"], [0, 1, "x"]]},  # duplicate span noted
        {"tokenized_text": ["no", "spans"], "ner": []},
    ]
    text = "".join(
        json.dumps(r, ensure_ascii=False) + "\n" + ("\n" if i == 1 else "") for i, r in enumerate(records)
    )
    same_as_reader(write(tmp_path / "a.jsonl", text, newline, bom))


def test_skipped_bad_lines_keep_the_positions_right(tmp_path):
    text = '{"tokenized_text": ["a"], "ner": [[0, 0, "x"]]}\nnot json\n{"tokenized_text": ["b"], "ner": [[0, 3, "y"]]}\n{"tokenized_text": ["c", "d"], "ner": [[1, 1, "z"]]}\n'
    same_as_reader(write(tmp_path / "a.jsonl", text), on_error="skip")
    conll = "a B-X\nb I-X\n\nbad\n\nc O\nd B-Y\n"
    same_as_reader(write(tmp_path / "b.conll", conll), on_error="skip")


def test_limit_label_map_and_keep(tmp_path):
    path = write(tmp_path / "a.tsv", "a\tB-Gene_or_gene_product\n\nb\tO\n\nc\tB-Cell\n\nd\tO\n")
    label_map = load_label_map("bionlp13cg")
    same_as_reader(path, label_map=label_map, limit=3)
    index, report = index_examples(path, label_map=label_map, keep=lambda e: bool(e.spans))
    assert [e.words for e in index] == [["a"], ["c"]]
    assert index.labels == {"gene or gene product": 1, "cell": 1}
    assert (report.read, report.skipped, report.reasons["not kept"]) == (2, 2, 2)


def test_json_array_is_held_in_memory(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"tokenized_text": ["a", "b"], "ner": [[1, 1, "x"]]}]))
    index, report = index_examples(path)
    assert not index.streamed
    assert as_tuples(index) == as_tuples(read_examples(path)[0])
    assert index.labels == {"x": 1}


def test_out_of_range(tmp_path):
    index, _ = index_examples(write(tmp_path / "a.conll", "a O\n"))
    assert index[-1].words == ["a"]
    with pytest.raises(IndexError):
        index[1]


REAL = [
    ("train/multiconer2-en/en-train90.conll", "multiconer2", None),
    ("train/bionlp13cg/train.tsv", "bionlp13cg", None),
    ("train/wikigold/CONLL-format/data/wikigold.conll.txt", "wikigold", None),
    ("train/sec-filings/CONLL-format/data/train/FIN5.txt", "sec-filings", None),
    ("train/litbank/litbank_entities_nested.jsonl", None, None),
    ("train/sgd/sgd_train.jsonl", None, 3000),
]


@pytest.mark.parametrize(("relative", "label_map", "limit"), REAL)
def test_real_files_index_like_the_reader(relative, label_map, limit):
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data folder is not on this machine)")
    kwargs = {"label_map": load_label_map(label_map) if label_map else None, "limit": limit}
    expected, _ = read_examples(path, **kwargs)
    index, _ = index_examples(path, **kwargs)
    assert len(index) == len(expected)
    step = max(1, len(expected) // 400)  # a spread of records across the whole file
    picks = list(range(0, len(expected), step)) + [len(expected) - 1]
    assert as_tuples(index[i] for i in picks) == as_tuples(expected[i] for i in picks)
