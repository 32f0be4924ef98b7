"""``anyner predict``: streaming in batches, the progress bar on stderr, formats, broken pipes; and the
one exit-status table every subcommand follows (model-loading failures, bad arguments, --help)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys

import pytest
import torch

from anyner import AnyNER, cli
from anyner.cli import EXIT_STATUS, _predict_stream, main
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
    assert EXIT_STATUS in out


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


# ---------------------------------------------------------------------------- one exit-status table


@pytest.fixture(scope="module")
def not_models(tiny_dir, tmp_path_factory) -> dict:
    """Folders that cannot be loaded as a model, each in its own way."""
    root = tmp_path_factory.mktemp("not_models")
    folders = {"missing": root / "no-such-folder", "empty": root / "empty"}  # empty: like --model /tmp
    folders["empty"].mkdir()
    folders["invalid-config"] = root / "invalid-config"
    folders["invalid-config"].mkdir()
    (folders["invalid-config"] / "gliner_config.json").write_text("{not json", encoding="utf-8")
    folders["config-not-an-object"] = root / "config-not-an-object"
    folders["config-not-an-object"].mkdir()
    (folders["config-not-an-object"] / "gliner_config.json").write_text("[1, 2]", encoding="utf-8")
    weights = [p.name for p in tiny_dir.iterdir() if p.name in ("model.safetensors", "pytorch_model.bin")]
    assert weights, "the saved tiny model has weights"
    folders["no-weights"] = root / "no-weights"  # a good gliner_config.json whose weights are gone
    shutil.copytree(tiny_dir, folders["no-weights"])
    for name in weights:
        (folders["no-weights"] / name).unlink()
    folders["truncated-weights"] = root / "truncated-weights"
    shutil.copytree(tiny_dir, folders["truncated-weights"])
    for name in weights:
        path = folders["truncated-weights"] / name
        path.write_bytes(path.read_bytes()[:200])
    return folders


@pytest.fixture
def bench(tmp_path):
    folder = tmp_path / "bench"
    folder.mkdir()
    record = {"sentence": "Bill Gates lives in Seattle .", "entities": [
        {"name": "Bill Gates", "type": "person", "pos": [0, 10]}]}  # fmt: skip
    (folder / "test.json").write_text(json.dumps([record]), encoding="utf-8")
    (folder / "labels.json").write_text(json.dumps(["person", "city"]), encoding="utf-8")
    return folder


@pytest.fixture
def no_server(monkeypatch):
    """``anyner serve`` must fail before it serves: a server started here would never return."""
    serve = pytest.importorskip("anyner.serve")

    def refuse(*args, **kwargs):
        raise AssertionError("serve.run was called")

    monkeypatch.setattr(serve, "run", refuse)


def loading_argv(command: str, model, tmp_path, bench) -> list[str]:
    """A command line of each subcommand that loads a model, valid but for the model."""
    return {
        "predict": ["predict", "Bill Gates lives in Seattle.", "-l", "person", "--model", str(model)],
        "evaluate": ["evaluate", "--model", str(model), "--data", str(bench)],
        "serve": ["serve", "--model", str(model)],
        "export": ["export", "onnx", "--model", str(model), "--out", str(tmp_path / "out")],
    }[command]


MODEL_COMMANDS = ["predict", "evaluate", "serve", "export"]


@pytest.mark.parametrize("command", MODEL_COMMANDS)
def test_every_model_that_cannot_load_is_one_status_and_one_line(
    command, not_models, tmp_path, bench, no_server, capsys
):
    if command == "export":
        pytest.importorskip("onnx")
        pytest.importorskip("onnxruntime")
    for kind, folder in not_models.items():
        code = main(loading_argv(command, folder, tmp_path, bench))
        out, err = capsys.readouterr()
        assert code == cli.EXIT_FAILED == 1, (kind, err)
        assert err.count("\n") == 1 and err.startswith("anyner: error: cannot load the model: "), (kind, err)
        assert "Traceback" not in err and out == "", kind
    assert not (tmp_path / "out").exists()  # export wrote nothing


@pytest.mark.parametrize("command", ["predict", "evaluate", "serve"])
def test_bad_arguments_are_reported_before_the_model_loads(command, not_models, tmp_path, bench, capsys):
    """Exit 2 with the shared checks' words (anyner.validate) naming the flag; the model is never read."""
    argv = loading_argv(command, not_models["missing"], tmp_path, bench)
    cases = [(["--batch-size", "0"], "--batch-size must be a positive integer, got 0")]
    if command != "serve":
        cases += [
            (["--threshold", "1.5"], "--threshold must be a number in [0, 1], got 1.5"),
            (["--threshold", "nan"], "--threshold must be a number in [0, 1], got nan"),
        ]
    if command == "evaluate":
        cases.append((["--limit", "0"], "--limit must be a positive integer, got 0"))
    if command == "serve":
        cases += [
            (["--queue-size", "0"], "--queue-size must be a positive integer, got 0"),
            (["--max-texts", "-1"], "--max-texts must be a positive integer, got -1"),
        ]
    for extra, message in cases:
        assert main([*argv, *extra]) == cli.EXIT_USAGE == 2, extra
        assert capsys.readouterr().err == f"anyner: error: {message}\n"


@pytest.mark.parametrize(
    ("command", "module", "extra"),
    [("serve", "fastapi", "serve"), ("serve", "uvicorn", "serve"), ("export", "onnx", "onnx")],
)
def test_a_missing_optional_package_fails_before_the_model_loads(
    command, module, extra, not_models, tmp_path, bench, monkeypatch, capsys
):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else find_spec(name, *a)
    )
    assert main(loading_argv(command, not_models["missing"], tmp_path, bench)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and module in err and f"pip install 'anyner[{extra}]'" in err
    assert "cannot load the model" not in err  # the model was not tried


def test_train_on_a_missing_or_bad_config_is_one_line_and_status_2(tmp_path, capsys):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("[train\nsteps = 3\n", encoding="utf-8")
    bad_value = tmp_path / "bad-value.toml"
    bad_value.write_text('[train]\nsteps = "many"\n', encoding="utf-8")
    missing_data = tmp_path / "missing-data.toml"
    missing_data.write_text('[[data]]\npath = "nowhere.jsonl"\n', encoding="utf-8")
    for config, words in (
        (tmp_path / "nonexist.toml", "nonexist.toml does not exist"),
        (tmp_path, str(tmp_path)),  # a folder, not a file
        (bad_toml, "not valid TOML"),
        (bad_value, "bad-value.toml"),
        (missing_data, "nowhere.jsonl"),
    ):
        assert main(["train", str(config)]) == 2, config
        out, err = capsys.readouterr()
        # missing-data loads the encoder first, whose loading bar (transformers') may come before
        last = err.splitlines()[-1]
        assert err.endswith(last + "\n") and last.startswith("anyner: error: ") and words in last, err
        assert err.count("anyner: error: ") == 1 and (config == missing_data or err == last + "\n"), err
        assert "Traceback" not in err and out == ""
    assert main(["train", str(tmp_path / "nonexist.toml"), "--until-step", "0"]) == 2  # the flag comes first
    assert capsys.readouterr().err == "anyner: error: --until-step must be a positive integer, got 0\n"


@pytest.mark.slow
def test_train_on_a_missing_config_in_a_real_process_prints_no_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "anyner.cli", "train", "nonexist.toml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "anyner: error: training config nonexist.toml does not exist\n"


def test_an_output_that_cannot_be_written_is_status_1(tiny_dir, bench, tmp_path, capsys):
    out = tmp_path / "no-such-folder" / "scores.json"
    assert main(["evaluate", "--model", str(tiny_dir), "--data", str(bench), "--json", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"anyner: error: cannot write {out}: ") and err.count("\n") == 1


HELPS = [
    [], ["predict"], ["evaluate"], ["train"], ["serve"], ["export"], ["export", "onnx"],
]  # fmt: skip


@pytest.mark.parametrize("command", HELPS, ids=lambda c: " ".join(c) or "anyner")
def test_every_help_prints_the_one_exit_status_table(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert EXIT_STATUS in out and out.count("Exit status") == 1
    assert "pip install fastapi" not in out
    if command == ["serve"]:
        assert "pip install 'anyner[serve]'" in out
    if command == ["export", "onnx"]:
        assert "pip install 'anyner[onnx]'" in out


def test_the_table_names_each_status_main_returns():
    for status in (cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED):
        assert f"\n  {status} " in EXIT_STATUS
    assert (cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED) == (0, 1, 2, 130)
