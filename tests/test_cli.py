"""``anyner predict``: streaming in batches, the progress bar on stderr, formats, exit codes, broken pipes."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
import torch

from anyner import AnyNER
from anyner.cli import _predict_stream, main
from tests.conftest import spread_head

LABELS = ["person", "organization", "city"]
SENTENCES = [
    "Bill Gates founded Microsoft in Albuquerque.",
    "Angela Merkel met Emmanuel Macron in Paris.",
    "",
    "Apple released the iPhone in California in 2007.",
    "Ada Lovelace wrote the first program.",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, tiny_bert_dir):
    """A saved model: the tiny random BERT encoder with a random head whose scores spread."""
    torch.manual_seed(0)
    model = spread_head(AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0))
    return model.save_pretrained(tmp_path_factory.mktemp("tiny_cli_model"))


@pytest.fixture(scope="module")
def tiny(tiny_dir) -> AnyNER:
    return AnyNER.from_pretrained(tiny_dir)


def texts(n: int) -> list[str]:
    return [SENTENCES[i % len(SENTENCES)] + f" Line {i}." for i in range(n)]


def predict(argv, tiny_dir, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return main(
        ["predict", "--labels", ",".join(LABELS), "--model", str(tiny_dir), "--threshold", "0.3", *argv]
    )


# ---------------------------------------------------------------------------- streaming


def test_stream_reads_one_batch_at_a_time(tiny):
    events: list = []

    def source():
        for i, text in enumerate(texts(20)):
            events.append(("read", i))
            yield text

    got = []
    for batch in _predict_stream(tiny, source(), LABELS, batch_size=8, threshold=0.3):
        events.append(("batch", len(batch)))
        got.extend(batch)
    reads = [("read", i) for i in range(20)]
    assert events == [*reads[:8], ("batch", 8), *reads[8:16], ("batch", 8), *reads[16:], ("batch", 4)]
    # the same entities as one call over everything (scores up to padding noise)
    whole = tiny.predict_batch(texts(20), LABELS, threshold=0.3)
    assert [t for t, _ in got] == texts(20)
    assert any(whole)
    for (_, ents), expected in zip(got, whole, strict=True):
        assert [(e.start, e.end, e.label) for e in ents] == [(e.start, e.end, e.label) for e in expected]
        assert [e.score for e in ents] == pytest.approx([e.score for e in expected], abs=1e-5)


class SlowStdin:
    """stdin whose lines are logged as they are read."""

    def __init__(self, lines, log):
        self.lines, self.log, self.closed = lines, log, False

    def __iter__(self):
        for i, line in enumerate(self.lines):
            self.log.append(("read", i))
            yield line + "\n"

    def isatty(self):
        return False


class LoggedStdout(io.StringIO):
    def __init__(self, log):
        super().__init__()
        self.log = log

    def write(self, s):
        self.log.append(("write", s))
        return super().write(s)

    def flush(self):
        self.log.append(("flush",))


def test_cli_writes_each_batch_before_reading_the_next(tiny_dir, monkeypatch):
    log: list = []
    stdin, stdout = SlowStdin(texts(20), log), LoggedStdout(log)
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert predict(["--format", "jsonl", "--batch-size", "8"], tiny_dir) == 0
    first_flush = log.index(("flush",))
    assert first_flush < log.index(("read", 8)), "the first batch is written before the 9th line is read"
    written = "".join(e[1] for e in log[:first_flush] if e[0] == "write")
    assert [json.loads(line)["text"] for line in written.splitlines()] == texts(8)
    assert len(stdout.getvalue().splitlines()) == 20
    assert not stdin.closed  # stdin is read, not closed


# ---------------------------------------------------------------------------- progress and output


def test_progress_goes_to_stderr_and_results_to_stdout(tiny_dir, tmp_path, capsys):
    path = tmp_path / "in.txt"
    path.write_text("\n".join(texts(20)) + "\n", encoding="utf-8")
    assert predict(["--file", str(path), "--format", "jsonl", "--batch-size", "4"], tiny_dir) == 0
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]  # nothing but JSON on stdout
    assert [r["text"] for r in records] == texts(20)
    assert "20/20" in err and "words/s" in err and "anyner" in err  # total counted from the file
    for flag in ("--no-progress", "--quiet", "-q"):
        assert predict(["--file", str(path), "--format", "jsonl", flag], tiny_dir) == 0
        out2, err2 = capsys.readouterr()
        assert out2 == out and err2 == ""


def test_json_streams_the_same_array_as_before(tiny_dir, tiny, tmp_path, capsys):
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": t, "id": i}) for i, t in enumerate(texts(11))]
    path.write_text("\n".join(lines), encoding="utf-8")  # no final newline
    assert predict(["-f", str(path), "--format", "json", "--batch-size", "3", "--no-progress"], tiny_dir) == 0
    out = capsys.readouterr().out
    results = tiny.predict_batch(texts(11), LABELS, threshold=0.3)
    before = [
        {"text": t, "entities": [e.to_dict() for e in r]} for t, r in zip(texts(11), results, strict=True)
    ]
    got = json.loads(out)
    assert [r["text"] for r in got] == texts(11)
    assert [[(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in got] == [
        [(e["start"], e["end"], e["label"]) for e in r["entities"]] for r in before
    ]
    assert out == json.dumps(got, ensure_ascii=False, indent=2) + "\n"  # the layout json.dump wrote


def test_table_headers_and_empty_input(tiny_dir, tmp_path, capsys, monkeypatch):
    assert predict([SENTENCES[0]], tiny_dir) == 0
    assert "# text" not in capsys.readouterr().out
    for stdin in (SENTENCES[0] + "\n", SENTENCES[0]):  # one line from stdin: no header either
        assert predict([], tiny_dir, stdin=stdin, monkeypatch=monkeypatch) == 0
        assert "# text" not in capsys.readouterr().out
    assert predict([SENTENCES[0], "", SENTENCES[1]], tiny_dir) == 0
    out = capsys.readouterr().out
    assert out.count("# text") == 3 and "# text 2\n(no entities)\n# text 3\n" in out
    for fmt, expected in (("json", "[]\n"), ("jsonl", ""), ("table", ""), ("html", None)):
        assert predict(["--format", fmt], tiny_dir, stdin="", monkeypatch=monkeypatch) == 0
        out = capsys.readouterr().out
        if expected is None:
            assert "<html" in out.lower()
        else:
            assert out == expected


def test_html_collects_the_whole_input(tiny_dir, capsys, monkeypatch):
    assert predict(["--format", "html"], tiny_dir, stdin="\n".join(texts(10)), monkeypatch=monkeypatch) == 0
    out = capsys.readouterr().out
    assert out.lower().count("<html") == 1 and out.count("\n<hr>\n") == 9  # one page, ten texts


# ---------------------------------------------------------------------------- errors


def test_exit_codes_and_messages(tiny_dir, tmp_path, capsys, monkeypatch):
    missing = tmp_path / "missing.txt"
    # a missing file is reported before the model is loaded (the model here does not exist)
    assert predict(["-f", str(missing), "--model", str(tmp_path / "no-model")], tiny_dir) == 2
    assert f"cannot read {missing}" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\nalso fine\n{"text": oops}\n', encoding="utf-8")
    assert predict(["-f", str(bad), "--format", "jsonl", "--batch-size", "1", "-q"], tiny_dir) == 2
    out, err = capsys.readouterr()
    assert f"{bad}:3: not valid JSON" in err
    assert [json.loads(line)["text"] for line in out.splitlines()] == [
        "fine",
        "also fine",
    ]  # batches before it
    assert predict(["x", "--batch-size", "0"], tiny_dir) == 2
    assert "--batch-size must be a positive integer" in capsys.readouterr().err
    assert predict(["x", "--model", str(tmp_path / "no-model")], tiny_dir) == 1
    assert "cannot load the model" in capsys.readouterr().err
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    assert predict(["-f", str(latin), "-q"], tiny_dir) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_predict_help_shows_examples(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "anyner predict --file notes.txt" in out and "| head" in out
    assert "--no-progress" in out and "--quiet" in out and "Exit status" in out


# A child process that runs the CLI on a stub model: a real pipe and a real interpreter exit,
# without the seconds torch and transformers take to import.
STUB_CLI = """
import sys, types
from anyner import Entity

class Stub:
    def predict_batch(self, texts, labels, batch_size=8, **options):
        return [[Entity(0, 4, t[:4], labels[0], 0.9)] if len(t) >= 4 else [] for t in texts]

stub = types.ModuleType("anyner.pipeline")
stub.AnyNER = type("AnyNER", (), {"from_pretrained": staticmethod(lambda *a, **k: Stub())})
sys.modules["anyner.pipeline"] = stub
from anyner.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_closed_pipe_exits_quietly(tmp_path, fmt):
    """``anyner predict -f big.txt | head -n 1``: no traceback, no 'Exception ignored', status 0."""
    path = tmp_path / "big.txt"
    # ~300 kB of output: more than a pipe holds, so the writer is still writing when the reader goes
    path.write_text("\n".join(t + " filler" * 700 for t in texts(60)) + "\n", encoding="utf-8")
    argv = [sys.executable, "-c", STUB_CLI, "predict", "-f", str(path), "-l", "person", "--format", fmt]
    if fmt == "table":
        path.write_text("\n".join(texts(30_000)) + "\n", encoding="utf-8")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -n 1` does after one line
    try:
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    assert first.startswith(b"# text 1" if fmt == "table" else b'{"text": "Bill Gates')
    assert code == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    assert "anyner:" in err  # the progress bar, on stderr


def test_ctrl_c_exits_130_without_a_traceback(monkeypatch, capsys):
    from anyner import cli

    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli._parser()
    for sub in parser._subparsers._group_actions[0].choices.values():
        sub.set_defaults(func=interrupted)
    monkeypatch.setattr(cli, "_parser", lambda: parser)
    assert cli.main(["evaluate", "--model", "x", "--data", "y"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err


def test_table_escapes_control_characters_instead_of_sending_them_to_the_terminal():
    from anyner.cli import _printable

    assert _printable("Zürich 東京 🙂") == "Zürich 東京 🙂"
    assert _printable("evil\x1b[2Jname") == "evil\\x1b[2Jname"  # no screen clear
    assert _printable("a\tb\x00c\u202ed") == "a\\tb\\x00c\\u202ed"  # NUL and a bidi override, visible
