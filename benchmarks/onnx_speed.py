"""ONNX speed and accuracy: anyner's fp32 and int8 exports against the reference package.

Speed uses the same v2.1-style checkpoint as benchmarks/inference.py (a BiLSTM +
markerV0 head, hidden 512, on all-MiniLM-L6-v2, saved by the reference). Each
runtime reads the same texts with the same labels on the same threads:

- reference torch:   ``GLiNER.from_pretrained(folder)``
- reference int8:    the reference's own ``export_to_onnx(quantize=True)``, loaded with
                     ``load_onnx_model=True`` and run by ONNX Runtime
- anyner torch, anyner fp32 ONNX, anyner int8 ONNX (``anyner export onnx --quantize int8``)

Accuracy of int8 needs a trained model, so it is measured on the built-in model:
OOD F1 with torch against OOD F1 with its int8 export (paper protocol).

    python benchmarks/onnx_speed.py                   # speed + F1 on the full OOD sets
    python benchmarks/onnx_speed.py --f1-limit 200    # F1 on the first 200 sentences per set
    python benchmarks/onnx_speed.py --skip-f1
    python benchmarks/onnx_speed.py --skip-f1 --profile   # + where anyner int8's time goes

``--profile`` adds two things, measured in the same run:

- ``anyner-int8-spin``: the same int8 graph with ONNX Runtime's intra-op threads spinning
  while they wait for work (anyner's sessions let them sleep, see ``anyner.runtime``);
- an ONNX Runtime profile of anyner's int8 graph per case: the share of kernel time in the
  matrix products (int8 ``MatMulInteger`` family, fp32 ``MatMul`` of attention and of the span
  x label product, the LSTM) against everything else, the share of wall time spent outside
  ONNX Runtime (tokenizing, windows, decoding), and the *bound*: the words/s anyner's int8 path
  would reach if nothing but its matrix products took time, divided by the reference's torch
  words/s. A bound under 10x means that no change to the graph's plumbing (fusions, masks,
  layouts, Python) can reach the 10x target on that case: only less arithmetic or faster
  matrix kernels can.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _report import cpu_name  # noqa: E402
from inference import build_checkpoint, corpus, shared_dir  # noqa: E402

CASES = [(w, n, b) for b in (1, 8) for w in (40, 200) for n in (5, 25)]  # words, labels, batch
RUNTIMES = ("reference-torch", "reference-int8", "anyner-torch", "anyner-fp32", "anyner-int8")
PROFILED = ("anyner-int8-spin", "anyner-int8-profile")
# ONNX Runtime op types that are matrix products (after its graph optimisations): int8, fp32, LSTM
ARITHMETIC = {
    "int8 matmul": ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm", "QAttention"),
    "fp32 matmul": ("MatMul", "FusedMatMul", "Gemm", "Einsum", "Attention", "MultiHeadAttention"),
    "lstm": ("LSTM", "DynamicQuantizeLSTM"),
}


def exports(folder: Path, fresh: bool = True) -> tuple[Path, Path]:
    """The reference's int8 export (made once, cached) and anyner's exports of ``folder`` (made
    anew unless ``fresh`` is False, so that they are today's exporter's)."""
    ref_dir = folder.with_name(folder.name + "-ref-onnx")
    ours_dir = folder.with_name(folder.name + "-anyner-onnx")
    if not (ref_dir / "model_quantized.onnx").is_file():
        from gliner import GLiNER

        model = GLiNER.from_pretrained(str(folder), local_files_only=True)
        model.export_to_onnx(ref_dir, quantize=True)
    if not (ours_dir / "model_int8.onnx").is_file() or fresh:  # anyner's graphs follow its code
        sys.path.insert(0, str(REPO / "src"))
        from anyner import AnyNER
        from anyner.export_onnx import export_onnx

        export_onnx(AnyNER.from_pretrained(folder), ours_dir, quantize="int8")
    return ref_dir, ours_dir


def worker(runtime: str, folder: str, ref_dir: str, ours_dir: str, reps: int) -> None:
    import torch

    threads = int(os.environ.get("BENCH_THREADS", "2"))
    torch.set_num_threads(threads)
    if runtime.startswith("reference"):
        from gliner import GLiNER

        if runtime == "reference-torch":
            model = GLiNER.from_pretrained(folder, local_files_only=True)
        else:
            model = GLiNER.from_pretrained(
                ref_dir, local_files_only=True, load_onnx_model=True, onnx_model_file="model_quantized.onnx"
            )

        def run(texts, labels, batch):
            return model.inference(texts, labels, threshold=0.5, flat_ner=True, batch_size=batch)

    else:
        sys.path.insert(0, str(REPO / "src"))
        from anyner import AnyNER

        if runtime == "anyner-torch":
            model = AnyNER.from_pretrained(folder)
        else:
            file = "model.onnx" if runtime == "anyner-fp32" else "model_int8.onnx"
            model = AnyNER.from_pretrained(ours_dir, backend="onnx", onnx_file=file)
            if runtime == "anyner-int8-spin":
                model.runner.session = session(Path(ours_dir) / file, threads, spin=True)
            if runtime == "anyner-int8-profile":
                print(json.dumps(profile(model, Path(ours_dir) / file, threads)))
                return

        def run(texts, labels, batch):
            return [
                [e.to_dict() for e in ents] for ents in model.predict_batch(texts, labels, batch_size=batch)
            ]

    results = {}
    for n_words, n_labels, batch in CASES:
        texts, pool = corpus(n_words, 32)
        labels = pool[:n_labels]
        run(texts[:batch], labels, batch)  # warm-up
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            out = run(texts, labels, batch)
            times.append(time.perf_counter() - t)
        words = sum(len(t.split()) for t in texts)
        results[f"{n_words}w x {n_labels}l x b{batch}"] = {
            "words_per_s": words / statistics.median(times),
            "entities": [[(e["start"], e["end"], e["label"]) for e in ents] for ents in out],
        }
    print(json.dumps(results))


def session(path: Path, threads: int, spin: bool = False, profile_prefix: str | None = None):
    """anyner's own ONNX Runtime session (``anyner.runtime._session``), with spinning threads
    (through ``ANYNER_ONNX_SPIN``) or a profile on request."""
    from unittest import mock

    from anyner.runtime import SPIN_ENV, _session

    with mock.patch.dict(os.environ, {SPIN_ENV: "1" if spin else "0"}):
        return _session(path, threads, profile_prefix=profile_prefix)


def profile(model, path: Path, threads: int) -> dict:
    """Per case: kernel-time shares by kind of op (a profiled pass after a warm-up), and the
    share of wall time spent outside ``session.run`` (an unprofiled pass)."""
    runner = model.runner
    plain = runner.session
    clock = {"inside": 0.0, "calls": 0}

    class Timed:  # a session whose run() calls are counted and timed
        def __init__(self, s):
            self.s = s

        def __getattr__(self, name):
            return getattr(self.s, name)

        def run(self, *a, **k):
            t = time.perf_counter()
            try:
                return self.s.run(*a, **k)
            finally:
                clock["inside"] += time.perf_counter() - t
                clock["calls"] += 1

    out = {}
    work = Path(tempfile.mkdtemp(prefix="anyner-ort-profile-"))
    for n_words, n_labels, batch in CASES:
        texts, pool = corpus(n_words, 32)
        labels = pool[:n_labels]
        runner.session = Timed(plain)
        model.predict_batch(texts[:batch], labels, batch_size=batch)  # warm-up
        clock["inside"] = 0.0
        t = time.perf_counter()
        model.predict_batch(texts, labels, batch_size=batch)
        wall = time.perf_counter() - t
        outside = 1 - clock["inside"] / wall
        prof = session(path, threads, profile_prefix=str(work / f"{n_words}-{n_labels}-{batch}"))
        runner.session = Timed(prof)
        clock["calls"] = 0
        model.predict_batch(texts[:batch], labels, batch_size=batch)  # warm-up, left out below
        warm_calls = clock["calls"]
        model.predict_batch(texts, labels, batch_size=batch)
        events = json.loads(Path(prof.end_profiling()).read_text())
        starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
        begin = starts[warm_calls]
        by_op: dict[str, float] = {}
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= begin:
                op = e.get("args", {}).get("op_name", "?")
                by_op[op] = by_op.get(op, 0.0) + e["dur"] / 1e6
        total = sum(by_op.values())
        kinds = {k: sum(v for op, v in by_op.items() if op in ops) for k, ops in ARITHMETIC.items()}
        kinds["other"] = total - sum(kinds.values())
        top = sorted(by_op.items(), key=lambda kv: -kv[1])[:6]
        out[f"{n_words}w x {n_labels}l x b{batch}"] = {
            "kernel_s": total,
            "share": {k: v / total for k, v in kinds.items()},
            "top_ops": [(op, v / total) for op, v in top],
            "outside_ort": outside,
            "wall_s": wall,
        }
    runner.session = plain
    return out


def f1_gap(limit: int | None) -> tuple[float, float, dict[str, float], dict[str, float]]:
    """OOD F1 of the built-in model with torch and with its int8 export."""
    sys.path.insert(0, str(REPO / "src"))
    from anyner import AnyNER
    from anyner.builtin import builtin_model_path
    from anyner.evaluate import evaluate_suite
    from anyner.export_onnx import export_onnx

    ood = sorted(p for p in (shared_dir() / "data" / "benchmark" / "ood").iterdir() if p.is_dir())
    # the export is cached under a digest of the built-in weights: a new built-in model is exported anew
    weights = Path(builtin_model_path()) / "model.safetensors"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"anyner-builtin-onnx-{digest}"
    if not (out / "model_int8.onnx").is_file():
        export_onnx(AnyNER.from_pretrained(builtin_model_path()), out, quantize="int8")
    torch_suite = evaluate_suite(AnyNER.from_pretrained(builtin_model_path()), ood, limit=limit)
    int8_suite = evaluate_suite(
        AnyNER.from_pretrained(out, backend="onnx", onnx_file="model_int8.onnx"), ood, limit=limit
    )
    per = lambda s: {d.name: d.scores.f1 for d in s.datasets}  # noqa: E731
    return torch_suite.average_f1, int8_suite.average_f1, per(torch_suite), per(int8_suite)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--checkpoint", type=Path, default=Path(tempfile.gettempdir()) / "anyner-bench-v21")
    p.add_argument("--f1-limit", type=int, default=None, help="sentences per OOD set for the F1 check")
    p.add_argument("--skip-f1", action="store_true")
    p.add_argument(
        "--profile", action="store_true", help="also spinning threads and a profile of anyner int8"
    )
    p.add_argument("--only-f1", action="store_true", help="only the int8 F1 check (needs no quiet CPU)")
    p.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(*args.worker, reps=args.reps)
        return
    if args.only_f1:
        report_f1(args.f1_limit)
        return
    folder = build_checkpoint(args.checkpoint)
    ref_dir, ours_dir = exports(folder)
    env = dict(os.environ, BENCH_THREADS=str(args.threads), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               OMP_NUM_THREADS=str(args.threads))  # fmt: skip
    runs = {}
    for rt in RUNTIMES + (PROFILED if args.profile else ()):
        cmd = [
            sys.executable,
            __file__,
            "--reps",
            str(args.reps),
            "--worker",
            rt,
            str(folder),
            str(ref_dir),
            str(ours_dir),
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{rt} failed:\n{done.stderr[-3000:]}")
        runs[rt] = json.loads(done.stdout.strip().splitlines()[-1])
    profiled = runs.pop("anyner-int8-profile", None)
    print(f"# {time.strftime('%Y-%m-%d')} | {cpu_name()} | {os.cpu_count()} CPUs | threads {args.threads}")
    print("words/s")
    print(
        f"{'case':<20}"
        + "".join(f"{rt:>17}" for rt in RUNTIMES)
        + f"{'int8/ref-torch':>16}{'int8/ref-int8':>15}"
    )
    for case in runs["reference-torch"]:
        ws = {rt: runs[rt][case]["words_per_s"] for rt in RUNTIMES}
        cells = "".join(f"{ws[rt]:>17.0f}" for rt in RUNTIMES)
        r1 = ws["anyner-int8"] / ws["reference-torch"]
        r2 = ws["anyner-int8"] / ws["reference-int8"]
        print(f"{case:<20}{cells}{r1:>15.1f}x{r2:>14.1f}x")

    def agree(a: str, b: str) -> str:
        pairs = [
            (x, y)
            for c in runs[a]
            for x, y in zip(runs[a][c]["entities"], runs[b][c]["entities"], strict=True)
        ]
        return f"{sum(x == y for x, y in pairs)}/{len(pairs)} texts"

    # A random head puts many spans near a tie; batch padding can flip a tie at the 1e-7 level.
    print(
        f"same entities: anyner fp32 ONNX vs anyner torch {agree('anyner-fp32', 'anyner-torch')}; "
        f"anyner torch vs reference torch {agree('anyner-torch', 'reference-torch')}"
    )
    if profiled:
        report_profile(runs, profiled)
    if not args.skip_f1:
        report_f1(args.f1_limit)


def report_profile(runs: dict, profiled: dict) -> None:
    print(
        "\nanyner int8: spinning threads, and where the time goes (kernel-time shares of one profiled pass)"
    )
    kinds = (*ARITHMETIC, "other")
    print(
        f"{'case':<20}{'sleep w/s':>10}{'spin w/s':>10}"
        + "".join(f"{k:>13}" for k in kinds)
        + f"{'outside ORT':>12}{'bound w/s':>10}{'bound/ref':>10}"
    )
    for case, prof in profiled.items():
        ws = runs["anyner-int8"][case]["words_per_s"]
        spin = runs["anyner-int8-spin"][case]["words_per_s"]
        arithmetic = sum(prof["share"][k] for k in ARITHMETIC) * (1 - prof["outside_ort"])
        bound = ws / arithmetic  # every other op and all Python at zero cost
        ratio = bound / runs["reference-torch"][case]["words_per_s"]
        cells = "".join(f"{prof['share'][k]:>12.0%} " for k in kinds)
        print(
            f"{case:<20}{ws:>10.0f}{spin:>10.0f}{cells}{prof['outside_ort']:>11.0%} {bound:>10.0f}{ratio:>9.1f}x"
        )
    print("top ops per case: " + "; ".join(
        f"{c}: " + ", ".join(f"{op} {sh:.0%}" for op, sh in p["top_ops"][:4]) for c, p in profiled.items()
    ))  # fmt: skip


def report_f1(limit: int | None) -> None:
    t, q, per_t, per_q = f1_gap(limit)
    scope = "full test sets" if limit is None else f"first {limit} sentences per set"
    print(f"built-in model, OOD F1 ({scope}): torch {t:.2f} | int8 ONNX {q:.2f} | drop {t - q:+.2f}")
    print("  per set (torch -> int8): " + ", ".join(f"{k} {per_t[k]:.1f}->{per_q[k]:.1f}" for k in per_t))


if __name__ == "__main__":
    main()
