"""Safety audit as tests: nothing is unpickled, no remote code runs, the server reads no file
a request names. (The server's requests are tested in test_serve.py: no field or route names a
file, and the body size limit answers 413 naming max_body_bytes, with and without Content-Length.)"""

from __future__ import annotations

import ast
import io
import pickle
from pathlib import Path

import pytest
import torch

from anyner import AnyNER, checkpoint
from tests.conftest import REPO, spread_head

SRC = REPO / "src" / "anyner"
SOURCES = sorted(SRC.rglob("*.py"))


def calls(path: Path):
    """(dotted name of the callee, ast.Call) for each call in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), node


def keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def test_sources_are_found():
    names = {p.name for p in SOURCES}
    assert {"checkpoint.py", "serve.py", "pipeline.py"} <= names


def test_nothing_is_unpickled():
    """No pickle-based module is imported; torch.load always has weights_only=True; np.load never
    allows pickles; ONNX Runtime and safetensors do not unpickle."""
    unsafe_modules = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    problems = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{path.name}: import {a.name}" for a in node.names if a.name in unsafe_modules]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in unsafe_modules:
                problems.append(f"{path.name}: from {node.module} import ...")
        for name, call in calls(path):
            where = f"{path.name}:{call.lineno} {name}"
            if name.endswith(("torch.load", "serialization.load")):
                value = keyword(call, "weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{where} without weights_only=True")
            if name.endswith("load") and name.split(".")[0] in ("np", "numpy"):
                value = keyword(call, "allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{where} with allow_pickle")
    assert problems == []


def test_no_remote_code_is_trusted():
    """No call passes trust_remote_code (the default is False), and none passes **kwargs that
    could carry it into a transformers loader."""
    problems = []
    for path in SOURCES:
        for name, call in calls(path):
            if not name.endswith("from_pretrained"):
                continue
            value = keyword(call, "trust_remote_code")
            if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                problems.append(f"{path.name}:{call.lineno} {name}(trust_remote_code=...)")
            if any(kw.arg is None for kw in call.keywords) and name.split(".")[0].startswith("Auto"):
                problems.append(f"{path.name}:{call.lineno} {name}(**...)")
    assert problems == []
    assert not [p.name for p in SOURCES if "trust_remote_code=True" in p.read_text(encoding="utf-8")]


@pytest.fixture(scope="module")
def model_folder(tiny_bert_dir, tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = spread_head(AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0))
    return model.save_pretrained(tmp_path_factory.mktemp("safety") / "model")


def test_loading_never_asks_for_remote_code(model_folder, tiny_bert_dir, monkeypatch):
    """At run time: every transformers loader anyner calls gets no trust_remote_code."""
    import transformers

    seen = []
    for cls in (transformers.AutoConfig, transformers.AutoTokenizer, transformers.AutoModel):
        original = cls.from_pretrained

        def spy(*args, _original=original, _cls=cls, **kwargs):
            seen.append((_cls.__name__, kwargs))
            return _original(*args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", spy)
    AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0)
    AnyNER.from_pretrained(model_folder)
    assert {name for name, _ in seen} >= {"AutoConfig", "AutoTokenizer", "AutoModel"}
    assert [kw for _, kw in seen if kw.get("trust_remote_code")] == []


def test_hub_downloads_hold_no_code_or_pickles(monkeypatch, tmp_path):
    """A Hub id fetches configs, tokenizer files and weights only: no *.py, no pickles but
    pytorch_model.bin (which is read with weights_only=True)."""
    import huggingface_hub

    got = {}

    def fake_download(**kwargs):
        got.update(kwargs)
        return str(tmp_path)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    checkpoint.resolve_folder("some-org/some-model")
    patterns = got["allow_patterns"]
    assert patterns, "an empty list would fetch everything"
    risky = (".py", ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".npy", ".npz", "*", ".*")
    assert [p for p in patterns if p.endswith(risky)] == []
    assert [p for p in patterns if p.endswith(".bin")] == [checkpoint.PICKLE_FREE_BIN_NAME]


class _Payload:
    """Unpickling this runs ``open(marker, "w")``, which creates the file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_payload_in_weights_is_refused_not_run(model_folder, tmp_path):
    marker = tmp_path / "payload-ran"
    folder = tmp_path / "evil"
    folder.mkdir()
    for f in model_folder.iterdir():
        if f.name != checkpoint.SAFETENSORS_NAME:
            (folder / f.name).write_bytes(f.read_bytes())
    buffer = io.BytesIO()
    torch.save({"span.weight": torch.zeros(1), "boom": _Payload(marker)}, buffer)
    (folder / checkpoint.PICKLE_FREE_BIN_NAME).write_bytes(buffer.getvalue())
    pickle.loads(pickle.dumps(_Payload(marker))).close()
    assert marker.exists(), "the payload works when unpickled"
    marker.unlink()
    with pytest.raises(checkpoint.CheckpointError, match="cannot read weights"):
        checkpoint.read_weights(folder / checkpoint.PICKLE_FREE_BIN_NAME)
    with pytest.raises(checkpoint.CheckpointError):
        AnyNER.from_pretrained(folder)
    assert not marker.exists(), "the pickle payload ran"


# ---------------------------------------------------------------------- the server
# (what a request may hold, and the routes, are tested in test_serve.py)


def test_the_server_reads_only_its_own_page_files():
    """serve.py opens no file but its packaged page, by constant names (``_web_file``)."""
    tree = ast.parse((SRC / "serve.py").read_text(encoding="utf-8"))
    (reader,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "_web_file"]
    file_calls = ("open", "Path", "FileResponse", "StaticFiles", "send_file")
    file_methods = (".open", ".read_text", ".read_bytes", ".write_text", ".write_bytes", ".unlink", ".mkdir")
    problems, reads = [], 0
    for node in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        name = ast.unparse(node.func)
        if name in file_calls or name.endswith(file_methods):
            if reader.lineno <= node.lineno <= reader.end_lineno and name.startswith("(resources.files("):
                reads += 1
            else:
                problems.append(f"serve.py:{node.lineno} {name}")
        if name == "_web_file" and not all(isinstance(a, ast.Constant) for a in node.args):
            problems.append(f"serve.py:{node.lineno} _web_file with a computed name")
    assert problems == []
    assert reads == 1, "the page is read from the package's web folder"
