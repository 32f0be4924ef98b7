"""What each ONNX export and runtime choice does to speed and accuracy, on the built-in model.

Each variant is an export of the built-in model (all-MiniLM-L6-v2 + its GLiNER head) run by
ONNX Runtime through anyner's pipeline on the same texts, labels and threads:

* ``encoder``: ``transformers`` (transformers' BertModel traced, the export of anyner 0.2.0) or
  ``anyner`` (anyner's own BERT module, ``anyner.model.bert``: one additive attention mask
  for every layer instead of a boolean mask turned into ``Where`` and a NaN guard per layer);
* ``int8``: fp32, or dynamic int8 quantization with per-channel or per-tensor weight scales;
* ``opt``: ONNX Runtime's graph optimisation level (basic, extended, all), and ``ort-bert``:
  ONNX Runtime's transformer optimizer (``onnxruntime.transformers.optimizer``, model type
  bert: fused attention, skip-layer-norm, bias-GELU) applied to the fp32 graph before
  quantization, where its patterns match.

Printed per variant: the ``Where`` / ``IsNaN`` node count of the graph, words/s of 40-word
texts x 5 labels and of 200-word texts x 25 labels (batch 8; best of ``--reps`` passes,
variants interleaved so that a busy CPU hurts them alike), the max |delta logit| against the
torch model, and whether the entities equal those of the torch model on the check texts.

    python benchmarks/onnx_variants.py               # every variant
    python benchmarks/onnx_variants.py --reps 8 --threads 2
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

from _report import cpu_name  # noqa: E402
from inference import corpus  # noqa: E402

CASES = [(40, 5), (200, 25)]


def export(encoder: str, out: Path) -> Path:
    """The built-in model exported (fp32) with the given encoder module, cached in ``out``."""
    from anyner import AnyNER
    from anyner.export_onnx import export_onnx

    if not (out / "model.onnx").is_file():
        model = AnyNER.from_pretrained(encoder_module="transformers" if encoder == "transformers" else "auto")
        export_onnx(model, out)
    return out


def quantize(src: Path, dst: Path, per_channel: bool) -> None:
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src), load_external_data=False).graph
    rank = {t.name: len(t.dims) for t in graph.initializer}
    vectors = [n.name for n in graph.node if n.op_type == "MatMul" and rank.get(n.input[1]) == 1]
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(
        str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel, nodes_to_exclude=vectors,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused nodes have no inferred type
    )  # fmt: skip


def ort_bert(src: Path, dst: Path, heads: int, hidden: int) -> bool:
    """ONNX Runtime's transformer optimizer on ``src``; False when none of its fusions matched."""
    from onnxruntime.transformers import optimizer

    opt = optimizer.optimize_model(
        str(src), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=0
    )
    fused = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    opt.save_model_to_file(str(dst))
    print(f"  ort-bert fusions: {fused or 'none'}", flush=True)
    return bool(fused)


def op_counts(path: Path) -> str:
    import onnx

    c = collections.Counter(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node)
    return f"Where {c['Where']:>2}, IsNaN {c['IsNaN']}, nodes {sum(c.values())}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "anyner-onnx-variants")
    args = p.parse_args()
    import onnxruntime as ort

    from anyner import AnyNER
    from anyner.export_onnx import _CHECK_TEXTS, _LABELS, max_logit_delta
    from anyner.runtime import OnnxRunner

    torch_model = AnyNER.from_pretrained(encoder_module="transformers")
    bert = torch_model.hf_config
    files: dict[str, Path] = {}
    for encoder in ("transformers", "anyner"):
        folder = export(encoder, args.work / encoder)
        fp32 = folder / "model.onnx"
        files[f"{encoder} fp32"] = fp32
        for pc in (True, False):
            q = folder / f"model_int8_{'channel' if pc else 'tensor'}.onnx"
            if not q.is_file():
                quantize(fp32, q, per_channel=pc)
            files[f"{encoder} int8 per-{'channel' if pc else 'tensor'}"] = q
        fused = folder / "model_ortbert.onnx"
        if not fused.is_file() and ort_bert(fp32, fused, bert.num_attention_heads, bert.hidden_size):
            fq = folder / "model_ortbert_int8.onnx"
            quantize(fused, fq, per_channel=True)
        if fused.is_file():
            files[f"{encoder} ort-bert fp32"] = fused
        if (folder / "model_ortbert_int8.onnx").is_file():
            files[f"{encoder} ort-bert int8 per-channel"] = folder / "model_ortbert_int8.onnx"
    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    variants = {}
    for name, path in files.items():
        for level in levels if name.endswith("int8 per-channel") and "ort-bert" not in name else ("all",):
            runner = OnnxRunner(path, args.threads, config=torch_model.config)
            if level != "all":  # a fresh session at that level
                options = runner.session.get_session_options()
                options.graph_optimization_level = levels[level]
                runner.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            model = type(torch_model)(
                None, torch_model.tokenizer, torch_model.hf_config, config=torch_model.config, runner=runner
            )
            variants[f"{name}, opt {level}"] = (path, model, runner)
    texts = {case: corpus(case[0], 8) for case in CASES}
    best = {(v, c): float("inf") for v in variants for c in CASES}
    for _v, (_, model, _) in variants.items():  # warm-up
        for c in CASES:
            model.predict_batch(texts[c][0], texts[c][1][: c[1]], batch_size=8)
    for _ in range(args.reps):
        for v, (_, model, _) in variants.items():
            for c in CASES:
                t = time.perf_counter()
                model.predict_batch(texts[c][0], texts[c][1][: c[1]], batch_size=8)
                best[(v, c)] = min(best[(v, c)], time.perf_counter() - t)
    labels = list(_LABELS)
    want = torch_model.predict_batch(list(_CHECK_TEXTS), labels)
    print(f"# {time.strftime('%Y-%m-%d')} | {cpu_name()} | {os.cpu_count()} CPUs | threads {args.threads}")
    print(f"# onnxruntime {ort.__version__}; words/s, batch 8, best of {args.reps}")
    head = (
        f"{'variant':<44}{'graph':>32}{'40w x 5l':>10}{'200w x 25l':>12}{'max|dlogit|':>13}{'same ents':>11}"
    )
    print(head)
    rows = []
    for v, (path, model, runner) in variants.items():
        delta = max_logit_delta(torch_model, runner)
        got = model.predict_batch(list(_CHECK_TEXTS), labels)
        same = sum(
            [(e.start, e.end, e.label) for e in a] == [(e.start, e.end, e.label) for e in b]
            for a, b in zip(got, want, strict=True)
        )
        speeds = [c[0] * 8 / best[(v, c)] for c in CASES]
        print(
            f"{v:<44}{op_counts(path):>32}{speeds[0]:>10.0f}{speeds[1]:>12.0f}{delta:>13.3g}"
            f"{f'{same}/{len(want)}':>11}",
            flush=True,
        )
        rows.append({"variant": v, "words_per_s": speeds, "max_abs_logit_delta": delta, "same": same})
    (args.work / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
