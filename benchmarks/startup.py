"""Cold start, peak memory and installed size: anyner's light path, its torch path, and the reference.

For each, one process is started per repetition and times process start to its first printed
entity, on the built-in model's folder (a GLiNER folder, which the reference ``gliner``
package loads too), with the same sentence and labels:

* anyner light: ``anyner predict --backend onnx`` (ONNX Runtime + tokenizers; no torch or
  transformers imported). With ``--light-python`` the same command also runs in a venv
  that has only the light install.
* anyner torch: ``anyner predict --backend torch``.
* reference: ``python -c`` loading the folder with ``gliner.GLiNER.from_pretrained`` and
  printing ``predict_entities``.

Peak RSS is the child's maximum resident set (``getrusage`` of the children). Installed
size is the sum of the files of every distribution in the requirement closure of
``anyner`` (light), ``anyner[torch]`` and ``gliner``, as installed in this environment.

    python benchmarks/startup.py
    python benchmarks/startup.py --light-python /tmp/light/bin/python --reps 5
    python benchmarks/startup.py --png startup.png   # also draw the table (pip install 'anyner[plot]')
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

from _report import bar_chart, cpu_name, png_unavailable

REPO = Path(__file__).resolve().parents[1]
TEXT = "Bill Gates founded Microsoft on April 4, 1975."
LABELS = "person,organization,date"


def builtin_folder() -> str:
    return str(REPO / "src" / "anyner" / "resources" / "builtin")


REFERENCE = f"""
import sys
from gliner import GLiNER
model = GLiNER.from_pretrained(sys.argv[1], load_tokenizer=True)
for e in model.predict_entities({TEXT!r}, {LABELS.split(",")!r}):
    print(e["text"], e["label"], round(e["score"], 2), flush=True)
"""


def run_once(cmd: list[str]) -> tuple[float, str]:
    """(seconds from process start to the first line of output, the output)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    rest, err = proc.communicate(timeout=600)
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}): {err[-2000:]}")
    return elapsed, first + rest


def closure_size(requirement: str) -> tuple[float, int]:
    """MB of the installed files of ``requirement`` and everything it requires (with its extras)."""
    seen: set[str] = set()
    todo = [requirement]
    total = 0
    while todo:
        req = todo.pop()
        m = re.match(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?", req)
        if not m:
            continue
        name = m.group(1).lower().replace("_", "-")
        extras = {x.strip() for x in (m.group(2) or "[]")[1:-1].split(",") if x.strip()}
        key = name + str(sorted(extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if name not in {k.split("[")[0] for k in seen if k != key}:
            total += sum(f.size or 0 for f in (dist.files or []))
        for dep in dist.requires or []:
            spec, _, marker = dep.partition(";")
            if "extra ==" in marker:
                wanted = re.search(r"extra == ['\"]([^'\"]+)['\"]", marker).group(1)
                if wanted not in extras:
                    continue
            elif marker.strip():
                try:
                    from packaging.markers import Marker

                    if not Marker(marker).evaluate():
                        continue
                except Exception:
                    continue
            todo.append(spec)
    return total / 2**20, len({k.split("[")[0] for k in seen})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=3, help="processes per case (default 3)")
    p.add_argument("--light-python", help="python of a venv holding only the light install")
    p.add_argument("--png", type=Path, metavar="PATH", help="also draw the table as a bar chart PNG")
    args = p.parse_args()
    if args.png and png_unavailable():
        p.error(png_unavailable())
    folder = builtin_folder()
    anyner = [sys.executable, "-m", "anyner.cli", "predict", TEXT, "--labels", LABELS, "--model", folder]
    cases = [("anyner light (onnx int8)", [*anyner, "--backend", "onnx"])]
    if args.light_python:
        light = [
            args.light_python,
            "-m",
            "anyner.cli",
            "predict",
            TEXT,
            "--labels",
            LABELS,
            "--model",
            folder,
        ]
        cases.append(("anyner light install venv", light))
    cases += [
        ("anyner torch", [*anyner, "--backend", "torch"]),
        ("reference gliner (torch)", [sys.executable, "-c", REFERENCE, folder]),
    ]
    print(
        f"# {time.strftime('%Y-%m-%d')} | {cpu_name()} ({platform.machine()}) | {os.cpu_count()} CPUs | {args.reps} runs each"
    )
    print(f"{'case':<28} {'cold start s (median)':>22} {'peak RSS MB':>12}")
    results = {}
    for name, cmd in cases:
        times, peaks = [], []
        for _ in range(args.reps):
            t, _ = run_once(cmd)
            times.append(t)
            peaks.append(_peak_of(cmd))
        results[name] = (statistics.median(times), max(peaks))
        print(f"{name:<28} {statistics.median(times):>22.2f} {max(peaks):>12.0f}", flush=True)
    ref_t, ref_m = results["reference gliner (torch)"]
    for name, (t, m) in results.items():
        if name.startswith("anyner"):
            print(f"{name:<28} cold start {t / ref_t:.2f}x the reference's, peak RSS {m / ref_m:.2f}x")
    if args.png:
        names = list(results)
        columns = {
            "start to first entity (s, median)": [results[n][0] for n in names],
            "peak RSS (MB)": [results[n][1] for n in names],
        }
        texts = {k: [f"{v:.2f} s" if "(s" in k else f"{v:.0f} MB" for v in vs] for k, vs in columns.items()}
        print("wrote", bar_chart(args.png, "Process start to first entity, and peak memory", names, columns,
                                 machine=f"{cpu_name()}, {os.cpu_count()} CPUs", panels=True, texts=texts))  # fmt: skip
    print()
    print(f"{'installed (requirement closure)':<32} {'MB':>8} {'distributions':>14}")
    for req in ("anyner", "anyner[torch]", "gliner"):
        mb, n = closure_size(req)
        print(f"{req:<32} {mb:>8.0f} {n:>14}")


def _peak_of(cmd: list[str]) -> float:
    """Peak RSS (MB) of one run of ``cmd``, measured by a wrapper process of its own."""
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env, check=True
    )
    return int(out.stdout.strip().splitlines()[-1]) / 1024


if __name__ == "__main__":
    main()
