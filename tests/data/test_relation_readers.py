"""Relation readers: small hand-made files of every form, then the real sets when the shared data is present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from anyner.data import ReadError
from anyner.data.relation_names import load_pid_names, split_camel, verbalise_type_path
from anyner.data.relations import (
    RelationRecord,
    detect_relation_form,
    iter_relations,
    read_relations,
    to_gliner_relex,
)


def write(path: Path, text: str, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode("utf-8"))
    return path


def jsonl(path: Path, records: list) -> Path:
    return write(path, "".join(json.dumps(record) + "\n" for record in records))


def triples(record: RelationRecord) -> list[tuple[str, str, str]]:
    """(head words, relation, tail words) of a record."""

    def words(i: int) -> str:
        entity = record.entities[i]
        return " ".join(record.words[entity.start : entity.end])

    return [(words(r.head), r.label, words(r.tail)) for r in record.relations]


# --- names ------------------------------------------------------------------------------------


def test_type_paths_and_codes_are_verbalised():
    assert verbalise_type_path("PhysicalObject/SensingObject/TemperatureSensingObject") == (
        "temperature sensing object"
    )
    assert verbalise_type_path("State/UndesirableState/FailedState") == "failed state"
    assert split_camel("may_treat") == "may treat"
    assert split_camel("CommsIdentifier") == "comms identifier"
    assert split_camel("DNAPolymerase") == "DNA polymerase"


def test_pid_names_add_the_ids_pid2name_lacks(tmp_path):
    path = write(
        tmp_path / "pid2name.json", json.dumps({"P26": ["spouse", "the subject has the object as spouse"]})
    )
    pid = load_pid_names(path)
    assert pid["P26"] == "spouse" and pid["P569"] == "date of birth"
    write(path, json.dumps({"P26": []}))
    with pytest.raises(ValueError, match="P26"):
        load_pid_names(path)


# --- KnowledgeNet -----------------------------------------------------------------------------


def knowledgenet(path: Path, extra: list[str] = ()) -> Path:
    text = "Ann Lee married Bob Roe in Paris."
    record = {
        "fold": 1,
        "documentId": "7",
        "passageText": text,
        "exhaustivelyAnnotatedProperties": ["SPOUSE"],
        "facts": [
            {"subject": [0, 7], "object": [16, 23], "relation": "SPOUSE", "subject_text": "Ann Lee"},
            {"subject": [0, 7], "object": [27, 40], "relation": "PLACE_OF_RESIDENCE"},  # outside the text
            {"subject": [16, 23], "object": [0, 3], "relation": "SPOUSE"},
        ],
    }
    lines = [json.dumps(record), *extra, json.dumps({**record, "facts": []})]
    return write(path, "\n".join(lines) + "\n")


def test_knowledgenet_char_spans_become_untyped_word_spans(tmp_path):
    path = knowledgenet(tmp_path / "kn.jsonl")
    assert detect_relation_form(path) == "knowledgenet"
    records, report = read_relations(path)
    first = records[0]
    assert triples(first) == [("Ann Lee", "spouse", "Bob Roe"), ("Bob Roe", "spouse", "Ann")]
    assert [(e.start, e.end, e.label) for e in first.entities] == [(0, 2, None), (3, 5, None), (0, 1, None)]
    assert first.meta == {"document": "7", "fold": 1, "exhaustive": ["spouse"]}
    assert first.source == f"{path}:1"
    assert records[1].entities == [] and records[1].relations == []  # a passage with no fact stays
    assert report.read == 2 and report.skipped == 0
    assert report.entity_skips == {"character span outside the text": 1}
    assert report.relation_skips == {"argument not mapped": 1}
    assert report.relations == 2 and report.relation_types == {"spouse": 2}
    codes, _ = read_relations(path, natural_names=False)
    assert codes[0].relations[0].label == "SPOUSE"


def test_a_damaged_line_raises_with_file_and_line_or_is_skipped(tmp_path):
    path = knowledgenet(
        tmp_path / "kn.jsonl", extra=["{not json", json.dumps({"passageText": 3, "facts": []})]
    )
    with pytest.raises(ReadError, match=rf"^{path}:2: invalid JSON"):
        read_relations(path)
    records, report = read_relations(path, on_error="skip")
    assert report.read == 2 and report.skipped == 2
    assert report.reasons == {"bad json": 1, "bad record": 1}
    assert [r.source for r in records] == [f"{path}:1", f"{path}:4"]
    with pytest.raises(ValueError, match="on_error"):
        read_relations(path, on_error="ignore")


# --- MaintIE ----------------------------------------------------------------------------------


def maintie_records() -> list:
    return [
        {
            "text": "<id> thermostat not working",
            "tokens": ["<id>", "thermostat", "not", "working"],
            "entities": [
                {"start": 1, "end": 2, "type": "PhysicalObject/SensingObject/TemperatureSensingObject"},
                {"start": 2, "end": 4, "type": "State/UndesirableState/FailedState"},
                {"start": 3, "end": 9, "type": "Activity"},  # past the tokens
            ],
            "relations": [
                {"head": 1, "tail": 0, "type": "hasParticipant/hasPatient"},
                {"head": 2, "tail": 0, "type": "hasPart"},
                {"head": 5, "tail": 0, "type": "isA"},
            ],
        }
    ]


def test_maintie_token_spans_and_verbalised_types(tmp_path):
    path = write(tmp_path / "gold.json", json.dumps(maintie_records(), indent=2))
    assert detect_relation_form(path) == "maintie"
    (record,), report = read_relations(path)
    assert record.words == ["<id>", "thermostat", "not", "working"]  # the file's tokens, not re-split
    assert [e.label for e in record.entities] == ["temperature sensing object", "failed state"]
    assert triples(record) == [("not working", "has patient", "thermostat")]
    assert report.entity_skips == {"span out of range": 1}
    assert report.relation_skips == {"argument not mapped": 1, "entity index out of range": 1}
    assert to_gliner_relex(record) == {
        "tokenized_text": ["<id>", "thermostat", "not", "working"],
        "ner": [[1, 1, "temperature sensing object"], [2, 3, "failed state"]],
        "relations": [[1, 0, "has patient"]],
    }


def test_maintie_bad_entity_names_its_record(tmp_path):
    records = maintie_records()
    records.append({**records[0], "entities": [{"start": "1", "end": 2, "type": "x"}]})
    path = write(tmp_path / "gold.json", json.dumps(records, indent=2))
    with pytest.raises(ReadError, match=r"gold.json:\d+ \[record 2\]: 'start' must be an integer"):
        read_relations(path, form="maintie")
    _, report = read_relations(path, form="maintie", on_error="skip")
    assert report.read == 1 and report.reasons == {"bad record": 1}


# --- Re-DocRED --------------------------------------------------------------------------------


def redocred_doc() -> dict:
    return {
        "title": "Ann Lee",
        "sents": [["Ann", "Lee", "was", "born", "in", "Paris", "."], ["Lee", "lived", "in", "Rome", "."]],
        "vertexSet": [
            [
                {"name": "Ann Lee", "pos": [0, 2], "sent_id": 0, "type": "PER"},
                {"name": "Lee", "pos": [0, 1], "sent_id": 1, "type": "PER"},
            ],
            [{"name": "Paris", "pos": [5, 6], "sent_id": 0, "type": "LOC"}],
            [
                {"name": "Rome", "pos": [3, 4], "sent_id": 1, "type": "LOC"},
                {"name": "Rome", "pos": [3, 9], "sent_id": 1, "type": "LOC"},  # past the sentence
            ],
        ],
        "labels": [
            {"h": 0, "t": 1, "r": "P19", "evidence": [0]},
            {"h": 0, "t": 2, "r": "P551", "evidence": [1]},
            {"h": 0, "t": 7, "r": "P551", "evidence": [1]},
        ],
    }


def test_redocred_documents_put_relations_on_the_closest_mentions(tmp_path):
    folder = tmp_path / "relations"
    path = write(folder / "redocred" / "dev.json", json.dumps([redocred_doc()]))
    write(
        folder / "fewrel" / "pid2name.json",
        json.dumps({"P19": ["place of birth", ""], "P551": ["residence", ""]}),
    )
    assert detect_relation_form(path) == "redocred"
    (record,), report = read_relations("redocred", root=folder)
    assert record.words[:7] == ["Ann", "Lee", "was", "born", "in", "Paris", "."] and len(record.words) == 12
    assert [(e.start, e.end, e.label, e.group) for e in record.entities] == [
        (0, 2, "person", "0"),
        (7, 8, "person", "0"),
        (5, 6, "location", "1"),
        (10, 11, "location", "2"),
    ]
    # Rome is nearer the second sentence's "Lee" than "Ann Lee".
    assert triples(record) == [("Ann Lee", "place of birth", "Paris"), ("Lee", "residence", "Rome")]
    assert report.entity_skips == {"span out of range": 1}
    assert report.relation_skips == {"entity index out of range": 1}
    assert record.source.endswith("[record 1] [Ann Lee]")


def test_redocred_without_pid2name_keeps_ids_and_says_so(tmp_path):
    path = write(tmp_path / "dev.json", json.dumps([redocred_doc()]))
    (record,), report = read_relations(path)
    assert [r.label for r in record.relations] == ["P19", "P551"]
    assert report.notes["pid2name.json absent: Wikidata ids kept"] == 2
    with pytest.raises(FileNotFoundError, match="nowhere.json"):
        read_relations(path, pid2name=tmp_path / "nowhere.json")


# --- FewRel -----------------------------------------------------------------------------------


def test_fewrel_pairs_names_and_semeval_directions(tmp_path):
    write(tmp_path / "pid2name.json", json.dumps({"P26": ["spouse", ""]}))
    sentence = ["Ann", "met", "Bob", "and", "Bob", "Roe", "."]
    data = {
        "P26": [
            {"tokens": sentence, "h": ["ann", "Q1", [[0]]], "t": ["bob", "Q2", [[4, 5], [2]]]},
            {"tokens": sentence, "h": ["ann", "Q1", [[0, 2]]], "t": ["bob", "Q2", [[4, 5]]]},  # gap
        ],
        "Cause-Effect(e2,e1)": [{"tokens": sentence, "h": ["ann", "ann", [[0]]], "t": ["bob", "bob", [[2]]]}],
        "may_treat": [{"tokens": sentence, "h": ["ann", "C1", [[0]]], "t": ["bob", "C2", [[9]]]}],
    }
    path = write(tmp_path / "val_x.json", json.dumps(data))
    assert detect_relation_form(path) == "fewrel"
    records, report = read_relations(path)
    assert triples(records[0]) == [("Ann", "spouse", "Bob")]  # the closer of the two tail mentions
    assert [e.group for e in records[0].entities] == ["head", "tail", "tail"]
    assert triples(records[2]) == [("Bob", "causes", "Ann")]  # (e2,e1): the tail is the cause
    assert records[3].relations == []
    assert report.entity_skips == {"mention not contiguous": 1, "span out of range": 1}
    assert report.relation_skips == {"no mention of an argument": 2}
    assert records[1].source == f"{path} [P26 #1]"


# --- CDR --------------------------------------------------------------------------------------

CDR = """\
100|t|Lithium causes tremor.
100|a|Tremor and seizures followed lithium and valproate.
100\t0\t7\tLithium\tChemical\tD008094
100\t15\t21\ttremor\tDisease\tD014202
100\t23\t29\tTremor\tDisease\tD014202
100\t34\t42\tseizures\tDisease\tD012640
100\t52\t59\tlithium\tChemical\tD008094
100\t64\t73\tvalproate\tChemical\tD014635
100\t60\t75\tbeyond\tChemical\t-1
100\tCID\tD008094\tD014202
100\tCID\tD008094\tD012640
100\tCID\tD014635\tD999999

200|t|Second title.
200|a|Abstract.
200\tnot a line
"""


def test_cdr_documents_and_cid_on_the_closest_mentions(tmp_path):
    path = write(tmp_path / "CDR_X.PubTator.txt", CDR)
    assert detect_relation_form(path) == "cdr"
    with pytest.raises(ReadError, match=rf"^{path}:16: not a PubTator"):
        read_relations(path)
    (record,), report = read_relations(path, on_error="skip")
    assert record.text.startswith("Lithium causes tremor. Tremor and seizures")
    assert record.source == f"{path}:1 [100]" and record.meta == {"document": "100"}
    assert triples(record) == [
        ("Lithium", "chemical induces disease", "tremor"),
        ("lithium", "chemical induces disease", "seizures"),
    ]
    assert {e.label for e in record.entities} == {"chemical", "disease"}
    assert report.entity_skips == {"character span outside the text": 1}
    assert report.relation_skips == {"no mention of an argument": 1}
    assert report.reasons == {"bad line": 1}


# --- re3d -------------------------------------------------------------------------------------


def re3d_folder(root: Path) -> Path:
    text = "UK forces met Kurdish fighters in Syria."
    folder = root / "re3d" / "Source A"
    jsonl(folder / "documents.json", [{"_id": "D1", "title": "t", "text": text}])
    jsonl(
        folder / "entities.json",
        [
            {"documentId": "D1", "begin": 0, "end": 9, "type": "Organisation", "value": "UK forces"},
            {"documentId": "D1", "begin": 14, "end": 30, "type": "Organisation", "value": "Kurdish fighters"},
            {"documentId": "D1", "begin": 34, "end": 39, "type": "Location", "value": "Syria"},
            {"documentId": "D1", "begin": 9, "end": 10, "type": "Person", "value": " "},  # a space: no word
        ],
    )
    jsonl(
        folder / "relations.json",
        [
            {"documentId": "D1", "sourceBegin": 0, "sourceEnd": 9, "targetBegin": 14, "targetEnd": 30,
             "type": "CommWith"},
            {"documentId": "D1", "sourceBegin": 14, "sourceEnd": 30, "targetBegin": 34, "targetEnd": 39,
             "type": "CoLocated"},
            {"documentId": "D1", "sourceBegin": 0, "sourceEnd": 3, "targetBegin": 34, "targetEnd": 39,
             "type": "CoLocated"},
        ],
    )  # fmt: skip
    bbc = root / "re3d" / "BBC Online"
    jsonl(bbc / "documents.json", [{"_id": "B1", "title": "t", "text": "Not read."}])
    jsonl(bbc / "entities.json", [])
    jsonl(bbc / "relations.json", [])
    return root / "re3d"


def test_re3d_reads_source_folders_but_bbc(tmp_path):
    folder = re3d_folder(tmp_path)
    assert detect_relation_form(folder) == "re3d"
    (record,), report = read_relations(folder)
    assert triples(record) == [
        ("UK forces", "communicates with", "Kurdish fighters"),
        ("Kurdish fighters", "co-located with", "Syria"),
    ]
    assert [e.label for e in record.entities] == ["organization", "organization", "location"]
    assert report.notes["left out: BBC Online"] == 1
    assert report.entity_skips == {"character span covers no word": 1}
    assert report.relation_skips == {"argument is no entity": 1}
    assert record.meta == {"document": "D1"}


def test_re3d_line_of_an_unknown_document_names_its_line(tmp_path):
    folder = re3d_folder(tmp_path)
    with open(folder / "Source A" / "entities.json", "a") as handle:
        handle.write(json.dumps({"documentId": "D9", "begin": 0, "end": 2, "type": "Person"}) + "\n")
    with pytest.raises(ReadError, match=r"entities.json:5: documentId D9"):
        read_relations(folder)
    _, report = read_relations(folder, on_error="skip")
    assert report.read == 1 and report.reasons == {"unknown document": 1}


# --- SemEval-2010 Task 8 ----------------------------------------------------------------------

SEMEVAL = """\
1\t"The <e1>child</e1> was wrapped into the <e2>cradle</e2>."
Other
Comment:

2\t"The <e1>burst</e1> has been caused by water hammer <e2>pressure</e2>."
Cause-Effect(e2,e1)
Comment:

3\t"A <e1>knife</e1> cuts the <e2>bread</e2>."
Instrument-Agency(e1,e2)
Comment:

4\t"No markers here."
Other
Comment:
"""


def test_semeval_markers_directions_and_other(tmp_path):
    path = write(tmp_path / "TRAIN_FILE.TXT", SEMEVAL, newline="\r\n")
    assert detect_relation_form(path) == "semeval2010_task8"
    with pytest.raises(ReadError, match=rf"^{path}:13: expected one <e1>"):
        read_relations(path)
    records, report = read_relations(path, on_error="skip")
    assert records[0].text == "The child was wrapped into the cradle." and records[0].relations == []
    assert [e.group for e in records[0].entities] == ["e1", "e2"]
    assert triples(records[1]) == [("pressure", "causes", "burst")]
    assert triples(records[2]) == [("knife", "instrument of", "bread")]
    assert records[1].meta == {"id": "2", "code": "Cause-Effect(e2,e1)"}
    assert report.read == 3 and report.reasons == {"bad record": 1}
    kept, report = read_relations(path, on_error="skip", keep_other=False)
    assert len(kept) == 2 and report.reasons == {"Other": 1, "bad record": 1}


def test_semeval_offsets_that_split_a_word_are_widened(tmp_path):
    path = write(
        tmp_path / "TRAIN_FILE.TXT",
        '5\t"Re<e1>search</e1>ers wrote a <e2>paper</e2>."\nProduct-Producer(e2,e1)\n',
    )
    (record,), report = read_relations(path)
    assert triples(record) == [("paper", "produced by", "Researchers")]
    assert report.notes["widened"] == 1


# --- entry point ------------------------------------------------------------------------------


def test_set_names_need_a_root_and_unknown_forms_are_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("ANYNER_RELATIONS", raising=False)
    monkeypatch.delenv("ANYNER_SHARED", raising=False)
    with pytest.raises(FileNotFoundError, match="set name"):
        read_relations("maintie")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_relations("maintie", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_relations(tmp_path / "missing.json")
    path = write(tmp_path / "x.json", json.dumps([{"tokenized_text": ["a"], "ner": []}]))
    with pytest.raises(ValueError, match="not a relation form"):
        read_relations(path)
    with pytest.raises(ValueError, match="form must be"):
        read_relations(path, form="conll")


def test_limit_and_streaming_report(tmp_path):
    path = knowledgenet(tmp_path / "kn.jsonl")
    records, report = read_relations(path, limit=1)
    assert len(records) == 1 and report.read == 1
    assert "1 read, 0 skipped" in str(report) and "relations of 1 types" in str(report)
    assert sum(1 for _ in iter_relations(path)) == 2


def test_gliner_relex_form_merges_repeated_spans_and_types_untyped_ones():
    from anyner.data.relations import EntitySpan, RelationTriple

    record = RelationRecord(
        words=["Ann", "met", "Bob"],
        entities=[EntitySpan(0, 1, None, "0"), EntitySpan(0, 1, None, "1"), EntitySpan(2, 3, "person")],
        relations=[
            RelationTriple(0, 2, "knows"),
            RelationTriple(1, 2, "knows"),
            RelationTriple(2, 1, "knows"),
        ],
    )
    assert to_gliner_relex(record, untyped_label="thing") == {
        "tokenized_text": ["Ann", "met", "Bob"],
        "ner": [[0, 0, "thing"], [2, 2, "person"]],
        "relations": [[0, 1, "knows"], [1, 0, "knows"]],
    }


def test_split_record_cuts_between_spans_and_counts_lost_relations():
    from anyner.data.relations import EntitySpan, RelationTriple, split_record

    record = RelationRecord(
        words=list("abcdefgh"),
        entities=[EntitySpan(0, 1, "x"), EntitySpan(2, 4, "y"), EntitySpan(4, 5, "z"), EntitySpan(6, 8, "w")],
        relations=[RelationTriple(0, 1, "r"), RelationTriple(2, 3, "s"), RelationTriple(1, 2, "t")],
        source="f:1",
    )
    windows, lost = split_record(record, 3)  # a cut at 3 would split "cd": it moves back to 2
    assert [(w.words, w.source) for w in windows] == [
        (["a", "b"], "f:1 [words 0:2]"),
        (["c", "d", "e"], "f:1 [words 2:5]"),
        (["f", "g", "h"], "f:1 [words 5:8]"),
    ]
    assert [triples(w) for w in windows] == [[], [("c d", "t", "e")], []]
    assert lost == 2
    assert split_record(record, 8) == ([record], 0)
    with pytest.raises(ValueError, match="longer than max_words=1"):
        split_record(record, 1)


@pytest.mark.slow  # importing gliner takes seconds
def test_gliner_relex_processor_keeps_every_converted_relation(tmp_path):
    """The reference relex processor maps each relation of a converted record to its entity pair."""
    from types import SimpleNamespace

    processor_module = pytest.importorskip("gliner.data_processing.processor")
    records = maintie_records()
    records[0]["relations"].append({"head": 0, "tail": 1, "type": "hasPart"})
    path = write(tmp_path / "gold.json", json.dumps(records))
    (record,), _ = read_relations(path)
    example = to_gliner_relex(record)
    processor = object.__new__(processor_module.RelationExtractionSpanProcessor)
    processor.config = SimpleNamespace(max_width=12, max_len=384)
    classes = {label: i + 1 for i, (_, _, label) in enumerate(example["ner"])}
    relation_classes = {"has patient": 1, "has part": 2}
    out = processor.preprocess_example(
        example["tokenized_text"], example["ner"], classes, example["relations"], relation_classes
    )
    assert out["rel_idx"].tolist() == [[0, 1], [1, 0]] and out["rel_label"].tolist() == [2, 1]


# --- the real sets ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def relations_dir(shared: Path) -> Path:
    path = shared / "data" / "relations"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


# set -> (records, entities, relations, relation types) after the shared data's decontamination:
# the data README's figures where it gives them (MaintIE 1,076 texts / 3,397 spans / 2,341 relations /
# 6 types; re3d 90 documents / 3,925 spans, 18 of them repeats and 2 on no word, 1,149 relations, one a
# repeat; KnowledgeNet 5,727 passages / 10,892 facts / 15; Re-DocRED 497 + 497 documents, 17,181 +
# 17,378 relations; FewRel 11,199 + 1,000 + 8,851 sentences; SemEval 8,000 + 2,717 sentences, 1,410 +
# 454 Other; CDR 491 + 493 documents after the ADE pass), the others as read here.
REAL = {
    "maintie": (1076, 3397, 2341, 6),
    "re3d": (90, 3905, 1148, 11),
    "knowledgenet": (5727, 12380, 10892, 15),
    "redocred": (994, 25986, 34559, 96),
    "fewrel": (21050, 42538, 21050, 33),
    "cdr": (984, 18693, 1947, 1),
    "semeval2010_task8": (10717, 21434, 10717 - 1410 - 454, 9),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_set_counts(relations_dir, name):
    if not (relations_dir / name).exists():
        pytest.skip(f"{relations_dir / name} is absent")
    records, report = read_relations(name, root=relations_dir)
    assert (report.read, report.entities, report.relations, len(report.relation_types)) == REAL[name], str(
        report
    )
    assert report.skipped == 0
    assert not [note for note in report.notes if note.startswith(("unnamed code", "pid2name"))], report.notes
    for record in records[:50]:
        example = to_gliner_relex(record)
        assert all(0 <= s <= e < len(example["tokenized_text"]) for s, e, _ in example["ner"])


def test_real_set_details(relations_dir):
    maintie, _ = read_relations(relations_dir / "maintie" / "gold_release.json", limit=1)
    assert triples(maintie[0]) == [
        ("air conditioner", "has part", "thermostat"),
        ("not working", "has patient", "thermostat"),
    ]
    assert [e.label for e in maintie[0].entities][:2] == [
        "electric cooling object",
        "temperature sensing object",
    ]
    semeval, _ = read_relations(relations_dir / "semeval2010_task8" / "TRAIN_FILE.TXT", limit=3)
    assert semeval[0].text.startswith("The system as described above")
    assert triples(semeval[0]) == [("elements", "part of", "configuration")]  # Component-Whole(e2,e1)
    assert semeval[1].relations == []  # Other
    _, report = read_relations(relations_dir / "semeval2010_task8" / "TRAIN_FILE.TXT", keep_other=False)
    assert report.read == 8000 - 1410 and report.reasons == {"Other": 1410}
    # re3d's folder never yields the BBC subset's documents, whether or not the folder is there.
    re3d, _ = read_relations("re3d", root=relations_dir)
    assert not any("BBC" in record.source for record in re3d)
