"""Two ONNX graphs of one model, timed against each other in one run (A/B), through anyner's light path.

Each graph is given as a file. When its folder holds no ``gliner_config.json`` (a graph taken
out of git history, say), the built-in model's config and tokenizer are used with it. Both
read the same texts (real OOD sentences joined into 40- and 200-word texts) with the same
labels on the same threads; passes alternate between the graphs so that a busy CPU hurts
both alike, and the best pass counts. ``--spin`` adds graph B once more with ONNX Runtime's
intra-op threads spinning while they wait (anyner's sessions let them sleep).

    git show 4bd4583:src/anyner/resources/builtin/model_int8.onnx > /tmp/old_int8.onnx
    python benchmarks/onnx_ab.py /tmp/old_int8.onnx src/anyner/resources/builtin/model_int8.onnx --spin
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

from _report import cpu_name  # noqa: E402
from inference import corpus  # noqa: E402

CASES = [(w, n, b) for b in (1, 8) for w in (40, 200) for n in (5, 25)]  # words, labels, batch


def load(graph: Path, threads: int, spin: bool = False):
    """An AnyNER model on the ONNX backend running ``graph``."""
    from anyner import AnyNER
    from anyner.builtin import builtin_model_path
    from anyner.runtime import SPIN_ENV

    folder = graph.parent
    if not (folder / "gliner_config.json").is_file():
        folder = Path(tempfile.mkdtemp(prefix="anyner-ab-"))
        for f in Path(builtin_model_path()).iterdir():
            if f.is_file() and f.suffix != ".onnx" and f.name != "model.safetensors":
                shutil.copy(f, folder / f.name)
        shutil.copy(graph, folder / graph.name)
    # anyner's own session set-up, with spinning threads through its switch (anyner.runtime)
    with mock.patch.dict(os.environ, {SPIN_ENV: "1" if spin else "0"}):
        return AnyNER.from_pretrained(folder, backend="onnx", onnx_file=graph.name, threads=threads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, help="graph A (the baseline)")
    p.add_argument("b", type=Path, help="graph B")
    p.add_argument("--spin", action="store_true", help="also B with spinning intra-op threads")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--texts", type=int, default=16, help="texts per case")
    args = p.parse_args()
    models = {"A": load(args.a, args.threads), "B": load(args.b, args.threads)}
    if args.spin:
        models["B spin"] = load(args.b, args.threads, spin=True)
    print(f"# {time.strftime('%Y-%m-%d')} | {cpu_name()} | {os.cpu_count()} CPUs | threads {args.threads}")
    print(f"# A = {args.a}\n# B = {args.b}\n# words/s, best of {args.reps} interleaved passes")
    head = "".join(f"{n:>10}" for n in models)
    print(
        f"{'case':<22}{head}{'B / A':>8}" + (f"{'spin / B':>10}" if args.spin else "") + f"{'same as A':>11}"
    )
    for n_words, n_labels, batch in CASES:
        texts, pool = corpus(n_words, args.texts)
        labels = pool[:n_labels]
        keyed = {}
        for name, m in models.items():  # warm-up, and the entities compared
            out = m.predict_batch(texts, labels, batch_size=batch)
            keyed[name] = [[(e.start, e.end, e.label) for e in ents] for ents in out]
        best = dict.fromkeys(models, float("inf"))
        for _ in range(args.reps):
            for name, m in models.items():
                t = time.perf_counter()
                m.predict_batch(texts, labels, batch_size=batch)
                best[name] = min(best[name], time.perf_counter() - t)
        words = sum(len(t.split()) for t in texts)
        ws = {name: words / s for name, s in best.items()}
        same = sum(x == y for x, y in zip(keyed["A"], keyed["B"], strict=True))
        row = f"{f'{n_words}w x {n_labels}l x b{batch}':<22}" + "".join(f"{ws[n]:>10.0f}" for n in models)
        row += f"{ws['B'] / ws['A']:>7.2f}x"
        if args.spin:
            row += f"{ws['B spin'] / ws['B']:>9.2f}x"
        print(row + f"{f'{same}/{len(texts)}':>11}", flush=True)


if __name__ == "__main__":
    main()
