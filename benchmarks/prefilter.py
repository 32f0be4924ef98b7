"""The span pre-filter with many labels: speed-up and F1 change on the OOD benchmark.

For a trained bi-encoder span model (default ``runs/bi-minilm/model``, from
``anyner train configs/bi-minilm.toml``), each OOD set's sentences are read with its gold
labels plus distractor labels up to 1,000 and 10,000 labels in all (type names from the
packaged label maps, then whole words of the encoder's vocabulary: fixed, seeded order).
The label vectors are made once per label set (``encode_labels``, timed apart); predictions
are then timed with the pre-filter off and at each ``--top-k``, and scored with the paper's
protocol (flat, threshold 0.5) on the set's gold types: entities of a distractor label are
dropped before scoring (they are neither right nor wrong for the gold), but they still
compete with the gold labels in flat decoding, so distractors can lower F1.

The pre-filter's layer is trained first when the model folder lacks ``span_filter.safetensors``
(on the training config's data, never the benchmark), then saved there.

    python benchmarks/prefilter.py [--model runs/bi-minilm/model] [--per-set 50] [--counts 1000,10000]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _report import cpu_name  # noqa: E402

OOD = ROOT.parent / "shared" / "data" / "benchmark" / "ood"


def distractors(model, exclude: set[str]) -> list[str]:
    """Label names that are none of the benchmark's: label-map names first, then vocabulary words."""
    names: list[str] = []
    res = ROOT / "src" / "anyner" / "resources"

    def walk(x):
        if isinstance(x, str):
            names.append(x.strip().lower())
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for path in sorted([res / "label_synonyms.json", *sorted((res / "label_maps").glob("*.json"))]):
        walk(json.loads(path.read_text(encoding="utf-8")))
    mapped = [n for n in dict.fromkeys(names) if len(n) >= 3 and n.replace(" ", "").isalpha()]
    vocab = [w for w in model.labels_tokenizer.get_vocab() if w.isalpha() and w.islower() and len(w) >= 4]
    random.Random(0).shuffle(mapped)
    random.Random(1).shuffle(vocab)
    return [n for n in dict.fromkeys(mapped + vocab) if n not in exclude]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "runs" / "bi-minilm" / "model"))
    parser.add_argument("--train-config", default=str(ROOT / "configs" / "bi-minilm.toml"))
    parser.add_argument("--filter-steps", type=int, default=300)
    parser.add_argument("--per-set", type=int, default=50, help="sentences of each OOD set")
    parser.add_argument("--counts", default="0,1000,10000", help="labels in all (0: the gold labels alone)")
    parser.add_argument("--top-k", default="16,32,64", help="spans kept per sequence")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not OOD.is_dir():
        print(f"{OOD} is absent: this benchmark needs the shared data", file=sys.stderr)
        return 2

    import torch

    from anyner import AnyNER
    from anyner.evaluate import evaluate_folder
    from anyner.prefilter import FILTER_FILE, SpanPrefilter
    from anyner.train.config import load_train_config
    from anyner.train.prefilter import train_span_filter

    torch.set_num_threads(args.threads)
    model = AnyNER.from_pretrained(args.model)
    folder = Path(args.model)
    if not (folder / FILTER_FILE).is_file():
        cfg = load_train_config(args.train_config)
        t = time.perf_counter()
        layer = train_span_filter(model, cfg, steps=args.filter_steps)
        layer.save(folder)
        print(f"trained the span filter in {time.perf_counter() - t:.0f} s -> {folder / FILTER_FILE}")
    base = SpanPrefilter.load(folder, top_k=1)

    sets = sorted(p for p in OOD.iterdir() if p.is_dir())
    gold_labels = {
        p.name: [x.strip().lower() for x in json.loads((p / "labels.json").read_text())] for p in sets
    }
    pool = distractors(model, {x for v in gold_labels.values() for x in v})
    counts = [int(x) for x in args.counts.split(",")]
    ks = [int(x) for x in args.top_k.split(",")]
    if len(pool) < max(counts):
        print(f"only {len(pool)} distractor names: lower --counts", file=sys.stderr)
        return 2

    class Many:
        """A predictor that reads the set's labels plus distractors and keeps the set's entities."""

        def __init__(self, n: int):
            self.n, self.cache, self.predict_s, self.encode_s, self.multi = n, {}, 0.0, 0.0, False

        def embeddings(self, labels):
            key = tuple(labels)
            if key not in self.cache:
                t = time.perf_counter()
                extra = [d for d in pool if d not in set(labels)][: max(0, self.n - len(labels))]
                self.cache[key] = model.encode_labels(list(labels) + extra)
                self.encode_s += time.perf_counter() - t
            return self.cache[key]

        def _run(self, method, inputs, labels, **kw):
            emb = self.embeddings(labels)
            if self.multi:
                kw["multi_label"] = True
            t = time.perf_counter()
            found = method(inputs, emb, **kw)
            self.predict_s += time.perf_counter() - t
            keep = set(labels)
            return [[e for e in ents if e.label in keep] for ents in found]

        def predict_words(self, words, labels, **kw):
            return self._run(model.predict_words, words, labels, **kw)

        def predict_batch(self, texts, labels, **kw):
            return self._run(model.predict_batch, texts, labels, **kw)

    def run(n: int, k: int | None, many: Many) -> dict:
        """Flat decoding (the paper's protocol), then nested multi-label decoding: there a
        distractor label on a span or an overlapping span hides no gold entity, so the F1
        change is the pre-filter's alone. Timed: the flat pass."""
        model.span_prefilter = None if k is None else base.with_top_k(k)
        many.predict_s = 0.0
        f1, f1_multi = {}, {}
        for p in sets:
            f1[p.name] = evaluate_folder(many, p, limit=args.per_set, batch_size=8).scores.f1
        seconds = many.predict_s
        many.multi = True
        for p in sets:
            f1_multi[p.name] = evaluate_folder(
                many, p, limit=args.per_set, batch_size=8, flat=False
            ).scores.f1
        many.multi = False
        return {"labels": n, "top_k": k, "predict_s": seconds, "f1": f1, "f1_multi_label": f1_multi,
                "average_f1": sum(f1.values()) / len(f1),
                "average_f1_multi_label": sum(f1_multi.values()) / len(f1_multi)}  # fmt: skip

    cpu = cpu_name()
    print(
        f"{cpu}, {args.threads} threads; model {args.model}; {args.per_set} sentences x {len(sets)} OOD sets"
    )
    rows = []
    for n in counts:
        many = Many(n)
        dense = run(n, None, many)
        rows.append(dense | {"encode_s": many.encode_s})
        print(f"{n:>6} labels: label vectors {many.encode_s:6.1f} s (once per set's label set)")
        print(f"        all spans : predict {dense['predict_s']:7.1f} s  average F1 {dense['average_f1']:5.2f} flat, "
              f"{dense['average_f1_multi_label']:5.2f} multi-label")  # fmt: skip
        for k in ks:
            r = run(n, k, many)
            rows.append(r)
            print(
                f"        top-{k:<3}   : predict {r['predict_s']:7.1f} s  average F1 {r['average_f1']:5.2f} flat, "
                f"{r['average_f1_multi_label']:5.2f} multi-label  speed-up {dense['predict_s'] / r['predict_s']:4.2f}x  "
                f"F1 change {r['average_f1'] - dense['average_f1']:+.2f} flat, "
                f"{r['average_f1_multi_label'] - dense['average_f1_multi_label']:+.2f} multi-label"
            )
    model.span_prefilter = None
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
