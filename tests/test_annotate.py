"""``anyner annotate``: the same records from 1 worker, 2 workers and a local Ray cluster; a run
killed with SIGKILL and started again writes every record exactly once; bad lines are named,
counted and skipped; Parquet in and out with the documented schema."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anyner import cli
from anyner.annotate import MANIFEST, AnnotateError, Settings, annotate, parquet_schema, read_output

pytestmark = pytest.mark.slow  # each run loads the built-in model in its workers

LABELS = "person,organization,location,date"
SENTENCES = [
    "Bill Gates founded Microsoft in Albuquerque on April 4, 1975.",
    "Angela Merkel met Emmanuel Macron in Berlin on Tuesday.",
    "Lionel Messi joined Inter Miami in 2023.",
    "The Rolling Stones played Madison Square Garden with Mick Jagger.",
    "Marie Curie was born in Warsaw in 1867.",
    "Apple hired Tim Cook in 1998.",
    "Toyota opened a plant in Kentucky in 1988.",
    "Ada Lovelace worked with Charles Babbage in London.",
    "Nelson Mandela was released from prison in February 1990.",
    "The United Nations met in Geneva last week.",
    "Amazon bought Whole Foods in June 2017.",
]


def corpus(folder: Path) -> list[str]:
    """Two JSONL files and a text file: 33 records, ids in the first file only."""
    folder.mkdir(parents=True, exist_ok=True)
    a = folder / "a.jsonl"
    a.write_text("".join(json.dumps({"id": f"a{i}", "text": s}) + "\n" for i, s in enumerate(SENTENCES)))
    b = folder / "b.jsonl"
    b.write_text("".join(json.dumps({"text": s[::-1].title()[::-1]}) + "\n" for s in SENTENCES))
    c = folder / "c.txt"
    c.write_text("\n".join(s.replace(" in ", " near ") for s in SENTENCES) + "\n")
    return [str(a), str(folder / "[bc].*")]


def settings(**kw) -> Settings:
    return Settings(model="builtin", labels=tuple(LABELS.split(",")), shard_size=4, **kw)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "anyner.cli", "annotate", *args], capture_output=True,
                          text=True, env=env, timeout=600)  # fmt: skip


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotate")
    inputs = corpus(root / "in")
    totals = annotate(
        inputs, settings(), root / "one", workers=1, threads=1, progress=False, log=lambda m: None
    )
    return inputs, root, read_output(root / "one"), totals


def test_one_worker_writes_every_record_once(one_worker):
    inputs, root, rows, totals = one_worker
    assert len(rows) == 33 == totals["records"] and totals["errors"] == 0
    assert [r["id"] for r in rows[:11]] == [f"a{i}" for i in range(11)]
    assert rows[11]["id"] == f"{root / 'in' / 'b.jsonl'}:1" and rows[11]["line"] == 1
    assert rows[-1]["source"].endswith("c.txt") and rows[-1]["line"] == 11
    # the entities are the model's own for those texts, offsets into the text as read
    from anyner import AnyNER

    want = AnyNER.from_pretrained().predict_batch(SENTENCES, LABELS.split(","))
    got = [[(e["start"], e["end"], e["text"], e["label"]) for e in r["entities"]] for r in rows[:11]]
    assert got == [[(e.start, e.end, e.text, e.label) for e in ents] for ents in want]
    assert sum(map(len, got)) > 10
    manifest = json.loads((root / "one" / MANIFEST).read_text())
    assert manifest["complete"] and len(manifest["shards"]) == 9  # 3 files of 11 records, shards of 4
    assert manifest["totals"]["entities"] == sum(len(r["entities"]) for r in rows) == totals["entities"]


def test_two_workers_and_a_local_ray_cluster_write_the_same(one_worker):
    inputs, root, rows, _ = one_worker
    annotate(inputs, settings(), root / "two", workers=2, threads=1, progress=False, log=lambda m: None)
    assert read_output(root / "two") == rows
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (the scale extra): the Ray half of this test needs it")
    annotate(
        inputs,
        settings(),
        root / "ray",
        workers=2,
        threads=1,
        ray="local",
        progress=False,
        log=lambda m: None,
    )
    assert read_output(root / "ray") == rows


def test_killed_and_started_again_every_record_exactly_once(one_worker, tmp_path):
    inputs, _, rows, _ = one_worker
    out = tmp_path / "out"
    args = [*inputs, "--labels", LABELS, "--out", str(out), "--shard-size", "4", "--workers", "1",
            "--threads", "1", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "anyner.cli", "annotate", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(list(out.glob("part-*.jsonl"))) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(out.glob("part-*.jsonl")))
    assert 3 <= written < 9, "the run was not killed midway"
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert f"{9 - written} to do" in again.stderr or f"{8 - written} to do" in again.stderr
    assert read_output(out) == rows
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and manifest["totals"]["records"] == 33
    assert not list(out.glob(".*.tmp"))


def test_bad_lines_are_named_counted_and_skipped(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"id": 1, "text": SENTENCES[0]}) + "\n" + '{"id": 2, "text": "unclosed\n'
        + json.dumps({"id": 3, "body": "no text field"}) + "\n" + json.dumps({"id": 4, "text": SENTENCES[1]}) + "\n"
    )  # fmt: skip
    done = run_cli(str(bad), "--labels", LABELS, "--out", str(tmp_path / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert f"{bad}:2: not valid JSON" in done.stderr and f"{bad}:3: no string field 'text'" in done.stderr
    assert "2 records" in done.stderr and "2 errors" in done.stderr
    assert [r["id"] for r in read_output(tmp_path / "out")] == ["1", "4"]
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    assert manifest["totals"]["errors"] == 2
    assert manifest["shards"]["part-00000-000000"]["error_lines"][0].startswith(f"{bad}:2")
    failed = run_cli(str(bad), "--labels", LABELS, "--out", str(tmp_path / "f"), "--on-error", "fail")
    assert failed.returncode == 2 and "--on-error fail" in failed.stderr


def test_parquet_in_and_out(one_worker, tmp_path):
    pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (the scale extra)")
    import pyarrow.parquet as pq

    _, root, rows, _ = one_worker
    table = pa.table({"doc_id": [f"a{i}" for i in range(11)], "body": SENTENCES})
    pq.write_table(table, tmp_path / "in.parquet")
    done = run_cli(str(tmp_path / "in.parquet"), "--labels", LABELS, "--out", str(tmp_path / "out"),
                   "--format", "parquet", "--text-field", "body", "--id-field", "doc_id", "--shard-size", "4",
                   "--threads", "1", "--workers", "1", "--no-progress")  # fmt: skip
    assert done.returncode == 0, done.stderr
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 3 and all(pq.read_schema(p).equals(parquet_schema()) for p in parts)
    got = read_output(tmp_path / "out")
    assert [r["id"] for r in got] == [f"a{i}" for i in range(11)]
    assert [r["entities"] for r in got] == [r["entities"] for r in rows[:11]]  # same texts, same entities


def test_resuming_with_other_settings_is_refused(one_worker):
    inputs, root, _, _ = one_worker
    with pytest.raises(AnnotateError, match="other settings or inputs"):
        annotate(inputs, settings(threshold=0.7), root / "one", workers=1, threads=1, progress=False)


def test_argument_errors(tmp_path, capsys):
    assert cli.main(["annotate", str(tmp_path / "none.jsonl"), "--labels", "x", "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["annotate", str(tmp_path / "*.jsonl"), "--labels", "x", "--out", str(tmp_path)]) == 2
    assert "no file matches" in capsys.readouterr().err
    (tmp_path / "a.txt").write_text("x\n")
    assert (
        cli.main(
            ["annotate", str(tmp_path / "a.txt"), "--labels", "x", "--out", str(tmp_path), "--workers", "0"]
        )
        == 2
    )
    assert "--workers" in capsys.readouterr().err
