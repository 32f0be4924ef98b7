"""``anyner predict --relations``: relations beside entities in every output format, the same as
``AnyNER.batch_predict_relations`` gives them; bad arguments and entity-only models refused
with exit status 2 and one line, before the model loads where the arguments tell."""

from __future__ import annotations

import html
import json
import re
from itertools import pairwise
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")

from anyner import AnyNER, Entity, Relation, cli  # noqa: E402
from anyner.cli import main  # noqa: E402
from tests.conftest import RELATIONS, ood_sample  # noqa: E402

# ---------------------------------------------------------------------------- a real relation model


@pytest.fixture(scope="module")
def relex(relex_dot) -> AnyNER:
    return AnyNER.from_pretrained(relex_dot)


@pytest.fixture(scope="module")
def thresholds(relex, shared) -> tuple[float, float | None, float]:
    """(entity, adjacency, relation) thresholds under which the random head finds relations."""
    from tests.test_relex import calibrate

    return calibrate(relex, ood_sample(shared, per_set=1), per_set=1)


@pytest.fixture(scope="module")
def sample(shared) -> tuple[list[str], list[str]]:
    """Three OOD sentences (two of CrossNER literature, one of music) and the literature labels."""
    sets = {name: (sentences, labels) for name, sentences, labels in ood_sample(shared, per_set=2)}
    literature, labels = sets["CrossNER_literature"]
    return [*literature, sets["CrossNER_music"][0][0]], labels


def relation_argv(relex_dot, labels, thresholds, *extra: str) -> list[str]:
    threshold, adjacency, relation = thresholds
    return [
        "predict", "--model", str(relex_dot), "--labels", ",".join(labels), "--relations", ",".join(RELATIONS),
        "--threshold", repr(threshold), "--adjacency-threshold", repr(adjacency),
        "--relation-threshold", repr(relation), "--quiet", *extra,
    ]  # fmt: skip


def expected(relex, texts, labels, thresholds, **options) -> list[tuple[list[Entity], list[Relation]]]:
    threshold, adjacency, relation = thresholds
    return relex.batch_predict_relations(
        texts, labels, RELATIONS, threshold=threshold, adjacency_threshold=adjacency,
        relation_threshold=relation, **options,
    )  # fmt: skip


def same_records(records: list[dict], want: list[tuple[list[Entity], list[Relation]]]) -> None:
    """The records' entities and relations are ``want``'s dicts: all fields equal, scores within 1e-6."""

    def split(items: list[dict]) -> tuple[list[dict], list[float]]:
        return [{k: v for k, v in d.items() if k != "score"} for d in items], [d["score"] for d in items]

    assert len(records) == len(want)
    for record, (ents, rels) in zip(records, want, strict=True):
        for got, items in ((record["entities"], ents), (record["relations"], rels)):
            (got_fields, got_scores), (want_fields, want_scores) = (
                split(got),
                split([x.to_dict() for x in items]),
            )
            assert got_fields == want_fields
            assert got_scores == pytest.approx(want_scores, abs=1e-6)
        for r in record["relations"]:  # entity_idx points into the record's own entity list
            for end in ("head", "tail"):
                entity = record["entities"][r[end]["entity_idx"]]
                assert {k: entity[k] for k in ("start", "end", "text")} == {
                    k: r[end][k] for k in ("start", "end", "text")
                }
                assert entity["label"] == r[end]["type"]


@pytest.mark.slow
def test_json_and_jsonl_equal_the_python_api(relex, relex_dot, sample, thresholds, tmp_path, capsys):
    texts, labels = sample
    want = expected(relex, texts, labels, thresholds)
    assert sum(len(rels) for _, rels in want) > 0, "the calibrated thresholds find relations"
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"doc-{i}", "text": t, "other": 1}) + "\n" for i, t in enumerate(texts)),
        encoding="utf-8",
    )
    argv = relation_argv(relex_dot, labels, thresholds, "--file", str(source))
    assert main([*argv, "--format", "jsonl"]) == 0
    out, err = capsys.readouterr()
    jsonl = [json.loads(line) for line in out.splitlines()]
    assert err == ""
    assert [(r["id"], r["text"]) for r in jsonl] == [(f"doc-{i}", t) for i, t in enumerate(texts)]
    assert all(
        set(r) == {"id", "text", "entities", "relations"} for r in jsonl
    )  # --keep id: "other" stays out
    same_records(jsonl, want)

    assert main([*argv, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == jsonl


@pytest.mark.slow
def test_nested_and_multi_label_relations(relex, relex_dot, sample, thresholds, capsys):
    texts, labels = sample
    text = texts[0]
    argv = relation_argv(relex_dot, labels, thresholds, text, "--nested", "--multi-label", "--format", "json")
    assert main(argv) == 0
    records = json.loads(capsys.readouterr().out)
    want = expected(relex, [text], labels, thresholds, flat=False, multi_label=True)
    flat = expected(relex, [text], labels, thresholds)
    assert len(want[0][0]) > len(flat[0][0])  # nested, multi-label entities: more of them than flat ones
    assert want[0][1], "relations between them"
    same_records(records, want)


def relation_line(r: Relation, score: str) -> re.Pattern:
    head, tail = f"{r.head.text} [{r.head.label}]", f"{r.tail.text} [{r.tail.label}]"
    return re.compile(
        rf"^  {re.escape(head)} +-> {re.escape(r.label)} +-> {re.escape(tail)} +{re.escape(score)}$", re.M
    )


@pytest.mark.slow
def test_table_and_html_show_each_relation(relex, relex_dot, sample, thresholds, capsys):
    texts, labels = sample
    want = expected(relex, texts, labels, thresholds)
    assert main([*relation_argv(relex_dot, labels, thresholds, *texts)]) == 0
    out = capsys.readouterr().out
    sections = out.split("# text ")[1:]
    assert len(sections) == len(texts)
    for section, (ents, rels) in zip(sections, want, strict=True):
        for e in ents:
            assert re.search(rf"^{re.escape(e.text)} +{re.escape(e.label)} +{e.score:.2f}  ", section, re.M)
        if rels:
            assert section.count("\nrelations:\n") == 1 and "(no relations)" not in section
        else:
            assert "(no relations)" in section
        for r in rels:
            assert relation_line(r, f"{r.score:.2f}").search(section), (r, section)
        relation_rows = [line for line in section.splitlines() if line.startswith("  ")]
        assert len(relation_rows) == len(rels)

    assert main([*relation_argv(relex_dot, labels, thresholds, *texts), "--format", "html"]) == 0
    page = capsys.readouterr().out
    tables = page.split('<table class="relation-table">')[1:]
    assert len(tables) == len(texts)
    for table, (_, rels) in zip(tables, want, strict=True):
        rows = table.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")
        assert rows == max(len(rels), 1)  # "no relations" is one row
        for r in rels:
            assert f"<td>{html.escape(r.label)}</td>" in table and f"<td>{r.score:.2f}</td>" in table


# ---------------------------------------------------------------------------- formats, on a stub model


ADA = "Ada Lovelace worked with Charles Babbage in London."


class RelexStub:
    """A relation model without a network: every text holds the entities of :data:`ADA` found in
    it, and each person "works with" the next one and "lives in" every city."""

    config = SimpleNamespace(model_type=cli.RELEX_TYPE)

    def __init__(self):
        self.calls: list[dict] = []

    def batch_predict_relations(self, texts, labels, relations, batch_size=8, **options):
        self.calls.append({"texts": list(texts), "labels": labels, "relations": relations, **options})
        out = []
        for text in texts:
            ents = [
                Entity(text.find(p), text.find(p) + len(p), p, label, score)
                for p, label, score in (
                    ("Ada Lovelace", "person", 0.9),
                    ("Charles Babbage", "person", 0.8),
                    ("London", "city", 0.7),
                )  # fmt: skip
                if p in text
            ]
            people = [i for i, e in enumerate(ents) if e.label == "person"]
            cities = [i for i, e in enumerate(ents) if e.label == "city"]
            rels = [Relation(ents[a], ents[b], "works with", 0.6, a, b) for a, b in pairwise(people)]
            rels += [Relation(ents[p], ents[c], "lives in", 0.55, p, c) for p in people for c in cities]
            out.append((ents, rels))
        return out


@pytest.fixture
def stub(monkeypatch) -> RelexStub:
    model = RelexStub()
    monkeypatch.setattr(cli, "load_model", lambda name, backend="auto", threads=None: model)
    return model


def stub_argv(*extra: str) -> list[str]:
    return ["predict", "-l", "person,city", "-r", "works with,lives in", "-m", "stub", "-q", *extra]


def test_table_lists_relations_under_each_texts_entities(stub, capsys):
    assert main(stub_argv(ADA, "Nobody here.", "--relation-threshold", "0.4")) == 0
    out = capsys.readouterr().out
    assert out == (
        "# text 1\n"
        "Ada Lovelace     person                0.90  [0:12]\n"
        "Charles Babbage  person                0.80  [25:40]\n"
        "London           city                  0.70  [44:50]\n"
        "relations:\n"
        "  Ada Lovelace [person]     -> works with  -> Charles Babbage [person]  0.60\n"
        "  Ada Lovelace [person]     -> lives in    -> London [city]             0.55\n"
        "  Charles Babbage [person]  -> lives in    -> London [city]             0.55\n"
        "# text 2\n"
        "(no entities)\n"
        "(no relations)\n"
    )
    check, call = stub.calls  # the relations are checked against the model before any text is predicted
    assert check["texts"] == [] and call["texts"] == [ADA, "Nobody here."]
    assert call["relations"] == ["works with", "lives in"] and call["labels"] == ["person", "city"]
    assert call["relation_threshold"] == 0.4 and call["adjacency_threshold"] is None
    assert call["threshold"] == 0.5 and call["flat"] is True and call["multi_label"] is False


def test_jsonl_records_gain_relations_and_keep_fields(stub, capsys, monkeypatch, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"id": 7, "lang": "en", "text": ADA}) + "\nplain line\n", encoding="utf-8")
    assert main(stub_argv("-f", str(source), "--keep", "id,lang", "--format", "jsonl", "--nested")) == 0
    first, second = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert list(first) == ["id", "lang", "text", "entities", "relations"]
    assert first["relations"][0] == {
        "head": {"start": 0, "end": 12, "text": "Ada Lovelace", "type": "person", "entity_idx": 0},
        "tail": {"start": 25, "end": 40, "text": "Charles Babbage", "type": "person", "entity_idx": 1},
        "relation": "works with",
        "score": 0.6,
    }
    assert second == {"text": "plain line", "entities": [], "relations": []}
    assert stub.calls[-1]["flat"] is False


def test_html_shows_a_relation_table_per_text(stub, capsys):
    assert main(stub_argv(ADA, "x <b>", "--format", "html")) == 0
    page = capsys.readouterr().out
    assert page.count('<table class="relation-table">') == 2 and page.count("<hr>") == 1
    assert "<td>Ada Lovelace</td>" in page and "<td>works with</td>" in page and "<td>0.60</td>" in page
    assert "no relations" in page and "x &lt;b&gt;" in page


def test_without_relations_the_output_is_unchanged(stub, capsys, monkeypatch):
    """No --relations: no "relations" field, and the entity model's predict_batch is called."""
    monkeypatch.setattr(
        RelexStub, "predict_batch", lambda self, texts, labels, **o: [[Entity(0, 3, "Ada", "person", 0.9)]],
        raising=False,
    )  # fmt: skip
    assert main(["predict", "-l", "person", "-m", "stub", "-q", "--format", "jsonl", ADA]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "text": ADA, "entities": [{"start": 0, "end": 3, "text": "Ada", "label": "person", "score": 0.9}],
    }  # fmt: skip
    assert stub.calls == []


# ---------------------------------------------------------------------------- refusals


@pytest.fixture(scope="module")
def entity_model_dir(tmp_path_factory, tiny_bert_dir):
    """A saved entity-only model (a tiny random BERT encoder and head)."""
    torch.manual_seed(0)
    model = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0)
    return model.save_pretrained(tmp_path_factory.mktemp("entity_model"))


def refused(argv: list[str], capsys) -> str:
    """The one error line of a command that must exit 2 and write nothing on stdout."""
    assert main(argv) == cli.EXIT_USAGE == 2, argv
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("anyner: error: "), err
    return err


def test_bad_relation_arguments_are_refused_before_the_model_loads(tmp_path, capsys):
    missing = str(tmp_path / "no-model")  # loading it would be exit 1: these must fail before
    base = ["predict", "Ada met Charles.", "-l", "person,city", "-m", missing]
    for extra, message in [
        (["-r", "works with", "--relation-threshold", "2"], "--relation-threshold must be a number in [0, 1], got 2.0"),
        (["-r", "works with", "--adjacency-threshold", "-0.5"],
         "--adjacency-threshold must be a number in [0, 1], got -0.5"),
        (["-r", ""], "--relations is empty"),
        (["-r", " , "], "--relations is empty"),
        (["-r", "works with,city"], "--relations and --labels both name 'city'"),
        (["--relation-threshold", "0.3"], "--relation-threshold applies to relations only"),
        (["--adjacency-threshold", "0.3"], "--adjacency-threshold applies to relations only"),
        (["-r", "works with", "--keep", "id,relations"], "--keep cannot name 'relations'"),
        (["-r", "works with", "--backend", "onnx"], "--relations runs on the torch backend only"),
    ]:  # fmt: skip
        assert message in refused([*base, *extra], capsys), extra


def test_the_builtin_model_answers_relations(capsys):
    """The built-in model finds relations: its relation model (builtin/relations) loads on the first
    call, and the CLI prints what the Python API gives."""
    text = "Marie Curie was born in Warsaw and worked at the University of Paris."
    labels, relations = ["person", "city", "organization"], ["place of birth", "employer"]
    want = AnyNER.from_pretrained().predict_relations(text, labels, relations)
    for model in ([], ["--model", "builtin"]):
        argv = ["predict", text, "-l", ",".join(labels), "-r", ",".join(relations), "--format", "jsonl"]
        argv += model
        assert main(argv) == 0
        [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(e["start"], e["end"], e["label"]) for e in record["entities"]] == [
            (e.start, e.end, e.label) for e in want[0]
        ]
        got = [(r["head"]["entity_idx"], r["tail"]["entity_idx"], r["relation"]) for r in record["relations"]]
        assert got == [(r.head_index, r.tail_index, r.label) for r in want[1]] and got


def test_an_entity_only_model_is_refused_after_it_loads(entity_model_dir, capsys):
    argv = ["predict", "Ada met Charles.", "-l", "person", "-r", "works with", "-m", str(entity_model_dir)]
    err = refused(argv, capsys)
    assert f"{entity_model_dir} finds entities only" in err and "needs a relation-extraction model" in err
    assert "UniEncoderSpanRelexGLiNER" in err
    # the same model without --relations still finds entities
    assert main(argv[:-4] + ["-m", str(entity_model_dir), "-q"]) == 0


def test_help_teaches_relations(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--relations", "--relation-threshold", "--adjacency-threshold"):
        assert flag in out
    assert '--relations "place of birth,employer"' in out
    assert "the built-in model (its relation model loads" in out
    assert "UniEncoderSpanRelexGLiNER" in out and "entity_idx" in out
