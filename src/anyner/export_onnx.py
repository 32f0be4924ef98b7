"""ONNX export of the span network; :class:`anyner.runtime.OnnxRunner` loads it back.

The exported graph is the network itself: the fields of :class:`anyner.batching.Batch`
in (the graph's input names are the field names), logits (B, W, K, C) out. Everything
before (words, prompt, windows: :mod:`anyner.featurize`) and after (sigmoid, decoding)
stays in :class:`AnyNER`, so an exported folder loads with ``backend="torch"`` or
``backend="onnx"`` and gives the same entities. This module sits above the pipeline;
the runtime it exports for sits below it.

The BiLSTM packs padded rows in torch. Here it is traced on its packed path
always, which the exporter turns into one ONNX ``LSTM`` with ``sequence_lens``
(from ``text_lengths``): each row runs over its own words only, both directions,
and the outputs past its length are zeros, as ``pad_packed_sequence`` gives. One
run per batch, no regrouping of rows.

``onnx`` and ``onnxruntime`` are imported only here and only when needed.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from anyner.batching import INPUT_NAMES, Batch
from anyner.featurize import Job
from anyner.runtime import (
    LABEL_INPUT_NAMES,
    LABEL_VECTORS,
    LABELS_PREFIX,
    METADATA_FIELDS,
    ONNX_INT8_NAME,
    ONNX_NAME,
    OUTPUT_NAME,
    OnnxLabelEncoder,
    OnnxRunner,
    TorchRunner,
    find_onnx_file,
    require_module,
)
from anyner.tokenizer import encode_label_texts
from anyner.words import split_words

if TYPE_CHECKING:
    from anyner.config import AnyNERConfig
    from anyner.pipeline import AnyNER

REPORT_NAME = "onnx_export.json"
QUANTIZE_MODES = ("int8",)
# Max |delta logit| the export check accepts. Float rounding stays far below it (1e-6 to a few
# 1e-4 with deep encoders); a graph that traced wrong (a baked shape, an unpacked LSTM) is far above.
FP32_TOLERANCE = 1e-2

_DYNAMIC_AXES = {
    "input_ids": {0: "batch", 1: "subwords"},
    "attention_mask": {0: "batch", 1: "subwords"},
    "word_index": {0: "batch", 1: "words"},
    "word_present": {0: "batch", 1: "words"},
    "text_lengths": {0: "batch"},
    "label_index": {0: "batch", 1: "labels"},
    OUTPUT_NAME: {0: "batch", 1: "words", 3: "labels"},
}
# a bi-encoder's text graph also reads the label vectors; its label graph reads label subwords
_BI_DYNAMIC_AXES = _DYNAMIC_AXES | {LABEL_VECTORS: {0: "batch", 1: "labels"}}
_LABEL_DYNAMIC_AXES = {
    "input_ids": {0: "labels", 1: "subwords"},
    "attention_mask": {0: "labels", 1: "subwords"},
    LABEL_VECTORS: {0: "labels"},
}

# The batch traced by the exporter (mixed lengths, so that padding and packing are in the graph)
# and the texts of the parity check run after it.
_TRACE_TEXTS = ("Marie Curie was born in Warsaw in 1867 .", "Apple hired Tim Cook .")
_CHECK_TEXTS = (
    "Bill Gates founded Microsoft on April 4, 1975 in Albuquerque, New Mexico.",
    "Paris",
    "The Rolling Stones played Madison Square Garden with Mick Jagger on vocals .",
    "Dr. Jane Goodall studied chimpanzees in Gombe Stream National Park , Tanzania , for the "
    "Jane Goodall Institute and the University of Cambridge .",
    "Angela Merkel met Emmanuel Macron in Berlin.",
)
_LABELS = ("person", "organization", "location", "date")


# ---------------------------------------------------------------------------- export


class _PackedBiLSTM(nn.Module):
    """The BiLSTM on its packed path for every batch, so that the trace holds it.

    Traced, pack -> LSTM -> unpack becomes one ONNX LSTM with ``sequence_lens``.
    """

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.lstm = lstm

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        W = x.shape[1]
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=W)
        return out  # (B, W, D), zeros past each length


@contextlib.contextmanager
def _export_mode(net: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and an always-packed BiLSTM while tracing; the model is restored after."""
    training, rnn = net.training, net.rnn
    net.eval()
    if rnn is not None:
        net.rnn = _PackedBiLSTM(rnn.lstm)
    try:
        yield net
    finally:
        net.rnn = rnn
        net.train(training)


class _LabelGraph(nn.Module):
    """A bi-encoder's label encoder as a module of its own: label subwords -> label vectors."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net.encode_labels(input_ids, attention_mask)


def one_batch(
    model: AnyNER, texts: Sequence[str], labels: Sequence[str], label_encoder: Any = None
) -> tuple[Batch, list[Job]]:
    """The batch and jobs for ``texts`` in the order given (short texts: one row per text).

    A bi-encoder's batch carries the label vectors, from ``label_encoder`` (default the model's).
    """
    featurizer = model.featurizer
    label_set = featurizer.label_set(list(labels))
    jobs = [job for i, t in enumerate(texts) for job in featurizer.jobs(i, split_words(t), label_set)]
    if model.label_cache is None:
        return featurizer.collate(jobs), jobs
    encoder = label_encoder if label_encoder is not None else model.label_encoder
    vectors = encoder(*encode_label_texts(model.labels_tokenizer, list(label_set.prompts)))
    return featurizer.collate(jobs, [vectors] * len(jobs)), jobs


def max_logit_delta(
    model: AnyNER,
    runner: OnnxRunner,
    texts: Sequence[str] = _CHECK_TEXTS,
    labels: Sequence[str] = _LABELS,
    label_encoder: OnnxLabelEncoder | None = None,
) -> float:
    """Max |torch logit - runner logit| over the spans and labels the decoder reads, in one batch.

    For a bi-encoder the runner's batch takes its label vectors from ``label_encoder`` (the
    exported label graph): the figure covers both graphs.
    """
    if model.model is None:
        raise ValueError("the parity check needs the torch model")
    batch, jobs = one_batch(model, texts, labels)
    ref = TorchRunner(model.model, model.device).logits(batch)
    if label_encoder is not None:
        batch, _ = one_batch(model, texts, labels, label_encoder)
    got = runner.logits(batch)
    if got.shape != ref.shape:
        raise RuntimeError(f"the ONNX graph gives logits of shape {got.shape}, torch {ref.shape}")
    worst = 0.0
    for row, job in enumerate(jobs):
        a, b = ref[row, : job.n_words, :, : job.n_labels], got[row, : job.n_words, :, : job.n_labels]
        if not np.isfinite(b).all():
            return float("inf")
        worst = max(worst, float(np.abs(a - b).max()))
    return worst


def _finish(path: Path, config: AnyNERConfig, extra: dict[str, str], *, resort: bool = False) -> None:
    """Store the settings the runner checks in the file's metadata; optionally re-sort its nodes."""
    onnx = require_module("onnx")
    proto = onnx.load(str(path), load_external_data=False)  # external tensors keep their references
    if resort:
        _sort_nodes(proto.graph)
    values = {f"anyner.{name}": str(getattr(config, name)) for name in METADATA_FIELDS} | extra
    kept = [p for p in proto.metadata_props if p.key not in values]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    for key, value in values.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def _sort_nodes(graph: Any) -> None:
    """Order nodes so that each comes after the producers of all it reads, subgraphs included.

    The quantizer's sort ignores the outer values an ``If`` branch reads (DeBERTa's
    scripted relative-position code exports as ``If``): ONNX Runtime copes, onnx.checker
    does not. Kahn's algorithm, stable for nodes already in order.
    """

    def reads(node: Any) -> set[str]:
        names = set(node.input)
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                inner = {o for n in sub.node for o in n.output}
                inner |= {x.name for x in sub.input} | {t.name for t in sub.initializer}
                for n in sub.node:
                    names |= reads(n) - inner
        return names - {""}

    nodes = list(graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output if o}
    waits_for = [{producer[x] for x in reads(n) if x in producer} - {i} for i, n in enumerate(nodes)]
    users: list[list[int]] = [[] for _ in nodes]
    for i, deps in enumerate(waits_for):
        for d in deps:
            users[d].append(i)
    left = [len(d) for d in waits_for]
    ready = [i for i, n in enumerate(left) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            left[u] -= 1
            if left[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(nodes):
        return  # a cycle: leave the graph as the quantizer wrote it
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)


def export_onnx(
    model: AnyNER,
    out_dir: str | Path,
    *,
    quantize: str | None = None,
    opset: int = 17,
) -> Path:
    """Write a model folder that loads with ``backend="onnx"`` (and with ``backend="torch"``).

    The folder gets what :meth:`AnyNER.save_pretrained` writes (``gliner_config.json``,
    ``model.safetensors``, tokenizer files), ``model.onnx`` (fp32, dynamic batch, subword,
    word and label axes), with ``quantize="int8"`` also ``model_int8.onnx`` (ONNX Runtime
    dynamic quantization: int8 weights, activations quantized per batch), and
    ``onnx_export.json`` with the file sizes and the max |delta logit| of each file against
    the torch model on a few sentences. Each file is validated with ``onnx.checker``.

    A bi-encoder gets two graphs: the text graph ``model.onnx`` (the batch and its label
    vectors in, logits out) and the label graph ``labels_model.onnx`` (label subwords in,
    one vector per label out; ``labels_model_int8.onnx`` with int8), and its label
    tokenizer in ``labels_tokenizer/``. The figures of the report cover both graphs.

    Args:
        model: a model with torch weights (any :meth:`AnyNER.from_pretrained` with the torch backend).
        out_dir: the folder to write; created when missing, files of the same names replaced.
        quantize: None, or ``"int8"`` to also write the quantized file.
        opset: ONNX opset of the graph (17 or newer keeps LayerNormalization one node).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ImportError: ``onnx`` or ``onnxruntime`` is not installed.
        RuntimeError: the fp32 graph disagrees with the torch model (max |delta logit| > 1e-2).

    Example::

        model = AnyNER.from_pretrained("my-model")
        export_onnx(model, "my-model-onnx", quantize="int8")
        fast = AnyNER.from_pretrained("my-model-onnx", backend="onnx", onnx_file="model_int8.onnx")
    """
    onnx = require_module("onnx")
    require_module("onnxruntime")
    if quantize not in (None, *QUANTIZE_MODES):
        raise ValueError(f"quantize must be None or one of {QUANTIZE_MODES}, got {quantize!r}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 14:
        raise ValueError(f"opset must be an integer >= 14, got {opset!r}")
    if model.model is None:
        raise ValueError("export needs a model with torch weights: load it with backend='torch'")
    out = model.save_pretrained(out_dir)
    net = model.model
    bi = model.label_cache is not None
    path = out / ONNX_NAME
    batch, _ = one_batch(model, _TRACE_TEXTS, _LABELS[:3])
    tensors = batch.tensors(model.device)
    names = list(INPUT_NAMES) + ([LABEL_VECTORS] if bi else [])
    args = tuple(tensors[name] for name in names)  # the network's forward takes the Batch fields in order
    meta = {"anyner.opset": str(opset), "anyner.exporter": f"torch {torch.__version__} torchscript"}
    with _export_mode(net), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notices about the TorchScript exporter
        torch.onnx.export(
            net,
            args,
            str(path),
            input_names=names,
            output_names=[OUTPUT_NAME],
            dynamic_axes=_BI_DYNAMIC_AXES if bi else _DYNAMIC_AXES,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter: traces HF encoders and packed LSTMs robustly
        )
        if bi:
            ids, mask = encode_label_texts(
                model.labels_tokenizer, ["person", "organization of people", "date"]
            )
            label_args = (torch.from_numpy(ids).to(model.device), torch.from_numpy(mask).to(model.device))
            torch.onnx.export(
                _LabelGraph(net),
                label_args,
                str(out / (LABELS_PREFIX + ONNX_NAME)),
                input_names=list(LABEL_INPUT_NAMES),
                output_names=[LABEL_VECTORS],
                dynamic_axes=_LABEL_DYNAMIC_AXES,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    graphs = [ONNX_NAME] + ([LABELS_PREFIX + ONNX_NAME] if bi else [])
    for name in graphs:
        _finish(out / name, model.config, meta)
        onnx.checker.check_model(str(out / name))
    report: dict[str, Any] = {"opset": opset, "files": {}}
    _check_files(model, out, ONNX_NAME, report)
    delta = report["files"][ONNX_NAME]["max_abs_logit_delta"]
    if not delta <= FP32_TOLERANCE:
        _write_report(out, report)
        raise RuntimeError(
            f"the exported graph disagrees with the torch model: max |delta logit| = {delta:.3g} "
            f"> {FP32_TOLERANCE:g} ({path} is left for inspection)"
        )
    if quantize == "int8":
        qmeta = meta | {"anyner.quantize": "int8 dynamic, per-channel"}
        for name in graphs:
            qname = name.replace(ONNX_NAME, ONNX_INT8_NAME)
            _quantize_int8(out / name, out / qname)
            _finish(out / qname, model.config, qmeta, resort=True)
            onnx.checker.check_model(str(out / qname))
        _check_files(model, out, ONNX_INT8_NAME, report)
    _write_report(out, report)
    return out


def _check_files(model: AnyNER, out: Path, name: str, report: dict[str, Any]) -> None:
    """Add the size, max |delta logit| and agreement of the exported ``name`` (and its label graph)."""
    runner = OnnxRunner(out / name, config=model.config)
    label_encoder = None
    size = (out / name).stat().st_size
    if model.label_cache is not None:
        label_encoder = OnnxLabelEncoder(out / (LABELS_PREFIX + name))
        size += label_encoder.path.stat().st_size
    delta = max_logit_delta(model, runner, label_encoder=label_encoder)
    info = {"bytes": size, "max_abs_logit_delta": delta, **_agreement(model, runner, label_encoder)}
    if label_encoder is not None:
        info["graphs"] = [name, label_encoder.path.name]
    report["files"][name] = info


def _quantize_int8(src: Path, dst: Path) -> None:
    """ONNX Runtime dynamic quantization: int8 weights per output channel, activations per batch.

    The graph is first put through ONNX Runtime's pre-processing for quantization (its basic
    graph optimisations: constant folding, redundant ``Identity`` nodes removed, shapes
    inferred). ``quantize_dynamic`` quantizes a MatMul only when its weight is an initializer,
    and torch's exporter reaches some weights through nodes: an ``Identity`` where a module is
    called twice (the encoder's projection, for words and for labels), a ``Split`` or
    ``Transpose`` where a head uses blocks of one weight (the token-level scorer). Without the
    pre-processing those products stay in fp32.

    Per-channel weight scales keep the encoder much closer to fp32 than one scale per
    matrix. MatMuls by a vector weight (a bias folded into the label vectors) stay in
    fp32: per-channel quantization does not apply to them and they cost nothing.
    """
    import logging
    import tempfile

    onnx = require_module("onnx")
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint on the root logger
    try:
        with tempfile.TemporaryDirectory(dir=dst.parent, prefix=".quantize-") as tmp:
            ready = Path(tmp) / "preprocessed.onnx"
            # symbolic shape inference is left out: it is for transformer fusions, not needed here
            quant_pre_process(str(src), str(ready), skip_symbolic_shape=True)
            graph = onnx.load(str(ready), load_external_data=False).graph
            rank = {t.name: len(t.dims) for t in graph.initializer}
            rank.update(
                {
                    o: len(n.attribute[0].t.dims)
                    for n in graph.node
                    if n.op_type == "Constant"
                    for o in n.output
                }
            )
            vectors = [n.name for n in graph.node if n.op_type == "MatMul" and rank.get(n.input[1]) == 1]
            quantize_dynamic(
                str(ready), str(dst), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=vectors
            )
    finally:
        root.setLevel(level)


def _agreement(
    model: AnyNER, runner: OnnxRunner, label_encoder: OnnxLabelEncoder | None = None
) -> dict[str, int]:
    """On the check texts: texts whose entities (spans and labels) are the same as torch's."""
    other = type(model)(
        None, model.tokenizer, model.hf_config, config=model.config, runner=runner,
        labels_tokenizer=model.labels_tokenizer, label_encoder=label_encoder,
    )  # fmt: skip
    labels = list(_LABELS)
    same = sum(
        [(e.start, e.end, e.label) for e in a] == [(e.start, e.end, e.label) for e in b]
        for a, b in zip(
            model.predict_batch(list(_CHECK_TEXTS), labels),
            other.predict_batch(list(_CHECK_TEXTS), labels),
            strict=True,
        )
    )
    return {"texts_checked": len(_CHECK_TEXTS), "texts_same_entities": int(same)}


def _write_report(out: Path, report: dict[str, Any]) -> None:
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def format_report(folder: str | Path) -> str:
    """A few lines on the exported files: sizes, max |delta logit| against torch, and what it means."""
    report = json.loads((Path(folder) / REPORT_NAME).read_text(encoding="utf-8"))
    lines = []
    for name, info in report["files"].items():
        agree = ""
        if "texts_checked" in info:
            agree = f", same entities as torch in {info['texts_same_entities']} of {info['texts_checked']} check texts"
        lines.append(
            f"{name:<18} {info['bytes'] / 2**20:8.1f} MiB   max |delta logit| vs torch "
            f"{info['max_abs_logit_delta']:.2e}{agree}"
        )
        if name == ONNX_NAME:
            lines.append(
                f"{'':<18} fp32: checked, within the {FP32_TOLERANCE:g} the export accepts (float rounding)"
            )
        else:
            lines.append(
                f"{'':<18} int8: logits move by up to a few units, as int8 rounding does; what counts is "
                "F1 on your data: compare with `anyner evaluate --model FOLDER` (the built-in model lost "
                "0.14 points of OOD F1 in int8)"
            )
    return "\n".join(lines) + "\n"


__all__ = [
    "ONNX_INT8_NAME", "ONNX_NAME", "OnnxRunner", "export_onnx", "find_onnx_file", "max_logit_delta", "one_batch",
]  # fmt: skip
