"""Tests for the displaCy-style HTML rendering in ``anyner.render``."""

from __future__ import annotations

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyner.render import PALETTE, label_color, render, render_table
from anyner.types import Entity

SENTENCE = "Bill Gates founded Microsoft."
PERSON = Entity(0, 10, "Bill Gates", "person", 0.93)
ORG = {"start": 19, "end": 28, "text": "Microsoft", "label": "organization", "score": 0.875}
VOID = {"br", "meta"}


class Tree(HTMLParser):
    """Checks that tags are well nested and records, per text character, the marks around it."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""  # text in div.entities outside the label spans; <br> counts as "\n"
        self.all_text = ""  # every piece of text in the document
        self.cover: list[list[str]] = []  # per character of self.text: data-label of the enclosing marks
        self.marks: list[dict[str, str | None]] = []
        self.labels: list[str] = []  # contents of span.entity-label, in order
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "br":
            self.all_text += "\n"
            if self._in_entities():
                self._add("\n")
            return
        if tag in VOID:
            return
        self.stack.append((tag, dict(attrs)))
        if tag == "mark":
            self.marks.append(dict(attrs))
        if tag == "span" and dict(attrs).get("class") == "entity-label":
            self.labels.append("")

    def handle_endtag(self, tag: str) -> None:
        assert tag not in VOID, f"end tag for void element {tag}"
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack[-1][0] == tag, f"</{tag}> closes <{self.stack[-1][0]}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.all_text += data
        if not self._in_entities():
            return
        if self._in_label():
            self.labels[-1] += data
        else:
            self._add(data)

    def _in_entities(self) -> bool:
        return any(t == "div" and a.get("class") == "entities" for t, a in self.stack)

    def _in_label(self) -> bool:
        return any(t == "span" and a.get("class") == "entity-label" for t, a in self.stack)

    def _add(self, data: str) -> None:
        around = [a["data-label"] for t, a in self.stack if t == "mark"]
        self.text += data
        self.cover += [around] * len(data)


def parse(markup: str) -> Tree:
    tree = Tree()
    tree.feed(markup)
    tree.close()
    assert not tree.stack, f"unclosed tags: {[t for t, _ in tree.stack]}"
    return tree


def expected_cover(text: str, ents: list[dict]) -> list[list[str]]:
    return [sorted(e["label"] for e in ents if e["start"] <= i < e["end"]) for i in range(len(text))]


def check_invariants(text: str, ents: list[dict]) -> Tree:
    """Well-nested, all text exactly once and in order, every entity covers exactly its characters."""
    tree = parse(render(text, ents))
    assert tree.text == text
    assert [sorted(c) for c in tree.cover] == expected_cover(text, ents)
    assert sorted(tree.labels) == sorted(e["label"] for e in ents)  # one label per entity: none dropped
    return tree


def test_basic_sentence() -> None:
    out = render(SENTENCE, [PERSON, ORG])
    assert out.startswith('<div class="entities">') and out.endswith("</div>")
    assert '<mark class="entity" data-label="person" data-score="0.93" title="person 0.93"' in out
    assert 'data-score="0.88" title="organization 0.88"' in out
    assert f'style="background: {label_color("person")};' in out
    tree = check_invariants(SENTENCE, [PERSON.to_dict(), ORG])
    assert tree.labels == ["person", "organization"]
    assert tree.cover[0] == ["person"] and tree.cover[12] == []


def test_escaping_of_text_and_label() -> None:
    text = 'Say <script>alert("x")</script> & <b>bye</b>'
    label = '<script>alert(1)</script>" onmouseover="x'
    ents = [{"start": 4, "end": 31, "label": label, "score": 0.5}, {"start": 34, "end": 44, "label": "tag"}]
    out = render(text, ents, page=True)
    assert "<script" not in out and "<b>" not in out and 'onmouseover="' not in out
    assert "&lt;script&gt;" in out
    tree = parse(out)
    assert tree.text == text
    assert [m["data-label"] for m in tree.marks] == [label, "tag"]
    assert tree.labels == [label, "tag"]
    table = render_table(text, ents)
    assert "<script" not in table and "<b>" not in table
    assert label in parse(table).all_text and text[4:31] in parse(table).all_text


def test_unsorted_input_gives_same_output() -> None:
    ents = [
        {"start": 19, "end": 28, "label": "organization", "score": 0.8},
        {"start": 0, "end": 4, "label": "first name", "score": 0.7},
        {"start": 0, "end": 10, "label": "person", "score": 0.9},
    ]
    out = render(SENTENCE, ents)
    assert out == render(SENTENCE, list(reversed(ents))) == render(SENTENCE, sorted(ents, key=str))
    tree = check_invariants(SENTENCE, ents)
    assert [m["data-label"] for m in tree.marks] == ["person", "first name", "organization"]


def test_entities_as_objects_and_dicts_mixed() -> None:
    as_dicts = render(SENTENCE, [PERSON.to_dict(), ORG])
    assert render(SENTENCE, [PERSON, Entity(**ORG)]) == as_dicts
    without_text = {k: v for k, v in ORG.items() if k != "text"}
    assert render(SENTENCE, [PERSON, without_text]) == as_dicts


def test_nested_entities_render_as_nested_marks() -> None:
    text = "The New York City Council met."
    ents = [
        {"start": 4, "end": 25, "label": "organization", "score": 0.9},
        {"start": 4, "end": 17, "label": "city", "score": 0.8},
        {"start": 4, "end": 12, "label": "state", "score": 0.4},
    ]
    tree = check_invariants(text, ents)
    assert len(tree.marks) == 3  # properly nested: one mark per entity, none split
    assert tree.cover[5] == ["organization", "city", "state"]  # outermost first
    assert tree.labels == ["state", "city", "organization"]  # inner labels close first


def test_partially_overlapping_entities_are_split_not_dropped() -> None:
    text = "abcdefghij"
    ents = [
        {"start": 0, "end": 6, "label": "a", "score": 0.5},
        {"start": 3, "end": 9, "label": "b", "score": 0.6},
    ]
    tree = check_invariants(text, ents)
    assert [m["data-label"] for m in tree.marks] == ["a", "b", "b"]  # b is cut where a ends
    assert all(m["data-score"] for m in tree.marks)


def test_same_span_with_several_labels_and_duplicates() -> None:
    ents = [
        {"start": 0, "end": 4, "label": "x", "score": 0.5},
        {"start": 0, "end": 4, "label": "y", "score": 0.6},
        {"start": 0, "end": 4, "label": "x", "score": 0.5},
    ]
    check_invariants("abcd efgh", ents)


spans = st.tuples(st.integers(0, 12), st.integers(1, 6), st.sampled_from(["a", "b", "<c>", "d & e"]))


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet="ab <&>\"'\n\t日本😀é", min_size=1, max_size=18), raw=st.lists(spans, max_size=6)
)
def test_any_overlap_keeps_every_entity_and_character(text: str, raw: list[tuple[int, int, str]]) -> None:
    ents = [{"start": s, "end": s + n, "label": lab, "score": 0.5} for s, n, lab in raw if s + n <= len(text)]
    check_invariants(text, ents)


def test_unicode_emoji_and_cjk() -> None:
    text = "我爱北京天安门 👩‍👩‍👧 Zoë Ünal"
    ents = [
        {"start": 2, "end": 4, "label": "城市", "score": 0.9},
        {"start": 8, "end": 13, "label": "emoji", "score": 0.5},
        {"start": 14, "end": 22, "label": "person", "score": 0.7},
    ]
    for e in ents:
        e["text"] = text[e["start"] : e["end"]]
    out = render(text, ents)
    assert "北京" in out and "👩‍👩‍👧" in out and ">城市</span>" in out
    check_invariants(text, ents)


def test_newlines_become_br() -> None:
    text = "Line one\nAda Lovelace\n\nend"
    out = render(text, [{"start": 9, "end": 21, "label": "person", "score": 1.0}])
    assert out.count("<br>") == 3 and "\n" not in out
    assert parse(out).text == text


def test_empty_entity_list_and_empty_text() -> None:
    assert render("a < b", []) == '<div class="entities">a &lt; b</div>'
    assert render("", []) == '<div class="entities"></div>'
    page = render("plain", [], page=True)
    assert "<!DOCTYPE html>" in page and parse(page).text == "plain"
    assert "<tbody></tbody>" in render_table("plain", [])


def test_colors_are_stable_and_from_the_palette() -> None:
    assert label_color("person") == label_color("person")
    assert {label_color(f"label {i}") for i in range(200)} <= set(PALETTE)
    assert len({label_color(f"label {i}") for i in range(200)}) > len(PALETTE) // 2
    assert render(SENTENCE, [PERSON]) == render(SENTENCE, [PERSON])


def test_colors_do_not_depend_on_the_hash_seed() -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    code = "from anyner.render import label_color; print(label_color('person'), label_color('organization'))"
    seen = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": src}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        seen.add(run.stdout.strip())
    assert seen == {f"{label_color('person')} {label_color('organization')}"}


def test_colors_override() -> None:
    out = render(SENTENCE, [PERSON, ORG], colors={"person": "#123456", "organization": "rgb(1, 2, 3)"})
    assert "background: #123456;" in out and "background: rgb(1, 2, 3);" in out
    partial = render(SENTENCE, [PERSON, ORG], colors={"person": "gold"})
    assert "background: gold;" in partial and f"background: {label_color('organization')};" in partial
    page = render(SENTENCE, [PERSON], colors={"person": "#abc"}, page=True)
    assert '<span class="legend-item" style="background: #abc">person</span>' in page


@pytest.mark.parametrize("bad", ["red; background-image: url(x)", 'red" onclick="x', "url(x)", ""])
def test_unsafe_colors_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="person"):
        render(SENTENCE, [PERSON], colors={"person": bad})


def test_show_score_false() -> None:
    out = render(SENTENCE, [PERSON], show_score=False)
    assert "data-score" not in out and 'title="person"' in out and "0.93" not in out


def test_dict_without_score() -> None:
    out = render(SENTENCE, [{"start": 0, "end": 4, "label": "name"}])
    assert "data-score" not in out and 'title="name"' in out
    assert "<td>0</td><td>4</td><td></td>" in render_table(
        SENTENCE, [{"start": 0, "end": 4, "label": "name"}]
    )


@pytest.mark.parametrize(
    "ent",
    [
        {"start": 5, "end": 5, "label": "empty"},
        {"start": 6, "end": 2, "label": "backwards"},
        {"start": -1, "end": 4, "label": "negative"},
        {"start": 19, "end": 40, "label": "too far"},
        {"start": 0.0, "end": 4, "label": "float offset"},
        {"start": 0, "end": 4, "text": "Bob", "label": "wrong text"},
        Entity(0, 10, "Bill Gate", "wrong text", 0.9),
    ],
)
def test_invalid_entities_raise_naming_the_entity(ent: Entity | dict) -> None:
    label = ent.label if isinstance(ent, Entity) else ent["label"]
    with pytest.raises(ValueError, match=label):
        render(SENTENCE, [PERSON, ent])
    with pytest.raises(ValueError, match=label):
        render_table(SENTENCE, [ent])


def test_malformed_entities() -> None:
    with pytest.raises(ValueError, match="start, end and label"):
        render(SENTENCE, [{"start": 0, "end": 4}])
    with pytest.raises(TypeError):
        render(SENTENCE, [(0, 4, "person")])  # type: ignore[list-item]


def test_page_is_standalone_with_legend() -> None:
    out = render(SENTENCE, [PERSON, ORG, {"start": 0, "end": 4, "label": "person", "score": 0.2}], page=True)
    assert out.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in out and "<style>" in out
    _, body = out.split('<div class="legend">', 1)
    legend = body.split("</div>", 1)[0]
    assert legend.count("legend-item") == 2  # each label once, in order of appearance
    assert legend.index(">person<") < legend.index(">organization<")
    assert f"background: {label_color('organization')}" in legend
    for external in ("<script", "<link", "src=", "http://", "https://", "@import"):
        assert external not in out
    tree = parse(out)
    assert {"html", "head", "body", "style", "mark"} <= tree.tags
    assert tree.text == SENTENCE
    assert "personorganization" in tree.all_text  # the legend


def test_render_table() -> None:
    ents = [ORG, PERSON, {"start": 0, "end": 4, "label": "first name", "score": 0.61}]
    out = render_table(SENTENCE, ents)
    assert out.startswith('<table class="entity-table">')
    assert "<th>label</th><th>text</th><th>start</th><th>end</th><th>score</th>" in out
    rows = out.split("<tr>")[2:]
    assert len(rows) == 3
    assert ">person</td><td>Bill Gates</td><td>0</td><td>10</td><td>0.93</td>" in rows[0]
    assert ">first name</td><td>Bill</td><td>0</td><td>4</td><td>0.61</td>" in rows[1]
    assert ">organization</td><td>Microsoft</td><td>19</td><td>28</td><td>0.88</td>" in rows[2]
    parse(out)
