"""The ONNX layout of public GLiNER repositories: span graphs exported by the gliner package.

Such a repository holds ``gliner_config.json`` and the tokenizer at the top and the graphs in
``onnx/`` (``model.onnx``, ``model_quantized.onnx``), whose inputs are the gliner package's
(``words_mask``, ``span_idx``, ...). The tests export a reference-built model with the gliner
package's own ``export_to_onnx``, lay it out that way, and load it with ``backend="onnx"``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from anyner import AnyNER
from tests.conftest import ood_sample
from tests.test_parity import compare

gliner = pytest.importorskip("gliner", reason="the reference gliner package is not installed")

pytestmark = pytest.mark.slow

TEXTS = [
    "Bill Gates founded Microsoft on April 4, 1975.",
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday, and they talked about trade.",
]
LABELS = ["person", "organization", "city", "date"]


@pytest.fixture(scope="module")
def public(ref_v21, tmp_path_factory) -> Path:
    """A v2.1-style reference model exported by the gliner package, in the public layout."""
    root = tmp_path_factory.mktemp("public")
    model = gliner.GLiNER.from_pretrained(str(ref_v21), local_files_only=True)
    model.export_to_onnx(root / "onnx", quantize=True)
    for p in list((root / "onnx").iterdir()):  # config and tokenizer at the top, graphs in onnx/
        if p.suffix != ".onnx":
            shutil.move(str(p), root / p.name)
    assert {p.name for p in (root / "onnx").iterdir()} == {"model.onnx", "model_quantized.onnx"}
    return root


def _keys(entities):
    return [(e["start"], e["end"], e["text"], e["label"]) for e in entities]


def test_public_layout_gives_the_reference_entities(public, ref_v21, shared):
    sample = ood_sample(shared, per_set=30)  # 7 sets x 30 = 210 sentences
    ref = gliner.GLiNER.from_pretrained(str(ref_v21), local_files_only=True)
    ours = AnyNER.from_pretrained(public, backend="onnx")
    assert ours.runner.gliner_format and ours.runner.path == public / "onnx" / "model.onnx"
    for flat in (True, False):
        # identical entities, scores within 1e-4, near-tied labels of the random head counted
        n, worst, ties = compare(ref, ours, sample, flat)
        assert n > 300, "too few entities to say anything: the random head should fire"
        print(
            f"public ONNX layout, flat={flat}: {n} entities, {ties} near-tied labels, max |delta| {worst:.2e}"
        )


def test_the_quantized_graph_is_found_by_either_name(public):
    for name in ("model_quantized.onnx", "onnx/model_quantized.onnx"):
        m = AnyNER.from_pretrained(public, backend="onnx", onnx_file=name)
        assert m.runner.path == public / "onnx" / "model_quantized.onnx"
        for text, found in zip(TEXTS, m.predict_batch(TEXTS, LABELS, threshold=0.0), strict=True):
            assert found and all(text[e.start : e.end] == e.text for e in found)
    with pytest.raises(FileNotFoundError, match=r"onnx/model_quantized\.onnx"):
        AnyNER.from_pretrained(public, backend="onnx", onnx_file="model_fp16.onnx")


def test_only_the_quantized_graph(public, tmp_path):
    folder = shutil.copytree(public, tmp_path / "q")
    (folder / "onnx" / "model.onnx").unlink()
    m = AnyNER.from_pretrained(folder, backend="onnx")
    assert m.runner.path.name == "model_quantized.onnx"


def test_a_gliner_graph_without_a_span_config_is_refused(public, tmp_path):
    from anyner.runtime import OnnxRunner

    with pytest.raises(ValueError, match="gliner package's format"):
        OnnxRunner(public / "onnx" / "model.onnx")


BLOCK_TORCH = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                raise ImportError(f"{name} is blocked: this run checks the path without torch")
            return None

    sys.meta_path.insert(0, Block())
    """
)


def test_loads_and_predicts_without_torch(public):
    code = BLOCK_TORCH + textwrap.dedent(
        f"""
        import json
        from anyner import AnyNER
        m = AnyNER.from_pretrained({str(public)!r}, backend="onnx")
        out = [[e.to_dict() for e in found] for found in m.predict_batch({TEXTS!r}, {LABELS!r})]
        assert "torch" not in sys.modules and "transformers" not in sys.modules
        print(json.dumps(out))
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    import json

    got = json.loads(run.stdout.strip().splitlines()[-1])
    want = AnyNER.from_pretrained(public, backend="onnx").predict_batch(TEXTS, LABELS)
    assert [_keys(x) for x in got] == [_keys([e.to_dict() for e in y]) for y in want]
    assert any(got)


def test_a_token_level_graph_of_the_gliner_format_is_refused(tmp_path):
    """The gliner package's token-level graphs (no span inputs) are not run: a clear error."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from anyner.runtime import OnnxRunner

    names = ("input_ids", "attention_mask", "words_mask", "text_lengths")
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ["B", "T"]) for n in names]
    out = helper.make_tensor_value_info("logits", TensorProto.INT64, ["B", "T"])
    graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["logits"])], "g", inputs, [out])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ValueError, match="neither an anyner export nor a span graph of the gliner package"):
        OnnxRunner(path)
