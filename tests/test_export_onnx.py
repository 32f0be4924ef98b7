"""ONNX export and the ONNX Runtime backend.

fp32 ONNX must give the torch path's entities with scores within 1e-4, on real
sentences in batches of mixed lengths, for models with and without BiLSTM, in
both span modes and token-level. The int8 file must load and run. Offline and small models only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from anyner import AnyNER, cli
from anyner.export_onnx import (
    ONNX_INT8_NAME,
    ONNX_NAME,
    REPORT_NAME,
    OnnxRunner,
    export_onnx,
    max_logit_delta,
    one_batch,
)
from tests.conftest import build_reference, check_entities, ood_sample, spread_head

# Marked slow: every test that uses an exported model (each export fixture, and int8 quantization,
# takes seconds); the others run in the fast subset.
onnx = pytest.importorskip("onnx", reason="the onnx package is not installed")
pytest.importorskip("onnxruntime", reason="the onnxruntime package is not installed")

TOL = 1e-4
MIXED = [
    "Bill Gates founded Microsoft on April 4, 1975 in Albuquerque, New Mexico.",
    "Paris",
    "Angela Merkel met Emmanuel Macron in Berlin.",
    "The Rolling Stones played Madison Square Garden in New York with Mick Jagger on vocals in 1969 .",
]
LABELS = ["person", "organization", "location", "date"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch (and so ONNX Runtime) thread: on a busy 2-core machine two threads wait on
    each other's barriers and run these small batches ten times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small(tmp_path_factory, minilm_dir):
    """A small model without BiLSTM: exported the simple way, text_lengths unused."""
    torch.manual_seed(0)
    model = spread_head(AnyNER.from_encoder(minilm_dir, hidden_size=64, num_rnn_layers=0), seed=0)
    return model, export_onnx(model, tmp_path_factory.mktemp("small_onnx"))


@pytest.fixture(scope="module")
def small_rnn_cli(tmp_path_factory, minilm_dir):
    """A small model with a BiLSTM, exported through the CLI (fp32 and int8)."""
    torch.manual_seed(1)
    model = spread_head(AnyNER.from_encoder(minilm_dir, hidden_size=64, num_rnn_layers=1), seed=1)
    src = model.save_pretrained(tmp_path_factory.mktemp("rnn_src"))
    out = tmp_path_factory.mktemp("rnn_onnx")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["export", "onnx", "--model", str(src), "--out", str(out), "--quantize", "int8"])
    assert code == 0
    return AnyNER.from_pretrained(src), out, stdout.getvalue()


@pytest.fixture(scope="module")
def ref_v21_onnx(tmp_path_factory, ref_v21):
    """The reference package's markerV0 + BiLSTM model."""
    model = AnyNER.from_pretrained(ref_v21)
    return model, export_onnx(model, tmp_path_factory.mktemp("v21_onnx"))


@pytest.fixture(scope="module")
def ref_v0_onnx(tmp_path_factory, ref_v0):
    """The reference package's marker + BiLSTM model."""
    model = AnyNER.from_pretrained(ref_v0)
    return model, export_onnx(model, tmp_path_factory.mktemp("v0_onnx"))


@pytest.fixture(scope="module")
def ref_token_onnx(tmp_path_factory, ref_token):
    """The reference package's token-level + BiLSTM model."""
    model = AnyNER.from_pretrained(ref_token)
    return model, export_onnx(model, tmp_path_factory.mktemp("token_onnx"))


@pytest.fixture(scope="module")
def ref_bi_span_onnx(tmp_path_factory, ref_bi_span):
    """The reference package's bi-encoder span model (markerV0): text graph, label graph, int8."""
    model = AnyNER.from_pretrained(ref_bi_span)
    return model, export_onnx(model, tmp_path_factory.mktemp("bi_span_onnx"), quantize="int8")


@pytest.fixture(scope="module")
def ref_bi_token_onnx(tmp_path_factory, ref_bi_token):
    """The reference package's bi-encoder token-level model."""
    model = AnyNER.from_pretrained(ref_bi_token)
    return model, export_onnx(model, tmp_path_factory.mktemp("bi_token_onnx"))


def keyed(entities):
    return [(e.start, e.end, e.text, e.label) for e in entities]


class Once:
    """A runner that runs each batch once: flat and nested decoding read the same logits."""

    def __init__(self, runner):
        self.runner, self.seen = runner, {}

    def _key(self, batch):
        return tuple((k, v.shape, v.tobytes()) for k, v in sorted(batch.feed().items()))

    def __call__(self, batch):
        key = self._key(batch)
        if key not in self.seen:
            self.seen[key] = self.runner(batch)
        return self.seen[key]

    def logits(self, batch):
        return self.runner.logits(batch)


def once(model: AnyNER) -> AnyNER:
    return AnyNER(
        None, model.tokenizer, model.hf_config, config=model.config, runner=Once(model.runner),
        labels_tokenizer=model.labels_tokenizer, label_encoder=model.label_encoder,
    )  # fmt: skip


def compare(torch_model: AnyNER, onnx_model: AnyNER, sample) -> tuple[int, float]:
    """Assert identical entities (flat and nested); return (entities compared, max |delta score|)."""
    n, worst = 0, 0.0
    torch_model, onnx_model = once(torch_model), once(onnx_model)
    for flat in (True, False):
        for name, sentences, labels in sample:
            ours = torch_model.predict_batch(sentences, labels, batch_size=8, flat=flat)
            theirs = onnx_model.predict_batch(sentences, labels, batch_size=8, flat=flat)
            for sent, a, b in zip(sentences, ours, theirs, strict=True):
                assert keyed(b) == keyed(a), f"{name} ({'flat' if flat else 'nested'}): {sent!r}"
                worst = max([worst] + [abs(x.score - y.score) for x, y in zip(a, b, strict=True)])
                n += len(a)
    return n, worst


@pytest.mark.slow
@pytest.mark.parametrize(
    "which",
    [
        "small",
        "small_rnn_cli",
        "ref_v21_onnx",
        "ref_v0_onnx",
        "ref_token_onnx",
        "ref_bi_span_onnx",
        "ref_bi_token_onnx",
    ],
)
def test_fp32_onnx_gives_the_torch_entities(which, request, shared):
    torch_model, folder, *_ = request.getfixturevalue(which)
    onnx_model = AnyNER.from_pretrained(folder, backend="onnx")
    assert onnx_model.model is None and isinstance(onnx_model.runner, OnnxRunner)
    sample = ood_sample(shared, per_set=4)  # 7 sets x 4 = 28 sentences, batches of mixed lengths
    n, worst = compare(torch_model, onnx_model, sample)
    assert n > 50, "too few entities to say anything: the random head should fire"
    assert worst <= TOL
    print(f"{which}: {n} entities identical, max |delta score| = {worst:.2e}")


@pytest.mark.slow
def test_bi_encoder_exports_a_text_graph_and_a_label_graph(ref_bi_span_onnx, tmp_path, shared):
    import json
    import shutil

    from anyner.runtime import OnnxLabelEncoder

    torch_model, folder = ref_bi_span_onnx
    names = {p.name for p in folder.iterdir()}
    assert {
        ONNX_NAME,
        "labels_model.onnx",
        ONNX_INT8_NAME,
        "labels_model_int8.onnx",
        "labels_tokenizer",
    } <= names
    text_inputs = {x.name for x in onnx.load(str(folder / ONNX_NAME), load_external_data=False).graph.input}
    assert "label_vectors" in text_inputs and "label_index" not in text_inputs  # labels come as vectors
    label_graph = onnx.load(str(folder / "labels_model.onnx"), load_external_data=False).graph
    assert [x.name for x in label_graph.input] == ["input_ids", "attention_mask"]
    report = json.loads((folder / REPORT_NAME).read_text())["files"]
    assert report[ONNX_NAME]["graphs"] == [ONNX_NAME, "labels_model.onnx"]
    assert report[ONNX_NAME]["max_abs_logit_delta"] < 1e-3  # logits; the scores are within TOL
    fp32 = AnyNER.from_pretrained(folder, backend="onnx")
    assert isinstance(fp32.label_encoder, OnnxLabelEncoder) and fp32.model is None
    # the label graph gives the torch label vectors; saved torch vectors work on the ONNX model
    labels = ["person", "organization", "location", "date"]
    np.testing.assert_allclose(fp32.encode_labels(labels).vectors, torch_model.encode_labels(labels).vectors,
                               atol=1e-5, rtol=0)  # fmt: skip
    vectors = torch_model.encode_labels(labels).save(tmp_path / "labels.safetensors")
    from anyner import LabelEmbeddings

    given = LabelEmbeddings.load(vectors)
    assert keyed(fp32.predict(MIXED[0], given)) == keyed(torch_model.predict(MIXED[0], labels))
    # int8: both graphs quantized, loaded together, entities well formed
    int8 = AnyNER.from_pretrained(folder, backend="onnx", onnx_file=ONNX_INT8_NAME)
    assert int8.label_encoder.path.name == "labels_model_int8.onnx"
    ops = {n.op_type for n in onnx.load(str(folder / "labels_model_int8.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
    for _, sentences, labels in ood_sample(shared, per_set=2):
        for sent, ents in zip(sentences, int8.predict_batch(sentences, labels), strict=True):
            check_entities(sent, ents, names=labels)
    # a text graph without its label graph is named as such
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / "labels_model.onnx").unlink()
    with pytest.raises(FileNotFoundError, match=r"labels_model\.onnx.*anyner export onnx"):
        AnyNER.from_pretrained(partial, backend="onnx")


@pytest.mark.slow
def test_rnn_batch_of_mixed_lengths_is_exact(small_rnn_cli):
    """The BiLSTM runs over each row's own words: one ONNX LSTM with sequence_lens."""
    model, folder, _ = small_rnn_cli
    graph = onnx.load(str(folder / ONNX_NAME)).graph
    lstms = [n for n in graph.node if n.op_type == "LSTM"]
    assert len(lstms) == 1 and len(lstms[0].input) > 4 and lstms[0].input[4], "LSTM without sequence_lens"
    runner = OnnxRunner(folder / ONNX_NAME, threads=1)
    assert max_logit_delta(model, runner, MIXED, LABELS) < 1e-4
    for texts in (MIXED[:1], MIXED[1:2], [MIXED[2], MIXED[2]]):  # one row; equal lengths
        assert max_logit_delta(model, runner, texts, LABELS[:2]) < 1e-4
    # the packed torch path leaves zeros past each length; so does the ONNX LSTM
    batch, _ = one_batch(model, MIXED, LABELS)
    assert len(set(batch.text_lengths.tolist())) > 1
    with torch.inference_mode():
        ref = model.model(**batch.tensors()).numpy()
    np.testing.assert_allclose(runner.logits(batch), ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(runner(batch), 1 / (1 + np.exp(-ref)), atol=1e-5, rtol=0)  # probabilities


def fp32_weight_products(path: Path) -> list[str]:
    """The MatMul nodes of a graph whose second input is a weight matrix, read directly or
    through nodes that only pass, cut or reshape it: products int8 quantization left in fp32."""
    graph = onnx.load(str(path)).graph
    rank = {t.name: len(t.dims) for t in graph.initializer}
    made = {o: n for n in graph.node for o in n.output}

    def weight_of(name: str) -> str | None:
        while name not in rank:
            node = made.get(name)
            if node is None or node.op_type not in ("Identity", "Slice", "Split", "Transpose", "Reshape"):
                return None
            name = node.input[0]
        return name if rank[name] == 2 else None

    return [n.name for n in graph.node if n.op_type == "MatMul" and weight_of(n.input[1])]


@pytest.mark.slow
def test_int8_quantizes_every_weight_of_the_token_scorer(ref_token_onnx, tmp_path):
    """The token-level scorer multiplies by blocks of one weight (a ``Split`` in the export):
    they are quantized too, and ONNX Runtime loads the int8 graph."""
    import onnxruntime as ort

    from anyner.export_onnx import _quantize_int8

    _, folder = ref_token_onnx
    assert fp32_weight_products(folder / ONNX_NAME)  # the blocks are weight products in fp32
    _quantize_int8(folder / ONNX_NAME, tmp_path / ONNX_INT8_NAME)
    assert fp32_weight_products(tmp_path / ONNX_INT8_NAME) == []
    assert not list(tmp_path.glob(".quantize-*"))  # the pre-processed copy is gone
    ort.InferenceSession(str(tmp_path / ONNX_INT8_NAME), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_int8_loads_and_runs(small_rnn_cli, shared):
    _, folder, _ = small_rnn_cli
    fp32 = AnyNER.from_pretrained(folder, backend="onnx")
    int8 = AnyNER.from_pretrained(folder, backend="onnx", onnx_file=ONNX_INT8_NAME)
    assert int8.runner.path.name == ONNX_INT8_NAME
    ops = {n.op_type for n in onnx.load(str(folder / ONNX_INT8_NAME)).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}
    # every product by a weight matrix is quantized: also the projection (called for words and
    # for labels) and markerV0's first out_project layer (used as its start and end halves)
    assert fp32_weight_products(folder / ONNX_INT8_NAME) == []
    assert "DynamicQuantizeLSTM" in ops
    assert (folder / ONNX_INT8_NAME).stat().st_size < 0.5 * (folder / ONNX_NAME).stat().st_size
    both = found = 0
    for _, sentences, labels in ood_sample(shared, per_set=4):
        a = fp32.predict_batch(sentences, labels, batch_size=8)
        b = int8.predict_batch(sentences, labels, batch_size=8)
        for sent, x, y in zip(sentences, a, b, strict=True):
            check_entities(sent, y)
            assert {e.label for e in y} <= set(labels)
            both += len(set(keyed(x)) & set(keyed(y)))
            found += len(x) + len(y)
    print(f"int8 vs fp32 entity agreement (F1, random head): {200 * both / max(found, 1):.1f}")


@pytest.mark.slow
def test_export_report_and_metadata(small_rnn_cli):
    import json

    _, folder, _ = small_rnn_cli
    report = json.loads((folder / REPORT_NAME).read_text())
    assert report["opset"] == 17
    assert report["files"][ONNX_NAME]["max_abs_logit_delta"] < 1e-3
    assert set(report["files"]) == {ONNX_NAME, ONNX_INT8_NAME}
    meta = {
        p.key: p.value for p in onnx.load(str(folder / ONNX_NAME), load_external_data=False).metadata_props
    }
    assert meta["anyner.span_mode"] == "markerV0" and meta["anyner.max_width"] == "12"
    onnx.checker.check_model(str(folder / ONNX_INT8_NAME))


@pytest.mark.slow
def test_cli_export_writes_a_folder_both_backends_load(small_rnn_cli, small):
    torch_model, folder, stdout = small_rnn_cli
    for name in (ONNX_NAME, ONNX_INT8_NAME, REPORT_NAME, "gliner_config.json", "model.safetensors"):
        assert (folder / name).is_file(), name
    assert ONNX_NAME in stdout and ONNX_INT8_NAME in stdout and "delta logit" in stdout
    text = MIXED[0]
    again = AnyNER.from_pretrained(folder)  # the same folder loads with the torch backend
    assert keyed(again.predict(text, LABELS)) == keyed(torch_model.predict(text, LABELS))
    assert "text_lengths" in AnyNER.from_pretrained(folder, backend="onnx").runner.inputs
    no_rnn = AnyNER.from_pretrained(small[1], backend="onnx").runner
    assert "text_lengths" not in no_rnn.inputs  # no BiLSTM: the graph does not read it


def test_cli_export_errors(tmp_path, capsys):
    assert (
        cli.main(["export", "onnx", "--model", str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 1
    )
    assert "cannot load the model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["export", "onnx", "--model", "x", "--out", "y", "--quantize", "int4"])


@pytest.mark.slow
def test_onnx_backend_errors_are_clear(small_rnn_cli, tmp_path):
    torch_model, folder, _ = small_rnn_cli
    torch_only = torch_model.save_pretrained(tmp_path / "torch_only")
    with pytest.raises(FileNotFoundError, match=r"no model\.onnx.*anyner export onnx"):
        AnyNER.from_pretrained(torch_only, backend="onnx")
    with pytest.raises(FileNotFoundError, match=r"model_int8\.onnx.*onnx_file"):
        AnyNER.from_pretrained(folder, backend="onnx", onnx_file="missing.onnx")
    with pytest.raises(ValueError, match="backend"):
        AnyNER.from_pretrained(folder, backend="tensorrt")
    with pytest.raises(ValueError, match="onnx_file"):
        AnyNER.from_pretrained(folder, onnx_file=ONNX_NAME)
    with pytest.raises(ValueError, match="CPU"):
        AnyNER.from_pretrained(folder, backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="no torch weights"):
        AnyNER.from_pretrained(folder, backend="onnx").save_pretrained(tmp_path / "again")
    other = dataclasses.replace(torch_model.config, max_width=torch_model.config.max_width + 1)
    with pytest.raises(ValueError, match="do not belong together"):
        OnnxRunner(folder / ONNX_NAME, config=other)
    # an ONNX file from another tool (other inputs) is named as such
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("words_mask", TensorProto.INT64, [1, 2])
    y = helper.make_tensor_value_info("logits", TensorProto.INT64, [1, 2])
    foreign = helper.make_model(
        helper.make_graph([helper.make_node("Identity", ["words_mask"], ["logits"])], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)],
        ir_version=8,
    )
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(ValueError, match="neither an anyner export nor a span graph of the gliner package"):
        OnnxRunner(tmp_path / "foreign.onnx")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load"):
        OnnxRunner(tmp_path / "broken.onnx")


@pytest.mark.slow
def test_export_argument_errors(ref_v21_onnx, tmp_path):
    model, _ = ref_v21_onnx
    with pytest.raises(ValueError, match="quantize"):
        export_onnx(model, tmp_path, quantize="int4")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, tmp_path, opset=9)
    assert not any(tmp_path.iterdir())
    assert type(model.model.rnn).__name__ == "BiLSTM" and not model.model.training  # restored after export


@pytest.mark.slow
def test_missing_runtime_gives_an_install_hint(monkeypatch, small_rnn_cli):
    _, folder, _ = small_rnn_cli
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ImportError, match="pip install onnx onnxruntime"):
        AnyNER.from_pretrained(folder, backend="onnx")


@pytest.mark.slow
def test_deberta_encoder_exports_with_int8(deberta_dir, tmp_path, shared):
    """DeBERTa-v2/v3 (most GLiNER checkpoints): its scripted relative positions export as
    ``If`` nodes, which the int8 file must keep in a valid order (onnx.checker runs in export)."""
    folder = build_reference(
        tmp_path / "ref", deberta_dir, seed=2, hidden_size=128, span_mode="markerV0", num_rnn_layers=1
    )
    model = AnyNER.from_pretrained(folder)
    out = export_onnx(model, tmp_path / "onnx", quantize="int8")
    assert any(n.op_type == "If" for n in onnx.load(str(out / ONNX_INT8_NAME)).graph.node)
    n, worst = compare(model, AnyNER.from_pretrained(out, backend="onnx"), ood_sample(shared, per_set=2))
    assert n > 20 and worst <= TOL
    int8 = AnyNER.from_pretrained(out, backend="onnx", onnx_file=ONNX_INT8_NAME)
    check_entities(MIXED[0], int8.predict(MIXED[0], LABELS))


def test_import_anyner_stays_light():
    """No anyner module imports onnx or onnxruntime at import time: only inside functions."""
    import ast

    import anyner

    for path in Path(anyner.__file__).parent.rglob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] in ("onnx", "onnxruntime") for n in names), path
