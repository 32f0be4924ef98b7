"""``anyner predict`` input: a byte-order mark is not text, an empty input is an error, JSON-line
fields travel to the output (``--keep``); saved and exported folders are readable by others."""

from __future__ import annotations

import io
import json
import os
import stat
import sys

import pytest
import torch

from anyner import AnyNER, cli
from tests.conftest import spread_head


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_bert_dir):
    torch.manual_seed(0)
    model = spread_head(AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0))
    return model.save_pretrained(tmp_path_factory.mktemp("tiny_input_model"))


def run(capsys, tiny_dir, *argv):
    code = cli.main(
        ["predict", "--labels", "person,city", "--model", str(tiny_dir), "-t", "0.0", "-q", *argv]
    )
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path, capsys, tiny_dir, monkeypatch):
    text = "Alice lives in Paris ."
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() + b"\n")
    code, out, _ = run(capsys, tiny_dir, "--file", str(path), "--format", "jsonl")
    assert code == 0
    record = json.loads(out)
    assert record["text"] == text
    assert all(text[e["start"] : e["end"]] == e["text"] for e in record["entities"])
    monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeff" + text + "\n"))  # the same on stdin
    code, out, _ = run(capsys, tiny_dir, "--format", "jsonl")
    assert code == 0 and json.loads(out)["text"] == text


def test_an_empty_input_is_said_on_stderr(tmp_path, capsys, tiny_dir, monkeypatch):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, out, err = run(capsys, tiny_dir, "--file", str(empty), "--format", "json")
    assert code == 0 and out == "[]\n" and err == ""  # --quiet: nothing on stderr
    code = cli.main(["predict", "--labels", "person", "--model", "/nonexistent", "--file", str(empty)])
    captured = capsys.readouterr()
    assert code == 0, "an empty input does not load the model"
    assert captured.err.strip() == f"anyner: warning: no text to read: {empty} is empty"
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert cli.main(["predict", "--labels", "person", "--model", str(tiny_dir), "--format", "json"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "[]\n" and "no text to read: <stdin> is empty" in captured.err


def test_json_line_fields_are_kept(tmp_path, capsys, tiny_dir):
    path = tmp_path / "in.jsonl"
    rows = [
        {"id": 7, "text": "Alice lives in Paris .", "source": "a"},
        {"id": "b", "text": "Bob ."},
        {"text": "x"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = run(capsys, tiny_dir, "--file", str(path), "--format", "jsonl")
    got = [json.loads(x) for x in out.splitlines()]
    assert code == 0 and [r.get("id") for r in got] == [7, "b", None]
    assert all("source" not in r for r in got)  # only the fields asked for (default: id)
    code, out, _ = run(capsys, tiny_dir, "--file", str(path), "--format", "jsonl", "--keep", "id,source")
    got = [json.loads(x) for x in out.splitlines()]
    assert got[0]["source"] == "a" and got[0]["id"] == 7 and "source" not in got[1]
    code, out, _ = run(capsys, tiny_dir, "--file", str(path), "--format", "table")
    assert code == 0 and "# text 1 id=7\n" in out and '# text 2 id="b"\n' in out and "# text 3\n" in out
    code, _, err = run(capsys, tiny_dir, "--file", str(path), "--keep", "text")
    assert code == 2 and "--keep cannot name 'text'" in err


def test_saved_weights_follow_the_umask(tmp_path, tiny_dir):
    old = os.umask(0o022)
    try:
        folder = AnyNER.from_pretrained(tiny_dir).save_pretrained(tmp_path / "saved")
    finally:
        os.umask(old)
    for name in ("model.safetensors", "gliner_config.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644, name
