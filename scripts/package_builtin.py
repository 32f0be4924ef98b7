"""Package a trained model as anyner's built-in model (src/anyner/resources/builtin).

Weights are stored in fp16 (half the size; they load into fp32 parameters), with the
config, the tokenizer and a model card.

    python scripts/package_builtin.py runs/builtin-minilm/model --card runs/builtin-minilm/MODEL_CARD.md
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="a trained model folder (save_pretrained output)")
    p.add_argument("--card", type=Path, required=True, help="the model card (Markdown) to ship with it")
    args = p.parse_args()
    tmp = TARGET.with_name(".builtin.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = load_file(str(args.model / "model.safetensors"))
    save_file(
        {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
        str(tmp / "model.safetensors"),
    )
    for name in KEEP:
        if (args.model / name).is_file():
            shutil.copy(args.model / name, tmp / name)
    # Name the backbone by its public id, not by the path it had on the training machine.
    config = json.loads((tmp / "gliner_config.json").read_text())
    config["model_name"] = BACKBONE_ID
    config.get("encoder_config", {}).pop("_name_or_path", None)
    (tmp / "gliner_config.json").write_text(json.dumps(config, indent=2) + "\n")
    shutil.copy(args.card, tmp / "MODEL_CARD.md")
    shutil.rmtree(TARGET, ignore_errors=True)
    tmp.rename(TARGET)
    size = sum(f.stat().st_size for f in TARGET.iterdir()) / 1e6
    print(f"built-in model written to {TARGET} ({size:.1f} MB)")


if __name__ == "__main__":
    main()
