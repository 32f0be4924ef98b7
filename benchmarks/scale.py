"""Long documents and many labels: time and peak memory as the input grows.

Each case runs in its own subprocess so that its peak RSS is its own.

- Long texts: documents of 1k, 10k and 100k words (real OOD sentences, 5 labels).
  Linear time means words/s stays flat as the document grows.
- Many labels: one 200-word text with 5, 100 and 1,000 labels (the label set is
  split into prompt groups). Bounded memory means peak RSS stays near the 5-label
  case: each group is run and decoded, then dropped.

    python benchmarks/scale.py                        # the built-in model
    python benchmarks/scale.py --model PATH --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import cpu_name  # noqa: E402
from inference import corpus  # noqa: E402

LONG = [1_000, 10_000, 100_000]
LABELS = [5, 100, 1_000]


def label_names(n: int) -> list[str]:
    """``n`` distinct label names: the OOD label pool, then made-up but plausible types."""
    _, pool = corpus(1, 1)
    extra = [f"{a} {b}" for a in ("local", "foreign", "historic", "modern", "public", "private", "minor", "major",
             "ancient", "digital") for b in ("event", "object", "group", "place", "work", "title", "system",
             "measure", "role", "term", "device", "process", "material", "body", "unit", "law", "style", "brand",
             "route", "award")]  # fmt: skip
    names = list(dict.fromkeys(pool + extra))
    i = 0
    while len(names) < n:
        names.append(f"category {i}")
        i += 1
    return names[:n]


def worker(model_path: str, kind: str, size: int) -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    sys.path.insert(0, str(REPO / "src"))
    from anyner import AnyNER

    model = AnyNER.from_pretrained(model_path or None)
    model.predict("Warm up on a short sentence in Paris.", ["city"])
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if kind == "long":
        words = []
        for text in corpus(200, 1 + size // 200)[0]:
            words += text.split()
        text, labels = " ".join(words[:size]), label_names(5)
    else:
        text, labels = corpus(200, 1)[0][0], label_names(size)
    t = time.perf_counter()
    entities = model.predict(text, labels)
    seconds = time.perf_counter() - t
    print(json.dumps({
        "words": len(text.split()), "labels": len(labels), "seconds": seconds, "entities": len(entities),
        "rss_before_mb": base_rss, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="", help="model folder (default: the built-in model)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return
    env = dict(
        os.environ, BENCH_THREADS=str(args.threads), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )

    def case(kind: str, size: int) -> dict:
        cmd = [sys.executable, __file__, "--worker", args.model, kind, str(size)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{kind} {size} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    print(f"# {time.strftime('%Y-%m-%d')} | {cpu_name()} | {os.cpu_count()} CPUs | "
          f"threads {args.threads} | model {args.model or 'built-in'}")  # fmt: skip
    print(
        f"{'document':<12}{'words/s':>10}{'seconds':>10}{'entities':>10}{'peak RSS MB':>13}{'RSS growth MB':>15}"
    )
    for size in LONG:
        r = case("long", size)
        print(f"{r['words']:>8} w  {r['words'] / r['seconds']:>10.0f}{r['seconds']:>10.2f}{r['entities']:>10}"
              f"{r['peak_rss_mb']:>13.0f}{r['peak_rss_mb'] - r['rss_before_mb']:>15.0f}")  # fmt: skip
    print(
        f"\n{'labels':<12}{'seconds':>10}{'entities':>10}{'peak RSS MB':>13}{'RSS growth MB':>15}   (one 200-word text)"
    )
    for size in LABELS:
        r = case("labels", size)
        print(f"{r['labels']:>8}    {r['seconds']:>10.2f}{r['entities']:>10}{r['peak_rss_mb']:>13.0f}"
              f"{r['peak_rss_mb'] - r['rss_before_mb']:>15.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
