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
OUTPUT_NAME = "logits"
# Settings the exporter stores in the file's metadata and the runner checks against the config.
METADATA_FIELDS = ("span_mode", "max_width", "hidden_size", "num_rnn_layers")


@runtime_checkable
class Runner(Protocol):
    """Anything that scores a batch: probabilities and logits (B, W, K, C), float32 numpy."""

    def __call__(self, batch: Batch) -> np.ndarray: ...

    def logits(self, batch: Batch) -> np.ndarray: ...


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float32, copy=False)))


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
    """
    folder = Path(folder)
    if name is None and not (folder / ONNX_NAME).is_file() and (folder / ONNX_INT8_NAME).is_file():
        name = ONNX_INT8_NAME
    path = folder / (name or ONNX_NAME)
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("*.onnx")) if folder.is_dir() else []
        raise FileNotFoundError(
            f"{folder} holds no {path.name}"
            + (f" (it has {', '.join(found)}; choose one with onnx_file=...)" if found else "")
            + ": export the model first, with `anyner export onnx --model MODEL --out FOLDER` or "
            "anyner.export_onnx.export_onnx(model, folder), then load that folder with backend='onnx'"
        )
    return path


class OnnxRunner:
    """Runs an exported span network with ONNX Runtime on the CPU: a :class:`Runner`.

    Inputs the graph dropped (``text_lengths`` of a model without BiLSTM) are not fed.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads; default the CPUs this process may run on.
        config: when given, checked against the settings the exporter stored in the file.

    Example::

        runner = OnnxRunner("exported/model.onnx")
        probs = runner(batch)  # numpy (B, W, K, C)
    """

    def __init__(self, path: str | Path, threads: int | None = None, *, config: AnyNERConfig | None = None):
        ort = require_module("onnxruntime")
        self.path = Path(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads) if threads else _default_threads()
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of spinning: the ops here are large, and on a shared or
        # busy CPU spinning only burns cores (measured on a busy 2-core machine: faster, and
        # about a third less CPU).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # a truncated or foreign file: ORT's own exception types vary
            raise ValueError(f"ONNX Runtime cannot load {path}: {e}") from e
        self.inputs = {x.name: x.type for x in self.session.get_inputs()}
        outputs = [x.name for x in self.session.get_outputs()]
        if not set(self.inputs) <= set(INPUT_NAMES) or {"input_ids", "word_index"} - set(self.inputs):
            raise ValueError(
                f"{path} is not an anyner export: its inputs are {sorted(self.inputs)}, expected some of "
                f"{list(INPUT_NAMES)} (ONNX files made by other tools, e.g. the gliner package, take other "
                "inputs); export the checkpoint with `anyner export onnx`"
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

    def logits(self, batch: Batch) -> np.ndarray:
        feed = {
            name: np.ascontiguousarray(
                getattr(batch, name), dtype=np.bool_ if kind == "tensor(bool)" else np.int64
            )
            for name, kind in self.inputs.items()
        }
        return self.session.run([OUTPUT_NAME], feed)[0]  # (B, W, K, C) float32

    def __call__(self, batch: Batch) -> np.ndarray:
        return _sigmoid(self.logits(batch))


__all__ = [
    "ONNX_INT8_NAME",
    "ONNX_NAME",
    "OUTPUT_NAME",
    "OnnxRunner",
    "Runner",
    "TorchRunner",
    "find_onnx_file",
    "require_module",
]
