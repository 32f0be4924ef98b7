"""Package a trained model as anyner's built-in model (src/anyner/resources/builtin).

Weights are stored in fp16 (half the size; they load into fp32 parameters), with the
config, the tokenizer, a model card, the int8 ONNX export that the light install runs
(exported from the fp16 weights as shipped) and, when given, the threshold calibration
that ``threshold="auto"`` reads.

    python scripts/package_builtin.py ../runs/builtin-minilm-v0.4/model --card MODEL_CARD.md \
        --calibration ../runs/builtin-minilm-v0.4/model/calibration.json

With ``--relations`` the model is the built-in *relation* model (trained from the built-in entity
model with part of it frozen, e.g. configs/builtin-relex-v0.1.toml): it goes to
``builtin/relations/`` as a delta on the entity model's weights (``model_delta.safetensors``,
see anyner.delta), which ``AnyNER.from_pretrained()`` loads on the first predict_relations call.
Re-packaging the entity model removes it (a delta only fits the weights it was made from).

    python scripts/package_builtin.py --relations ../runs/builtin-relex-v0.1/model --card RELEX_CARD.md
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

from anyner.fileio import follow_umask

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "anyner" / "resources" / "builtin"
BACKBONE_ID = "sentence-transformers/all-MiniLM-L6-v2"
KEEP = (
    "gliner_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
)


def export_int8(folder: Path) -> None:
    """Export ``folder``'s fp16 weights (as users load them) to ``folder/model_int8.onnx``."""
    import tempfile

    from anyner import AnyNER
    from anyner.export_onnx import export_onnx

    with tempfile.TemporaryDirectory() as out:
        export_onnx(AnyNER.from_pretrained(str(folder), backend="torch"), out, quantize="int8")
        shutil.copy(Path(out) / "model_int8.onnx", folder / "model_int8.onnx")
        report = json.loads((Path(out) / "onnx_export.json").read_text())
    print("int8 export:", json.dumps(report))


def fp16_state(model: Path) -> dict:
    state = load_file(str(model / "model.safetensors"))
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def copy_config(model: Path, out: Path) -> None:
    """The tokenizer files and the config, whose backbone is named by its public id, not by the path
    it had on the training machine."""
    for name in KEEP:
        if (model / name).is_file():
            shutil.copy(model / name, out / name)
    config = json.loads((out / "gliner_config.json").read_text())
    config["model_name"] = BACKBONE_ID
    config.get("encoder_config", {}).pop("_name_or_path", None)
    (out / "gliner_config.json").write_text(json.dumps(config, indent=2) + "\n")


def package_relations(model: Path, card: Path) -> None:
    """``model`` as a delta on the shipped entity weights, in ``builtin/relations``; checked by
    rebuilding every tensor from the delta and comparing it with the fp16 weights."""
    import tempfile

    import torch

    from anyner.checkpoint import iter_weights
    from anyner.delta import DELTA_NAME, write_delta

    target = TARGET / "relations"
    tmp = TARGET / ".relations.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    full = fp16_state(model)
    with tempfile.TemporaryDirectory() as scratch:
        whole = Path(scratch) / "model.safetensors"
        save_file(full, str(whole))
        counts = write_delta(TARGET / "model.safetensors", whole, tmp / DELTA_NAME)
    rebuilt = {k: t.clone() for k, t in iter_weights(tmp / DELTA_NAME)}
    if rebuilt.keys() != full.keys() or not all(torch.equal(rebuilt[k], full[k]) for k in full):
        raise SystemExit("the delta does not rebuild the model's weights")
    copy_config(model, tmp)
    shutil.copy(card, tmp / "MODEL_CARD.md")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    size = sum(f.stat().st_size for f in target.iterdir()) / 1e6
    print(f"relation model written to {target} ({size:.1f} MB): {json.dumps(counts)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a trained model folder (save_pretrained output)")
    p.add_argument("--card", type=Path, required=True, help="the model card (Markdown) to ship with it")
    p.add_argument("--calibration", type=Path, help="calibration.json (anyner calibrate) to ship with it")
    p.add_argument("--no-onnx", action="store_true", help="skip the int8 ONNX export (model_int8.onnx)")
    p.add_argument(
        "--relations", action="store_true", help="package the built-in relation model (builtin/relations)"
    )
    args = p.parse_args()
    if args.relations:
        package_relations(args.model, args.card)
        return
    tmp = TARGET.with_name(".builtin.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(fp16_state(args.model), str(tmp / "model.safetensors"))
    follow_umask(tmp / "model.safetensors")  # safetensors writes 0600; the wheel's files are 0644
    copy_config(args.model, tmp)
    shutil.copy(args.card, tmp / "MODEL_CARD.md")
    if args.calibration:
        shutil.copy(args.calibration, tmp / "calibration.json")
    if not args.no_onnx:
        export_int8(tmp)
    if (TARGET / "relations").is_dir():
        print("note: builtin/relations was made for the old weights and is removed; package it again")
    shutil.rmtree(TARGET, ignore_errors=True)
    tmp.rename(TARGET)
    size = sum(f.stat().st_size for f in TARGET.iterdir() if f.is_file()) / 1e6
    print(f"built-in model written to {TARGET} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
