"""Package a trained model as anyner's built-in model (src/anyner/resources/builtin).

Weights are stored in fp16 (half the size; they load into fp32 parameters), with the
config, the tokenizer, a model card, the int8 ONNX export that the light install runs
(exported from the fp16 weights as shipped) and, when given, the threshold calibration
that ``threshold="auto"`` reads.

    python scripts/package_builtin.py ../runs/builtin-minilm-v0.4/model --card MODEL_CARD.md \
        --calibration ../runs/builtin-minilm-v0.4/model/calibration.json
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a trained model folder (save_pretrained output)")
    p.add_argument("--card", type=Path, required=True, help="the model card (Markdown) to ship with it")
    p.add_argument("--calibration", type=Path, help="calibration.json (anyner calibrate) to ship with it")
    p.add_argument("--no-onnx", action="store_true", help="skip the int8 ONNX export (model_int8.onnx)")
    args = p.parse_args()
    tmp = TARGET.with_name(".builtin.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = load_file(str(args.model / "model.safetensors"))
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
        str(tmp / "model.safetensors"),
    )
    follow_umask(tmp / "model.safetensors")  # safetensors writes 0600; the wheel's files are 0644
    for name in KEEP:
        if (args.model / name).is_file():
            shutil.copy(args.model / name, tmp / name)
    # Name the backbone by its public id, not by the path it had on the training machine.
    config = json.loads((tmp / "gliner_config.json").read_text())
    config["model_name"] = BACKBONE_ID
    config.get("encoder_config", {}).pop("_name_or_path", None)
    (tmp / "gliner_config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copy(args.card, tmp / "MODEL_CARD.md")
    if args.calibration:
        shutil.copy(args.calibration, tmp / "calibration.json")
    if not args.no_onnx:
        export_int8(tmp)
    shutil.rmtree(TARGET, ignore_errors=True)
    tmp.rename(TARGET)
    size = sum(f.stat().st_size for f in TARGET.iterdir()) / 1e6
    print(f"built-in model written to {TARGET} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
