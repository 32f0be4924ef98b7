"""The web page with relations, end to end: headless Chromium (W3C WebDriver, see
tests/e2e/test_web_page.py) against a relation-extraction model served by uvicorn.

The test types a text, its labels, relations and the three thresholds, submits, waits for the
arrows (SVG paths over the highlighted text) and the list of relations, and checks both against
the API's answer for the same request: as many arrows and list items as relations, each arrow
leaving its head entity's mark and landing on its tail entity's. It keeps a screenshot
(``web_relations.png``): in ``tmp_path``, and in ``$ANYNER_ARTIFACTS`` when it is set. A second
test checks that the page of an entity-only model disables the relation fields and says why.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from anyner import AnyNER
from anyner.serve import create_app
from tests.conftest import RELATIONS, ood_sample
from tests.e2e.test_web_page import browser, httpx, serving, tiny_model, wait_for  # noqa: F401 (its fixtures)

pytestmark = pytest.mark.slow
MOST_ARROWS = 6  # the relation threshold keeps this many of the text's relations: a readable picture


@pytest.fixture(scope="module")
def relex_model(relex_dot) -> AnyNER:
    return AnyNER.from_pretrained(relex_dot)


@pytest.fixture(scope="module")
def case(relex_model, shared) -> dict:
    """A request for one OOD sentence with relations: the thresholds calibrated as tests/test_relex.py
    does, then the relation threshold raised to keep the text's :data:`MOST_ARROWS` best relations."""
    from tests.test_relex import calibrate

    sample = [(name, s[:2], labels) for name, s, labels in ood_sample(shared, per_set=2)]
    threshold, adjacency, relation = calibrate(relex_model, sample, per_set=1)
    options = dict(threshold=threshold, adjacency_threshold=adjacency, relation_threshold=relation)
    best = None
    for _, sentences, labels in sample:
        for text in sentences:
            ents, rels = relex_model.predict_relations(text, labels, RELATIONS, **options)
            if len(rels) >= 2 and (best is None or len(ents) < len(best[2])):  # the fewest entities
                best = (text, labels, ents, rels)
    assert best is not None, "the calibrated thresholds give relations"
    text, labels, _, rels = best
    scores = sorted((r.score for r in rels), reverse=True)
    if len(scores) > MOST_ARROWS:
        relation = (scores[MOST_ARROWS - 1] + scores[MOST_ARROWS]) / 2
    return {"text": text, "labels": labels, "relations": RELATIONS, **options, "relation_threshold": relation}


def keep_screenshot(png: bytes, tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    out.write_bytes(png)
    if os.environ.get("ANYNER_ARTIFACTS"):
        folder = Path(os.environ["ANYNER_ARTIFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, folder / out.name)
    return out


READ_RELATIONS = """
const view = document.getElementById('view').getBoundingClientRect();
const box = (r) => ({left: r.left - view.left, right: r.right - view.left, top: r.top - view.top,
                     bottom: r.bottom - view.top});
const point = (p, at) => { const q = p.getPointAtLength(at); return {x: q.x, y: q.y}; };
return {
  marks: Array.from(document.querySelectorAll('#result mark.entity')).map((m) => ({
    label: m.dataset.label, text: m.firstChild.textContent, box: box(m.getClientRects()[0])})),
  arrows: Array.from(document.querySelectorAll('#arrows path.relation-arrow')).map((p) => ({
    start: point(p, 0), end: point(p, p.getTotalLength()), marker: p.getAttribute('marker-end'),
    title: p.querySelector('title').textContent})),
  names: Array.from(document.querySelectorAll('#arrows text.relation-name')).map((t) => t.textContent),
  items: Array.from(document.querySelectorAll('#relation-list li')).map((li) => li.textContent),
  status: document.getElementById('status').textContent,
  error: document.getElementById('error').textContent,
};
"""


def test_the_page_draws_relations_as_arrows(browser, relex_model, case, tmp_path):  # noqa: F811
    torch.set_num_threads(1)
    browser.cmd("POST", "/window/rect", {"width": 1200, "height": 1400})  # the whole page in the screenshot
    with serving(create_app(relex_model, name="relex test model")) as url:
        browser.get(url + "/")
        wait_for(
            lambda: browser.script("return !document.getElementById('relations').disabled"), 30, "relations"
        )
        assert "extracts relations" in browser.script(
            "return document.getElementById('relations-note').textContent"
        )
        browser.type("#text", case["text"])
        browser.type("#labels", ", ".join(case["labels"]))
        browser.type("#relations", ", ".join(case["relations"]))
        browser.type("#threshold-value", repr(case["threshold"]))
        browser.type("#relation-threshold", repr(case["relation_threshold"]))
        browser.type("#adjacency-threshold", repr(case["adjacency_threshold"]))
        browser.click("#submit")
        wait_for(lambda: browser.find_all("#arrows path.relation-arrow"), 60, "arrows")
        wait_for(lambda: browser.find_all("#relation-list li"), 10, "the list of relations")
        seen = browser.script(READ_RELATIONS)
        png = browser.screenshot()
        # the API's answer to the same request
        answer = httpx.post(url + "/v1/entities", json=case, timeout=60).json()
    shot = keep_screenshot(png, tmp_path, "web_relations.png")
    assert png.startswith(b"\x89PNG") and shot.stat().st_size > 1000

    rels, ents = answer["relations"], answer["entities"]
    assert 2 <= len(rels) <= MOST_ARROWS
    assert seen["error"] == ""
    assert seen["status"] == f"{len(ents)} entities, {len(rels)} relations"
    assert len(seen["arrows"]) == len(seen["names"]) == len(seen["items"]) == len(rels)
    assert [(m["label"], m["text"]) for m in seen["marks"]] == [(e["label"], e["text"]) for e in ents]
    for r, arrow, name, item in zip(rels, seen["arrows"], seen["names"], seen["items"], strict=True):
        assert name == r["relation"] and arrow["marker"] == "url(#arrowhead)"
        head, tail = r["head"], r["tail"]
        assert (
            item
            == f"{head['text']} ({head['type']}) \u2192 {r['relation']} \u2192 {tail['text']} ({tail['type']}) {r['score']:.2f}"
        )
        assert (
            arrow["title"] == f"{head['text']} \u2192 {r['relation']} \u2192 {tail['text']} {r['score']:.2f}"
        )
        # flat entities: one mark each, in the order of the entities; the arrow leaves the top of
        # the head's mark and lands on the top of the tail's
        for at, end in ((arrow["start"], head), (arrow["end"], tail)):
            mark = seen["marks"][end["entity_idx"]]["box"]
            assert mark["left"] <= at["x"] <= mark["right"] and abs(at["y"] - mark["top"]) < 1, (at, mark)


def test_an_entity_only_model_disables_the_relation_fields(browser, tiny_model):  # noqa: F811
    with serving(create_app(tiny_model, name="tiny test model")) as url:
        browser.get(url + "/")
        note = wait_for(
            lambda: browser.script("return document.getElementById('relations-note').textContent"),
            30,
            "the note",
        )
        assert "finds entities only" in note
        assert browser.script(
            "return ['relations', 'relation-threshold', 'adjacency-threshold']"
            ".every((id) => document.getElementById(id).disabled)"
        )
        browser.type("#labels", "person, organization")
        browser.type("#threshold-value", "0.3")
        browser.click("#submit")
        wait_for(
            lambda: "entit" in browser.script("return document.getElementById('status').textContent"),
            60,
            "an answer",
        )
        status = browser.script("return document.getElementById('status').textContent")
        assert (
            "relation" not in status
            and browser.script("return document.getElementById('error').textContent") == ""
        )
        assert (
            browser.find_all("#arrows path.relation-arrow") == []
            and browser.find_all("#relation-list li") == []
        )
