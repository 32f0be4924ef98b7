"""Runtimes: what turns a :class:`~anyner.batching.Batch` into span scores.

A runtime is a :class:`Runner`: ``runner(batch)`` returns the probabilities (B, W, K, C)
as a float32 numpy array, whatever runs the network, and ``runner.logits(batch)`` the
logits before the sigmoid. :class:`TorchRunner` runs a torch network;
:class:`OnnxRunner` runs an exported graph with ONNX Runtime on the CPU. The pipeline
sits above this module and the ONNX exporter above the pipeline, so nothing here
imports either. torch is imported only by :class:`TorchRunner`; ``onnxruntime`` only
by :class:`OnnxRunner`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from anyner.batching import INPUT_NAMES, Batch

if TYPE_CHECKING:
    from anyner.config import AnyNERConfig

ONNX_NAME = "model.onnx"
ONNX_INT8_NAME = "model_int8.onnx"
# The layout of public GLiNER ONNX repositories (and of the gliner package's export_to_onnx):
# the graphs in an onnx/ folder, the int8 one named model_quantized.onnx.
PUBLIC_ONNX_DIR = "onnx"
PUBLIC_INT8_NAME = "model_quantized.onnx"
# The inputs of a span graph exported by the gliner package: subword-level word mask and an
# explicit list of spans, instead of anyner's word_index / word_present / label_index.
GLINER_SPAN_INPUTS = ("input_ids", "attention_mask", "words_mask", "text_lengths", "span_idx", "span_mask")
OUTPUT_NAME = "logits"
# A bi-encoder export has two graphs: the text graph (ONNX_NAME, label vectors in) and the label
# graph, named after it with this prefix (labels_model.onnx, labels_model_int8.onnx).
LABELS_PREFIX = "labels_"
LABEL_VECTORS = "label_vectors"  # the text graph's extra input and the label graph's output
LABEL_INPUT_NAMES = ("input_ids", "attention_mask")
# Settings the exporter stores in the file's metadata and the runner checks against the config.
METADATA_FIELDS = ("span_mode", "max_width", "hidden_size", "num_rnn_layers")


@runtime_checkable
class Runner(Protocol):
    """Anything that scores a batch: probabilities and logits (B, W, K, C), float32 numpy."""

    def __call__(self, batch: Batch) -> np.ndarray: ...

    def logits(self, batch: Batch) -> np.ndarray: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for very negative logits: 1 / inf = 0
        return 1.0 / (1.0 + np.exp(-x.astype(np.float32, copy=False)))


# "1": ONNX Runtime's intra-op threads spin while they wait for work (faster on a machine left
# to anyner, much slower on a busy one); unset or "0": they sleep (the default)
SPIN_ENV = "ANYNER_ONNX_SPIN"


def _default_threads() -> int:
    """The CPUs this process may run on (what torch's default is on most machines), without importing torch."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


class TorchRunner:
    """Runs a torch network (``forward(**batch.tensors())`` -> logits) on ``device``, without gradients."""

    def __init__(self, net: Any, device: Any = "cpu"):
        import torch

        self.net = net
        self.device = torch.device(device)

    def logits(self, batch: Batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.net(**batch.tensors(self.device)).float().cpu().numpy()

    def __call__(self, batch: Batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return torch.sigmoid(self.net(**batch.tensors(self.device)).float()).cpu().numpy()


class TorchLabelEncoder:
    """A bi-encoder's label encoder in torch: label subword ids (L, T) -> vectors (L, D), numpy."""

    def __init__(self, net: Any, device: Any = "cpu"):
        import torch

        self.net = net
        self.device = torch.device(device)

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            ids = torch.from_numpy(np.ascontiguousarray(input_ids, dtype=np.int64)).to(self.device)
            mask = torch.from_numpy(np.ascontiguousarray(attention_mask, dtype=np.int64)).to(self.device)
            return self.net.encode_labels(ids, mask).float().cpu().numpy()


def require_module(module: str) -> Any:
    """Import ``onnx`` or ``onnxruntime``, with an install hint when it is missing."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"the ONNX backend needs the {module!r} package, which is not installed: "
            "pip install onnx onnxruntime (or: pip install 'anyner[onnx]')"
        ) from e


# ---------------------------------------------------------------------------- runner


def find_onnx_file(folder: str | Path, name: str | None = None) -> Path:
    """The ONNX file ``name`` in a model folder, or a clear error.

    Without a name: ``model.onnx`` (fp32) when the folder has it, else ``model_int8.onnx``.
    A folder in the layout of public GLiNER ONNX repositories (``gliner_config.json`` and the
    tokenizer at the top, the graphs in ``onnx/``) is searched in ``onnx/`` the same way, then for
    ``model_quantized.onnx`` (the gliner package's name for its int8 file). A ``name`` is looked
    up in the folder, then in ``onnx/``; ``"onnx/model_quantized.onnx"`` also works.
    """
    folder = Path(folder)
    places = [folder, folder / PUBLIC_ONNX_DIR] if (folder / PUBLIC_ONNX_DIR).is_dir() else [folder]
    if name is not None:
        hits = [p / name for p in places if (p / name).is_file()]
        path = hits[0] if hits else folder / name
    else:
        defaults = [(place, n) for place in places for n in (ONNX_NAME, ONNX_INT8_NAME)]
        defaults.append((places[-1], PUBLIC_INT8_NAME))
        hits = [place / n for place, n in defaults if (place / n).is_file()]
        path = hits[0] if hits else folder / ONNX_NAME
    if not path.is_file():
        found = (
            sorted(str(p.relative_to(folder)) for place in places for p in place.glob("*.onnx"))
            if folder.is_dir()
            else []
        )
        raise FileNotFoundError(
            f"{folder} holds no {path.name}"
            + (f" (it has {', '.join(found)}; choose one with onnx_file=...)" if found else "")
            + ": export the model first, with `anyner export onnx --model MODEL --out FOLDER` or "
            "anyner.export_onnx.export_onnx(model, folder), then load that folder with backend='onnx'"
        )
    return path


def labels_onnx_file(text_graph: str | Path) -> Path:
    """The label graph that goes with a bi-encoder's text graph (``model.onnx`` -> ``labels_model.onnx``)."""
    path = Path(text_graph)
    labels = path.with_name(LABELS_PREFIX + path.name)
    if not labels.is_file():
        raise FileNotFoundError(
            f"{path.parent} holds the bi-encoder's text graph {path.name} but not its label graph "
            f"{labels.name}: export the model again with `anyner export onnx`"
        )
    return labels


def _session(path: str | Path, threads: int | None, profile_prefix: str | None = None) -> Any:
    """anyner's ONNX Runtime session for ``path``; ``profile_prefix``: write ONNX Runtime's
    per-node profile there (``session.end_profiling()`` returns its file), for benchmarks."""
    ort = require_module("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads) if threads else _default_threads()
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning by default: on a shared or busy CPU spinning
    # burns cores that other work needs (measured on a 2-core machine running three other jobs:
    # 0.5x-0.8x the words/s). On a machine left to anyner they can pick up work sooner (the
    # built-in model at batch 1: 1.14x-1.25x; but a BiLSTM checkpoint: 0.66x-0.75x), so it is
    # opt-in: ANYNER_ONNX_SPIN=1 (docs/onnx.md).
    spin = os.environ.get(SPIN_ENV, "0").strip()
    if spin not in ("0", "1", ""):
        raise ValueError(
            f"{SPIN_ENV}={spin!r}: give 1 (spinning threads) or 0 (sleeping threads, the default)"
        )
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin == "1" else "0")
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # a truncated or foreign file: ORT's own exception types vary
        raise ValueError(f"ONNX Runtime cannot load {path}: {e}") from e


class OnnxLabelEncoder:
    """A bi-encoder's exported label graph: label subword ids (L, T) -> vectors (L, D), numpy.

    Args:
        path: the label graph (``labels_model.onnx`` or ``labels_model_int8.onnx``).
        threads: intra-op threads; default the CPUs this process may run on.
    """

    def __init__(self, path: str | Path, threads: int | None = None):
        self.path = Path(path)
        self.session = _session(path, threads)
        inputs = [x.name for x in self.session.get_inputs()]
        outputs = [x.name for x in self.session.get_outputs()]
        if sorted(inputs) != sorted(LABEL_INPUT_NAMES) or outputs != [LABEL_VECTORS]:
            raise ValueError(
                f"{path} is not an anyner label graph: inputs {inputs}, outputs {outputs} (expected "
                f"{list(LABEL_INPUT_NAMES)} -> [{LABEL_VECTORS!r}])"
            )

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {
            "input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
            "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64),
        }
        return self.session.run([LABEL_VECTORS], feed)[0]


class OnnxRunner:
    """Runs an exported span network with ONNX Runtime on the CPU: a :class:`Runner`.

    Inputs the graph dropped (``text_lengths`` of a model without BiLSTM) are not fed. A
    bi-encoder's text graph also reads ``label_vectors`` (B, C, D) from the batch.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads; default the CPUs this process may run on.
        config: when given, checked against the settings the exporter stored in the file.

    Example::

        runner = OnnxRunner("exported/model.onnx")
        probs = runner(batch)  # numpy (B, W, K, C)
    """

    def __init__(self, path: str | Path, threads: int | None = None, *, config: AnyNERConfig | None = None):
        self.path = Path(path)
        self.session = _session(path, threads)
        self.inputs = {x.name: x.type for x in self.session.get_inputs()}
        outputs = [x.name for x in self.session.get_outputs()]
        known = {*INPUT_NAMES, LABEL_VECTORS}
        # a span graph exported by the gliner package (public GLiNER ONNX repositories)
        self.gliner_format = set(self.inputs) == set(GLINER_SPAN_INPUTS)
        if self.gliner_format:
            if config is None or config.span_mode == "token_level":
                raise ValueError(
                    f"{path} is a span graph in the gliner package's format: it needs the folder's "
                    "gliner_config.json of a span model (max_width) to be run"
                )
            self.max_width = int(config.max_width)
        elif not set(self.inputs) <= known or {"input_ids", "word_index"} - set(self.inputs):
            raise ValueError(
                f"{path} is neither an anyner export nor a span graph of the gliner package: its inputs are "
                f"{sorted(self.inputs)}, expected some of {list(INPUT_NAMES)} or {list(GLINER_SPAN_INPUTS)}; "
                "export the checkpoint with `anyner export onnx`"
            )
        if outputs != [OUTPUT_NAME]:
            raise ValueError(f"{path} is not an anyner export: outputs {outputs}, expected [{OUTPUT_NAME!r}]")
        if config is not None:
            self._check(config)

    def _check(self, config: AnyNERConfig) -> None:
        meta = self.session.get_modelmeta().custom_metadata_map
        for name in METADATA_FIELDS:
            stored = meta.get(f"anyner.{name}")
            if stored is not None and stored != str(getattr(config, name)):
                raise ValueError(
                    f"{self.path} was exported with {name}={stored} but the folder's config says "
                    f"{getattr(config, name)}: the ONNX file and gliner_config.json do not belong together"
                )

    @property
    def reads_label_vectors(self) -> bool:
        """True for a bi-encoder's text graph."""
        return LABEL_VECTORS in self.inputs

    def logits(self, batch: Batch) -> np.ndarray:
        if self.gliner_format:
            return self._gliner_logits(batch)
        feed = {}
        for name, kind in self.inputs.items():
            value = getattr(batch, name)
            if value is None:
                raise ValueError(f"{self.path} is a bi-encoder's text graph: the batch needs {name}")
            dtype = {"tensor(bool)": np.bool_, "tensor(float)": np.float32}.get(kind, np.int64)
            feed[name] = np.ascontiguousarray(value, dtype=dtype)
        return self.session.run([OUTPUT_NAME], feed)[0]  # (B, W, K, C) float32

    def _gliner_logits(self, batch: Batch) -> np.ndarray:
        """Run a gliner-format span graph: the batch's words as a subword mask (first subword of
        word w holds w + 1), every span (w, w + k) of each text listed, the graph finding each
        label's ``<<ENT>>`` token itself."""
        B, T = batch.input_ids.shape
        K, W = self.max_width, batch.n_words
        lengths = batch.text_lengths.astype(np.int64).reshape(B, 1)
        words_mask = np.zeros((B, T), dtype=np.int64)
        rows, cols = np.nonzero(batch.word_present)
        words_mask[rows, batch.word_index[rows, cols]] = cols + 1
        n = max(1, int(lengths.max()))  # the graph's word axis: the longest text
        starts = np.repeat(np.arange(n, dtype=np.int64), K)
        ends = starts + np.tile(np.arange(K, dtype=np.int64), n)
        feed = {
            "input_ids": np.ascontiguousarray(batch.input_ids, dtype=np.int64),
            "attention_mask": np.ascontiguousarray(batch.attention_mask, dtype=np.int64),
            "words_mask": words_mask,
            "text_lengths": lengths,
            "span_idx": np.ascontiguousarray(np.broadcast_to(np.stack([starts, ends], -1), (B, n * K, 2))),
            "span_mask": ends[None, :] < lengths,
        }
        out = self.session.run([OUTPUT_NAME], feed)[0]  # (B, n, K, C)
        C = batch.n_labels
        if out.shape[1] < W or out.shape[3] < C:  # a batch padded past its longest text: scores never kept
            full = np.full((B, W, K, max(C, out.shape[3])), -1e4, dtype=np.float32)
            full[:, : out.shape[1]] = out
            out = full
        return np.ascontiguousarray(out[:, :W, :, :C], dtype=np.float32)

    def __call__(self, batch: Batch) -> np.ndarray:
        return _sigmoid(self.logits(batch))


__all__ = [
    "GLINER_SPAN_INPUTS",
    "LABELS_PREFIX",
    "LABEL_VECTORS",
    "ONNX_INT8_NAME",
    "ONNX_NAME",
    "OUTPUT_NAME",
    "PUBLIC_INT8_NAME",
    "PUBLIC_ONNX_DIR",
    "OnnxLabelEncoder",
    "OnnxRunner",
    "Runner",
    "TorchLabelEncoder",
    "TorchRunner",
    "labels_onnx_file",
    "find_onnx_file",
    "require_module",
]
