"""The light install: the built-in model through ONNX Runtime and the tokenizers library alone.

The tests marked ``light`` need neither torch nor transformers; ``.ci/run`` runs them in a
venv holding only ``pip install .`` (and pytest), where ``ANYNER_LIGHT=1`` makes the first
test assert that torch and transformers cannot be imported. The others compare the light
path with the torch path in the full environment.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from anyner import AnyNER

SENTENCES = [
    "Bill Gates founded Microsoft on April 4, 1975.",
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    "Lionel Messi joined Inter Miami in 2023.",
    "The patient was given 500 mg of amoxicillin for pneumonia.",
]
LABELS = ["person", "organization", "city", "date", "drug", "sports team"]
LIGHT = os.environ.get("ANYNER_LIGHT") == "1"


@pytest.fixture(scope="module")
def light() -> AnyNER:
    return AnyNER.from_pretrained(backend="onnx")


@pytest.mark.light
def test_the_light_install_has_no_torch():
    if not LIGHT:
        pytest.skip("ANYNER_LIGHT=1 is set only in the light venv of .ci/run")
    for name in ("torch", "transformers"):
        assert importlib.util.find_spec(name) is None, f"{name} is importable in the light install"
    assert AnyNER.from_pretrained().runner.__class__.__name__ == "OnnxRunner"  # auto: ONNX without torch


@pytest.mark.light
def test_the_python_api_runs_light(light):
    found = light.predict(SENTENCES[0], ["person", "organization", "date"])
    assert {(e.text, e.label) for e in found} == {
        ("Bill Gates", "person"), ("Microsoft", "organization"), ("April 4, 1975", "date"),
    }  # fmt: skip
    batch = light.predict_batch(SENTENCES, LABELS, batch_size=2)
    assert len(batch) == len(SENTENCES) and all(
        SENTENCES[i][e.start : e.end] == e.text for i, b in enumerate(batch) for e in b
    )
    words = light.predict_words([s.split() for s in SENTENCES[:2]], LABELS)
    assert len(words) == 2
    dicts = light.predict_entities(SENTENCES[1], LABELS)
    assert dicts and set(dicts[0]) == {"start", "end", "text", "label", "score"}


@pytest.mark.light
def test_the_light_path_checks_arguments_as_the_torch_path_does(light):
    with pytest.raises(ValueError, match=r"threshold must be a number in \[0, 1\], got 2"):
        light.predict(SENTENCES[0], LABELS, threshold=2)
    with pytest.raises(TypeError, match="not the string"):
        light.predict(SENTENCES[0], "person")
    with pytest.raises(ValueError, match="labels is empty"):
        light.predict(SENTENCES[0], [])
    with pytest.raises(ValueError, match="has no torch weights to save"):
        light.save_pretrained(Path("unused"))


@pytest.mark.light
def test_the_builtin_relations_need_torch_and_say_so(light):
    """The built-in relation model runs on torch only: on the ONNX path it is a clear
    NotImplementedError naming the extra, and the server does not offer relations."""
    from anyner.serve import extracts_relations

    assert light.relation_folder is not None and not light.extracts_relations
    assert not extracts_relations(light)
    from anyner.cli import _check_relation_model  # what `anyner predict --relations` runs on it

    with pytest.raises(ValueError, match=r"runs on the torch backend only \(pip install 'anyner\[torch\]'\)"):
        _check_relation_model(light, "the built-in model", ["person"], ["founded"])
    with pytest.raises(
        NotImplementedError, match=r"torch backend only: install torch \(pip install 'anyner\[torch\]'\)"
    ):
        light.predict_relations(SENTENCES[0], ["person", "organization"], ["founded"])


@pytest.mark.light
def test_the_cli_runs_light(tmp_path):
    run = [sys.executable, "-m", "anyner.cli"]
    done = subprocess.run(
        [*run, "predict", SENTENCES[0], "--labels", "person,organization,date", "--format", "jsonl"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert {e["text"] for e in json.loads(done.stdout)["entities"]} == {
        "Bill Gates",
        "Microsoft",
        "April 4, 1975",
    }
    bad = subprocess.run([*run, "predict", "x", "--labels", "a", "-t", "2"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--threshold must be a number in [0, 1]" in bad.stderr
    if LIGHT:  # what needs torch says which extra installs it
        train = subprocess.run([*run, "train", str(tmp_path / "x.toml")], capture_output=True, text=True)
        assert train.returncode == 1 and "pip install 'anyner[torch]'" in train.stderr


@pytest.mark.light
def test_the_server_runs_light(light):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from anyner.serve import create_app

    with TestClient(create_app(light)) as client:
        answer = client.post("/v1/entities", json={"text": SENTENCES[0], "labels": ["person"]})
        assert answer.status_code == 200 and answer.json()["entities"][0]["text"] == "Bill Gates"


@pytest.mark.light
def test_threads_reach_onnx_runtime():
    one = AnyNER.from_pretrained(backend="onnx", threads=1)
    assert one.runner.session.get_session_options().intra_op_num_threads == 1
    assert one.predict(SENTENCES[0], ["person"])
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="threads must be a positive integer"):
            AnyNER.from_pretrained(backend="onnx", threads=bad)


@pytest.mark.light
def test_spinning_threads_are_opt_in(monkeypatch):
    spinning = lambda m: m.runner.session.get_session_options().get_session_config_entry(  # noqa: E731
        "session.intra_op.allow_spinning"
    )
    monkeypatch.delenv("ANYNER_ONNX_SPIN", raising=False)
    assert spinning(AnyNER.from_pretrained(backend="onnx", threads=1)) == "0"
    monkeypatch.setenv("ANYNER_ONNX_SPIN", "1")
    spin = AnyNER.from_pretrained(backend="onnx", threads=1)
    assert spinning(spin) == "1" and spin.predict(SENTENCES[0], ["person"])
    monkeypatch.setenv("ANYNER_ONNX_SPIN", "yes")
    with pytest.raises(ValueError, match=r"ANYNER_ONNX_SPIN='yes': give 1 \(spinning threads\) or 0"):
        AnyNER.from_pretrained(backend="onnx", threads=1)


@pytest.mark.light
def test_a_profiled_session_writes_its_profile(tmp_path):
    """The benchmarks' profiled session is anyner's own: same options, plus ONNX Runtime's profile."""
    from anyner.runtime import _session

    model = AnyNER.from_pretrained(backend="onnx", threads=1)
    plain = model.runner.session
    profiled = _session(model.runner.path, 1, profile_prefix=str(tmp_path / "case"))
    assert not plain.get_session_options().enable_profiling
    assert profiled.get_session_options().enable_profiling
    model.runner.session = profiled
    assert model.predict(SENTENCES[0], ["person"])
    written = Path(profiled.end_profiling())
    assert written.name.startswith("case") and written.resolve().parent == tmp_path.resolve()
    assert any(e.get("cat") == "Node" for e in json.loads(written.read_text()))


@pytest.mark.light
def test_the_spacy_component_runs_light():
    spacy = pytest.importorskip("spacy", reason="the spacy extra is not installed")
    nlp = spacy.blank("en")
    nlp.add_pipe("anyner", config={"labels": ["person", "organization", "date"]})  # the entry point
    doc = nlp(SENTENCES[0])
    assert {(e.text, e.label_) for e in doc.ents} == {
        ("Bill Gates", "person"), ("Microsoft", "organization"), ("April 4, 1975", "date"),
    }  # fmt: skip
    if LIGHT:
        assert "torch" not in sys.modules and "transformers" not in sys.modules


def test_the_light_path_gives_the_entities_of_the_torch_onnx_path(light):
    """The same ONNX file read with transformers' tokenizer and with tokenizers alone: same entities."""
    pytest.importorskip("transformers")
    from anyner import checkpoint
    from anyner.builtin import builtin_model_path
    from anyner.runtime import OnnxRunner, find_onnx_file

    folder = builtin_model_path()
    config = checkpoint.read_config(folder)
    tokenizer = checkpoint.load_tokenizer(folder, config)
    config = checkpoint.add_prompt_tokens(tokenizer, config)
    hf = AnyNER(
        None, tokenizer, checkpoint.encoder_hf_config(config), config=config,
        runner=OnnxRunner(find_onnx_file(folder), config=config),
    )  # fmt: skip
    assert hf.max_tokens == light.max_tokens
    texts = SENTENCES * 3 + [" ".join(SENTENCES * 20)]  # a long text too: windows
    assert hf.predict_batch(texts, LABELS) == light.predict_batch(texts, LABELS)


def test_fast_tokenizer_ids_equal_transformers(minilm_dir, shared):
    """tokenizers alone gives the ids and word ids AutoTokenizer gives, on real sentences."""
    transformers = pytest.importorskip("transformers")
    from anyner.builtin import builtin_model_path
    from anyner.tokenizer import FastTokenizer

    sentences = []
    for name in ("CrossNER_AI", "mit-movie", "CrossNER_music"):
        records = json.loads((shared / "data" / "benchmark" / "ood" / name / "test.json").read_text())
        sentences += [r["sentence"].split() for r in records[:150]]
    sentences.append(["<<ENT>>", "person", "<<SEP>>", "Héllo", "東京", "😀", "\ufffd", "e-mail"])
    for folder in (builtin_model_path(), minilm_dir):
        hf, fast = transformers.AutoTokenizer.from_pretrained(str(folder)), FastTokenizer.from_folder(folder)
        assert (len(hf), hf.pad_token_id, hf.model_max_length) == (
            len(fast),
            fast.pad_token_id,
            fast.model_max_length,
        )
        for words in sentences:
            for special in (True, False):
                a = hf(words, is_split_into_words=True, add_special_tokens=special)
                b = fast(words, add_special_tokens=special)
                assert (list(a["input_ids"]), a.word_ids()) == (b["input_ids"], b.word_ids()), words
        for tok in (hf, fast):  # adding the prompt tokens gives the same ids
            tok.add_tokens(["[FLERT]", "<<X>>", "<<Y>>"], special_tokens=True)
        assert hf.convert_tokens_to_ids("<<Y>>") == fast.convert_tokens_to_ids("<<Y>>")


def test_fast_tokenizer_encodes_label_texts_as_transformers(minilm_dir):
    """A bi-encoder's label texts: the same padded ids and mask, long texts cut the same way."""
    transformers = pytest.importorskip("transformers")
    from anyner.tokenizer import FastTokenizer

    texts = ["person", "organization of people", "date", "Héllo 東京 😀", "", "drug " * 700]
    hf, fast = (
        transformers.AutoTokenizer.from_pretrained(str(minilm_dir)),
        FastTokenizer.from_folder(minilm_dir),
    )
    ref = hf(texts, truncation=True, padding="longest", return_tensors="np")
    ids, mask = fast.encode_texts(texts)
    assert ids.shape == (len(texts), hf.model_max_length)
    assert ids.tolist() == ref["input_ids"].tolist() and mask.tolist() == ref["attention_mask"].tolist()
    short_ids, short_mask = fast.encode_texts(texts[:3])
    assert short_ids.tolist() == hf(texts[:3], padding="longest", return_tensors="np")["input_ids"].tolist()
    assert short_mask.sum() < short_mask.size  # padded to the longest, not further
