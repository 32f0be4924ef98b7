"""Readers: hand-made edge cases, then one real file of each family when the data is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anyner.data import (
    ReadError,
    ReadReport,
    available_label_maps,
    detect_format,
    iter_examples,
    label_map_info,
    load_label_map,
    read_benchmark,
    read_examples,
    tags_to_spans,
)
from tests.conftest import shared_dir

DATA = ((shared_dir() or Path(__file__).resolve().parents[2].parent / "shared") / "data").resolve()


def write(path: Path, text: str, newline: str = "\n") -> Path:
    """Write ``text`` with exact line endings (``\\n`` in ``text`` becomes ``newline``)."""
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def jsonl(path: Path, records: list) -> Path:
    return write(path, "".join(json.dumps(record) + "\n" for record in records))


def spans_of(examples) -> list[list[tuple[int, int, str]]]:
    return [[(s.start, s.end, s.label) for s in example.spans] for example in examples]


# ---------------------------------------------------------------- tag decoding


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),  # BIO / IOB2
        (["I-PER", "I-PER", "O", "I-LOC"], [(0, 2, "PER"), (3, 4, "LOC")]),  # IOB1 starts with I-
        (["I-PER", "B-PER", "I-PER"], [(0, 1, "PER"), (1, 3, "PER")]),  # IOB1: B- splits same-type neighbours
        (["O", "I-ORG", "I-LOC"], [(1, 2, "ORG"), (2, 3, "LOC")]),  # I- of another type starts a span
        (["I-X", "I-X", "I-Y"], [(0, 2, "X"), (2, 3, "Y")]),  # IO
        (["B-X", "E-X", "S-Y", "U-Z", "E-X"], [(0, 2, "X"), (2, 3, "Y"), (3, 4, "Z"), (4, 5, "X")]),  # BIOES
        (["B-X", "I-X", "E-X", "I-X"], [(0, 3, "X"), (3, 4, "X")]),  # E- closes the span
        (["B-Gene_or_gene_product", "I-Gene_or_gene_product"], [(0, 2, "Gene_or_gene_product")]),
        (["B-Medication/Vaccine"], [(0, 1, "Medication/Vaccine")]),
        (["O", "O"], []),
        ([], []),
    ],
)
def test_tags_to_spans(tags, expected):
    assert [(s.start, s.end, s.label) for s in tags_to_spans(tags)] == expected


@pytest.mark.parametrize("tag", ["B_PER", "X-PER", "B-", "PER", "o", "B- PER"])
def test_tags_to_spans_rejects_bad_tags(tag):
    with pytest.raises(ValueError, match="bad tag"):
        tags_to_spans(["O", tag])


# ---------------------------------------------------------------- CoNLL


def test_conll_bio_tab_separated(tmp_path):
    path = write(
        tmp_path / "a.tsv", "The\tO\nIL\tB-Gene\n-\tI-Gene\n2\tI-Gene\nin\tO\nrats\tB-Taxon\n\nNext\tO\n"
    )
    examples, report = read_examples(path)
    assert [e.words for e in examples] == [["The", "IL", "-", "2", "in", "rats"], ["Next"]]
    assert spans_of(examples) == [[(1, 4, "Gene"), (5, 6, "Taxon")], []]
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:8"]
    assert examples[0].text is None
    assert (report.read, report.skipped) == (2, 0)


def test_conll_iob1_space_separated(tmp_path):
    path = write(
        tmp_path / "iob1.conll.txt", "Zorba I-MISC\nsaw O\nThe I-ORG\nRed I-ORG\nBob I-PER\nAnn B-PER\n"
    )
    (example,), _ = read_examples(path)
    assert spans_of([example]) == [[(0, 1, "MISC"), (2, 4, "ORG"), (4, 5, "PER"), (5, 6, "PER")]]


def test_conll_docstart_comments_extra_columns_and_blank_lines(tmp_path):
    text = (
        "\n\n-DOCSTART- -X- O O\n\n"
        "ACME NNP - I-ORG\nWIDGETS NNP - I-ORG\n\n\n\n"
        "# id 0a1b2c3d-0000-4000\tdomain=en\n"
        "ada _ _ B-OtherPER\nlovelace _ _ I-OtherPER\nof _ _ O\n"
        "-DOCSTART- -X- O O\n"
        "#\tO\n#photo\tB-tag\n \t \n\n"
    )
    path = write(tmp_path / "mixed.txt", text)
    examples, report = read_examples(path)
    assert [e.words for e in examples] == [["ACME", "WIDGETS"], ["ada", "lovelace", "of"], ["#", "#photo"]]
    assert spans_of(examples) == [[(0, 2, "ORG")], [(0, 2, "OtherPER")], [(1, 2, "tag")]]
    assert [e.source.rsplit(":", 1)[1] for e in examples] == ["5", "11", "15"]
    assert (report.read, report.skipped) == (3, 0)


def test_conll_comment_ends_a_sentence_and_empty_header_is_counted(tmp_path):
    path = write(tmp_path / "m.conll", "# id a\ttok\nx _ _ B-A\n# id b\n# id c\ny _ _ O\n# id d\n")
    examples, report = read_examples(path)
    assert [e.words for e in examples] == [["x"], ["y"]]
    assert report.read == 2
    assert report.skipped == 2 and report.reasons == {"empty record": 2}


def test_conll_crlf_and_bom(tmp_path):
    path = tmp_path / "crlf.tsv"
    path.write_bytes("\ufeffNew\tB-LOC\r\nYork\tI-LOC\r\n\r\nhi\tO\r\n".encode())
    examples, _ = read_examples(path)
    assert [e.words for e in examples] == [["New", "York"], ["hi"]]
    assert spans_of(examples) == [[(0, 2, "LOC")], []]


@pytest.mark.parametrize("text", ["", "\n\n\n", "-DOCSTART- -X- O O\n\n", "# id 1\n"])
def test_conll_nothing_to_read(tmp_path, text):
    examples, report = read_examples(write(tmp_path / "empty.tsv", text))
    assert examples == []
    assert report.read == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("alone", "missing tag"),
        ("word\tB_PER", "bad tag"),
        ("word\tPERSON", "bad tag"),
        ("\tO", "empty token"),
    ],
)
def test_conll_malformed_line_raises_with_path_and_line(tmp_path, line, reason):
    path = write(tmp_path / "bad.tsv", f"a\tO\n\nb\tO\n{line}\nc\tO\n\nd\tB-X\n")
    with pytest.raises(ValueError, match=f"{path}:4: ") as caught:
        read_examples(path)
    assert isinstance(caught.value, ReadError) and caught.value.reason == reason

    examples, report = read_examples(path, on_error="skip")
    assert [e.words for e in examples] == [["a"], ["d"]]  # the sentence holding the bad line is left out
    assert (report.read, report.skipped) == (2, 1)
    assert report.reasons == {reason: 1}


def test_conll_skip_counts_each_reason(tmp_path):
    path = write(tmp_path / "bad.conll", "a\tO\n\nb\n\nc\tB*X\n\nd\tI-\n\ne\tO\n")
    examples, report = read_examples(path, on_error="skip")
    assert [e.words for e in examples] == [["a"], ["e"]]
    assert report.skipped == 3
    assert report.reasons == {"missing tag": 1, "bad tag": 2}
    assert "3 skipped" in str(report) and "bad tag: 2" in str(report)


# ---------------------------------------------------------------- GLiNER JSON / JSONL


def test_gliner_jsonl_inclusive_indices_become_half_open(tmp_path):
    records = [
        {
            "tokenized_text": ["Ada", "Lovelace", "joined", "Acme"],
            "ner": [[0, 1, "person"], [3, 3, "company"]],
        },
        {"tokenized_text": ["book", "a", "table"], "ner": [], "intent": "BookRestaurant", "id": 7},
        # Nested and multi-label spans are kept.
        {
            "tokenized_text": ["the", "old", "man"],
            "ner": [[0, 2, "person"], [1, 2, "person"], [1, 2, "age group"]],
        },
    ]
    path = jsonl(tmp_path / "train.jsonl", records)
    examples, report = read_examples(path)
    assert spans_of(examples) == [
        [(0, 2, "person"), (3, 4, "company")],
        [],
        [(0, 3, "person"), (1, 3, "person"), (1, 3, "age group")],
    ]
    assert examples[1].words == ["book", "a", "table"]
    assert [e.source for e in examples] == [f"{path}:1", f"{path}:2", f"{path}:3"]
    assert (report.read, report.skipped) == (3, 0)


def test_gliner_json_array_pretty_printed(tmp_path):
    records = [
        {"tokenized_text": ["a", "b"], "ner": [[1, 1, "x"]]},
        {"tokenized_text": ["c"], "ner": [[0, 0, "y"]]},
    ]
    path = write(tmp_path / "train.json", json.dumps(records, indent=2))
    examples, report = read_examples(path)
    assert spans_of(examples) == [[(1, 2, "x")], [(0, 1, "y")]]
    assert examples[0].source == f"{path}:2 [record 1]"
    assert examples[1].source.startswith(f"{path}:") and examples[1].source.endswith("[record 2]")
    assert report.read == 2


def test_gliner_crlf_bom_and_blank_lines(tmp_path):
    text = '\n{"tokenized_text": ["a"], "ner": [[0, 0, "x"]]}\n\n{"tokenized_text": ["b"], "ner": []}\n\n'
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(("\ufeff" + text.replace("\n", "\r\n")).encode())
    examples, report = read_examples(path)
    assert [e.words for e in examples] == [["a"], ["b"]]
    assert examples[1].source.endswith(":4")
    assert report.read == 2


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"tokenized_text": ["a", "b"], "ner": [[0, 2, "x"]]}', "span out of range"),
        ('{"tokenized_text": ["a", "b"], "ner": [[-1, 0, "x"]]}', "span out of range"),
        ('{"tokenized_text": ["a", "b"], "ner": [[1, 0, "x"]]}', "bad span"),
        ('{"tokenized_text": ["a", "b"], "ner": [[0, 1]]}', "bad span"),
        ('{"tokenized_text": ["a", "b"], "ner": [[0, true, "x"]]}', "bad span"),
        ('{"tokenized_text": ["a", "b"], "ner": [[0, 1, ""]]}', "bad label"),
        ('{"tokenized_text": ["a", "b"]}', "bad record"),
        ('{"tokenized_text": "a b", "ner": []}', "bad record"),
        ('["a", "b"]', "bad record"),
        ('{"tokenized_text": ["a"], "ner": [}', "bad json"),
    ],
)
def test_gliner_malformed_record_raises_with_path_and_line(tmp_path, line, reason):
    good = '{"tokenized_text": ["ok"], "ner": [[0, 0, "x"]]}'
    path = write(tmp_path / "bad.jsonl", f"{good}\n{good}\n{line}\n{good}\n")
    with pytest.raises(ValueError, match=f"{path}:3: ") as caught:
        read_examples(path)
    assert caught.value.reason == reason

    examples, report = read_examples(path, on_error="skip")
    assert len(examples) == 3
    assert [e.source for e in examples][-1] == f"{path}:4"
    assert (report.read, report.skipped, report.reasons) == (3, 1, {reason: 1})


def test_gliner_empty_records_are_skipped_and_counted_in_either_mode(tmp_path):
    path = jsonl(
        tmp_path / "e.jsonl", [{"tokenized_text": [], "ner": []}, {"tokenized_text": ["a"], "ner": []}]
    )
    for on_error in ("raise", "skip"):
        examples, report = read_examples(path, on_error=on_error)
        assert [e.words for e in examples] == [["a"]]
        assert (report.read, report.skipped, report.reasons) == (1, 1, {"empty record": 1})


def test_gliner_exact_duplicate_spans_are_merged_and_noted(tmp_path):
    path = jsonl(
        tmp_path / "d.jsonl", [{"tokenized_text": ["a", "b"], "ner": [[0, 1, "x"], [0, 1, "x"], [0, 1, "y"]]}]
    )
    examples, report = read_examples(path)
    assert spans_of(examples) == [[(0, 2, "x"), (0, 2, "y")]]
    assert report.notes == {"duplicate span": 1}


def test_json_array_that_is_not_json_raises_even_when_skipping(tmp_path):
    path = write(tmp_path / "broken.json", '[\n{"tokenized_text": ["a"], "ner": []},\n{"tokenized_text": [\n')
    with pytest.raises(ValueError, match=f"{path}:"):
        read_examples(path, format="gliner", on_error="skip")


@pytest.mark.parametrize("name", ["empty.json", "empty.jsonl"])
@pytest.mark.parametrize("text", ["", "\n", "[]", " [ ]\n"])
def test_empty_json_files(tmp_path, name, text):
    examples, report = read_examples(write(tmp_path / name, text))
    assert examples == [] and report.read == 0 and report.skipped == 0


# ---------------------------------------------------------------- benchmark JSON


def make_benchmark(folder: Path, records: list, labels: list[str], split: str = "test") -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "labels.json").write_text(json.dumps(labels), encoding="utf-8")
    path = folder / f"{split}.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_benchmark_character_spans_become_word_spans(tmp_path):
    sentence = "Ada Lovelace joined Acme in Leeds."
    records = [
        {
            "sentence": sentence,
            "entities": [
                {"name": "Ada Lovelace", "type": "person", "pos": [0, 12]},
                {"name": "Acme", "type": "organisation", "pos": [20, 24]},
                {"name": "Leeds", "type": "location", "pos": [28, 33]},
            ],
        },
        {"sentence": "Nothing here .", "entities": []},
    ]
    make_benchmark(tmp_path / "bench", records, ["person", "organisation", "location"])
    examples, labels, report = read_benchmark(tmp_path / "bench")
    assert labels == ["person", "organisation", "location"]
    assert examples[0].words == ["Ada", "Lovelace", "joined", "Acme", "in", "Leeds", "."]
    assert spans_of(examples) == [[(0, 2, "person"), (3, 4, "organisation"), (5, 6, "location")], []]
    assert examples[0].text == sentence
    assert (report.read, report.skipped, report.notes) == (2, 0, {})


def test_benchmark_unaligned_spans_are_widened_and_counted(tmp_path):
    records = [
        # "Swede" inside "Swedes", "Paris" inside a hyphen-joined word, "r" inside "every", a span ending mid-word.
        {
            "sentence": "Swedes like Swede cheese",
            "entities": [{"name": "Swede", "type": "misc", "pos": [0, 5]}],
        },
        {
            "sentence": "a fast Paris-Lyon train",
            "entities": [{"name": "Paris", "type": "loc", "pos": [7, 12]}],
        },
        {"sentence": "list every r film", "entities": [{"name": "r", "type": "rating", "pos": [8, 9]}]},
        {"sentence": "New York City", "entities": [{"name": "York Ci", "type": "loc", "pos": [4, 11]}]},
    ]
    path = make_benchmark(tmp_path / "b", records, ["misc", "loc", "rating"])
    examples, report = read_examples(path)
    assert spans_of(examples) == [[(0, 1, "misc")], [(2, 3, "loc")], [(1, 2, "rating")], [(1, 3, "loc")]]
    assert examples[1].words == ["a", "fast", "Paris-Lyon", "train"]
    assert report.read == 4 and report.skipped == 0
    assert report.notes["widened"] == 4
    assert "widened: 4" in str(report)


@pytest.mark.parametrize(
    ("entity", "reason"),
    [
        ({"type": "x", "pos": [0, 99]}, "span out of range"),
        ({"type": "x", "pos": [3, 3]}, "bad span"),
        ({"type": "x", "pos": [4, 2]}, "bad span"),
        ({"type": "x", "pos": [2, 3]}, "span out of range"),  # only the space between words
        ({"type": "", "pos": [0, 2]}, "bad label"),
        ({"type": "x"}, "bad span"),
    ],
)
def test_benchmark_bad_span_raises_and_skip_counts(tmp_path, entity, reason):
    records = [{"sentence": "ab  cd", "entities": []}, {"sentence": "ab  cd", "entities": [entity]}]
    path = make_benchmark(tmp_path / "b", records, ["x"])
    with pytest.raises(ValueError, match=rf"{path}:1 \[record 2\]: ") as caught:
        read_benchmark(path)
    assert caught.value.reason == reason
    examples, labels, report = read_benchmark(path, on_error="skip")
    assert len(examples) == 1 and labels == ["x"]
    assert report.reasons == {reason: 1}


def test_benchmark_label_map_renames_types_and_labels(tmp_path):
    records = [{"sentence": "Paris", "entities": [{"type": "LOC", "pos": [0, 5]}]}]
    make_benchmark(tmp_path / "b", records, ["LOC", "PER"], split="dev")
    examples, labels, report = read_benchmark(
        tmp_path / "b", "dev", label_map={"LOC": "location", "PER": "person"}
    )
    assert labels == ["location", "person"]
    assert spans_of(examples) == [[(0, 1, "location")]]
    assert not report.unmapped


def test_benchmark_folder_without_labels(tmp_path):
    (tmp_path / "test.json").write_text("[]", encoding="utf-8")
    with pytest.raises(FileNotFoundError):
        read_benchmark(tmp_path)


# ---------------------------------------------------------------- read_examples, detection, label maps


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("train.tsv", "a\tO\n", "conll"),
        ("all_conll.txt", "a\tO\n", "conll"),
        ("en-dev.conll", "# id 1\ta\n", "conll"),
        ("noextension", "a O\n", "conll"),
        ("emerging.test.annotated", "&\tO\n", "conll"),
        ("brackets.annotated", "[\tO\n{\tO\n", "conll"),
        ("data.jsonl", '{"tokenized_text": ["a"], "ner": []}\n', "gliner"),
        ("data.json", '[{"tokenized_text": ["a"], "ner": []}]', "gliner"),
        ("test.json", '[{"sentence": "a", "entities": []}]', "benchmark"),
        ("records.data", '{"sentence": "a", "entities": []}\n', "benchmark"),
    ],
)
def test_detect_format(tmp_path, name, text, expected):
    assert detect_format(write(tmp_path / name, text)) == expected


def test_detect_format_rejects_unknown_json_and_folders(tmp_path):
    with pytest.raises(ValueError, match="unknown JSON record"):
        detect_format(write(tmp_path / "x.json", '[{"text": "a"}]'))
    with pytest.raises(ValueError, match="folder"):
        detect_format(tmp_path)


def test_read_examples_limit_and_label_map(tmp_path):
    path = write(tmp_path / "t.tsv", "a\tB-PER\n\nb\tB-LOC\n\nc\tB-ORG\n\nd\tO\n")
    examples, report = read_examples(path, label_map={"PER": "person", "LOC": "location"}, limit=3)
    assert spans_of(examples) == [[(0, 1, "person")], [(0, 1, "location")], [(0, 1, "ORG")]]
    assert report.read == 3
    assert report.unmapped == {"ORG": 1}
    assert "unmapped labels: ORG: 1" in str(report)
    assert read_examples(path, limit=0) == ([], ReadReport(str(path)))


def test_label_map_that_merges_codes_drops_the_repeat(tmp_path):
    path = jsonl(tmp_path / "m.jsonl", [{"tokenized_text": ["a"], "ner": [[0, 0, "PER"], [0, 0, "PERSON"]]}])
    examples, report = read_examples(path, label_map={"PER": "person", "PERSON": "person"})
    assert spans_of(examples) == [[(0, 1, "person")]]
    assert report.notes == {"duplicate span": 1}


def test_iter_examples_streams_into_a_given_report(tmp_path):
    path = write(tmp_path / "t.tsv", "a\tO\n\nb\n\nc\tO\n")
    report = ReadReport(str(path))
    stream = iter_examples(path, on_error="skip", report=report)
    assert next(stream).words == ["a"]
    assert (report.read, report.skipped) == (1, 0)
    assert [e.words for e in stream] == [["c"]]
    assert (report.read, report.skipped) == (2, 1)


def test_bad_arguments(tmp_path):
    path = write(tmp_path / "t.tsv", "a\tO\n")
    with pytest.raises(ValueError, match="on_error"):
        read_examples(path, on_error="ignore")
    with pytest.raises(ValueError, match="format"):
        read_examples(path, format="csv")
    with pytest.raises(ValueError, match="limit"):
        read_examples(path, limit=-1)


def test_label_map_files():
    names = available_label_maps()
    assert set(names) >= {
        "bionlp13cg",
        "multiconer2",
        "wnut17",
        "wikigold",
        "sec-filings",
        "gum",
        "wlp",
        "craft",
    }
    for name in names:
        info = label_map_info(name)
        assert info["corpus"] == name
        assert info["source"] and info["license"] and info["labels"]
        for code, natural in info["labels"].items():
            # lowercase, except acronyms and symbols that keep their capitals ("DNA", "bHLH", "X")
            words = natural.split(" ")
            assert code and natural == natural.strip(), (name, code, natural)
            assert all(w == w.lower() or sum(c.isupper() for c in w) >= 2 or len(w) == 1 for w in words), (
                name,
                code,
                natural,
            )
            assert "_" not in natural and "  " not in natural, (name, code, natural)
    assert load_label_map("bionlp13cg")["Gene_or_gene_product"] == "gene or gene product"
    assert load_label_map("multiconer2-en")["AerospaceManufacturer"] == "aerospace manufacturer"
    assert load_label_map("multiconer2")["MusicalWork"] == "musical work"
    assert load_label_map("wnut17")["creative-work"] == "creative work"
    assert load_label_map("wikigold") == {
        "PER": "person",
        "LOC": "location",
        "ORG": "organization",
        "MISC": "miscellaneous",
    }
    assert load_label_map("fewnerd")["person_actor"] == "actor"
    assert load_label_map("few-nerd")["organization_other"] == "other organization"
    assert load_label_map("bionlp13gro")["TranscriptionFactor"] == "transcription factor"
    assert load_label_map("maintie")["PhysicalObject/SensingObject/TemperatureSensingObject"] == (
        "temperature sensing object"
    )
    assert load_label_map("hands")["/organization/educational_institution"] == "educational institution"
    load_label_map("wnut17")["person"] = "changed"
    assert load_label_map("wnut17")["person"] == "person"  # callers get a copy
    with pytest.raises(KeyError, match="no label map"):
        load_label_map("no-such-corpus")


# ---------------------------------------------------------------- real data (skipped when absent)

# corpus folder -> (label map, CoNLL-style files); every file of a corpus is scanned for its tag set.
# bionlp13cg/test.tsv and multiconer2-en/en-dev.conll were deleted by the shared data's
# decontamination (they are evaluation text): they are not listed.
CONLL_CORPORA = {
    "bionlp13cg": ("bionlp13cg", ["train.tsv", "devel.tsv"]),
    "bionlp13pc": ("bionlp13pc", ["train.tsv", "devel.tsv", "test.tsv"]),
    "bionlp11id": ("bionlp11id", ["train.tsv", "devel.tsv", "test.tsv"]),
    "craft": ("craft", ["train.tsv", "devel.tsv", "test.tsv"]),
    "linnaeus": ("linnaeus", ["train.tsv", "devel.tsv", "test.tsv"]),
    "ex-ptm": ("ex-ptm", ["train.tsv", "devel.tsv", "test.tsv"]),
    "multiconer2-en": ("multiconer2", ["en-train90.conll", "en-train10.conll"]),
    "wlp": (
        "wlp",
        [f"{split}/all_conll.txt" for split in ("train_data", "dev_data", "test_data", "test_data_2020")],
    ),
    "gum": ("gum", ["CONLL-format/data/train/gum-train.conll", "CONLL-format/data/test/gum-test.conll"]),
    "wikigold": ("wikigold", ["CONLL-format/data/wikigold.conll.txt"]),
    "sec-filings": ("sec-filings", ["CONLL-format/data/train/FIN5.txt", "CONLL-format/data/test/FIN3.txt"]),
    "wnut17": ("wnut17", ["wnut17train.conll", "emerging.dev.conll", "emerging.test.annotated"]),
}


def real(relative: str) -> Path:
    if not DATA.is_dir():
        pytest.skip(f"shared data folder {DATA} absent")
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path


def check_examples(examples) -> None:
    for example in examples:
        assert example.words and all(example.words)
        for span in example.spans:
            assert 0 <= span.start < span.end <= len(example.words)


# Counts after the shared data's decontamination (data README, "Decontamination" and train/ tables).
@pytest.mark.parametrize(
    ("corpus", "relative", "records"),
    [
        ("bionlp13cg", "bionlp13cg/train.tsv", 2999),
        # en-dev.conll was deleted; en-train10 = 16,734 (README total) - 15,055 (en-train90 after).
        ("multiconer2", "multiconer2-en/en-train10.conll", 1679),
        ("wikigold", "wikigold/CONLL-format/data/wikigold.conll.txt", 1696),
        # README gives no per-file count for FIN3, wnut17train or wlp dev: counted from the files.
        ("sec-filings", "sec-filings/CONLL-format/data/test/FIN3.txt", 303),
        ("wnut17", "wnut17/wnut17train.conll", 3394),
        ("gum", "gum/CONLL-format/data/test/gum-test.conll", 999),
        ("wlp", "wlp/dev_data/all_conll.txt", 2862),
    ],
)
def test_real_conll_file(corpus, relative, records):
    path = real(f"train/{relative}")
    examples, report = read_examples(path, label_map=load_label_map(corpus))
    assert (report.read, report.skipped, len(examples)) == (records, 0, records)
    assert not report.unmapped, report.unmapped
    assert sum(len(e.spans) for e in examples) > 0
    natural = set(load_label_map(corpus).values())
    assert {s.label for e in examples for s in e.spans} <= natural
    check_examples(examples)


@pytest.mark.parametrize("folder", sorted(CONLL_CORPORA))
def test_every_code_in_the_data_has_a_natural_name(folder):
    corpus, files = CONLL_CORPORA[folder]
    codes: set[str] = set()
    for relative in files:
        path = real(f"train/{folder}/{relative}")
        for example in iter_examples(path, format="conll"):
            codes.update(span.label for span in example.spans)
    assert codes, f"no labelled spans in {folder}"
    missing = codes - set(load_label_map(corpus))
    assert not missing, f"{folder}: codes without a natural name: {sorted(missing)}"


def test_real_multilingual_multiconer_uses_the_same_map():
    path = real("benchmark/multiconer2-multilingual/clean-bn-dev.conll")
    examples, report = read_examples(path, label_map=load_label_map("multiconer2-multilingual"))
    assert report.read > 0 and report.skipped == 0 and not report.unmapped


def test_real_gliner_jsonl():
    path = real("train/cyner/cyner_train.jsonl")
    examples, report = read_examples(path)
    assert report.read == len(examples) > 1000 and report.skipped == 0
    labels = {s.label for e in examples for s in e.spans}
    assert labels and all("_" not in label for label in labels)  # natural names already
    check_examples(examples)


def test_real_large_jsonl_with_limit():
    path = real("train/sgd/sgd_train.jsonl")
    examples, report = read_examples(path, limit=2000)
    assert len(examples) == report.read == 2000 and report.skipped == 0
    check_examples(examples)


def test_real_pilener_json():
    path = real("train/pilener-subset-nc/pilener391_ALL_dev_gliner.json")
    assert detect_format(path) == "gliner"
    examples, report = read_examples(path)
    assert (report.read, report.skipped) == (2216, 0)  # 2,217 before decontamination
    assert len({s.label for e in examples for s in e.spans}) > 100
    check_examples(examples)


def test_real_benchmark_folder():
    folder = real("benchmark/ood/CrossNER_AI")
    examples, labels, report = read_benchmark(folder)
    assert (report.read, report.skipped) == (431, 0)
    assert len(labels) == 14  # README gives no label count: counted from labels.json
    assert {s.label for e in examples for s in e.spans} <= set(labels)
    assert all(e.text for e in examples)
    check_examples(examples)
