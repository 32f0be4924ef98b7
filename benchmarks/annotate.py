"""``anyner annotate`` throughput: 1 and 2 local workers, and a local Ray cluster, on one corpus.

The corpus is real sentences from the training pool (``../shared/data/train``, wikigold and
wnut17: text only, no labels read), written as JSONL, repeated to ``--records``. Each mode
runs the same CLI command into a fresh folder (the built-in model, 4 labels, shards of 500),
and the script prints records/s and words/s, the scaling efficiency of 2 workers over 1
(speed-up / 2) and the overhead of Ray over plain processes (same workers and threads), then
checks that the three output folders hold the same records.

    python benchmarks/annotate.py [--records 4000] [--skip-ray]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _report import cpu_name  # noqa: E402

TRAIN = ROOT.parent / "shared" / "data" / "train"


def sentences() -> list[str]:
    out: list[str] = []
    for path in (
        TRAIN / "wikigold" / "CONLL-format" / "data" / "wikigold.conll.txt",
        TRAIN / "wnut17" / "wnut17train.conll",
    ):
        words: list[str] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if not parts or parts[0] == "-DOCSTART-":
                if len(words) >= 5:
                    out.append(" ".join(words))
                words = []
            else:
                words.append(parts[0])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    if not TRAIN.is_dir():
        print(f"{TRAIN} is absent: this benchmark reads its sentences", file=sys.stderr)
        return 2
    from anyner.annotate import read_output

    texts = sentences()
    texts = (texts * (args.records // len(texts) + 1))[: args.records]
    words = sum(len(t.split()) for t in texts)
    cores = len(os.sched_getaffinity(0))
    cpu = cpu_name()
    print(f"{cpu}, {cores} cores; {len(texts)} records, {words / len(texts):.1f} words each")
    modes = [("1 worker, 2 threads", ["--workers", "1", "--threads", str(cores)]),
             ("1 worker, 1 thread", ["--workers", "1", "--threads", "1"]),
             ("2 workers, 1 thread each", ["--workers", "2", "--threads", "1"])]  # fmt: skip
    if not args.skip_ray:
        modes.append(
            ("Ray local, 2 actors, 1 thread each", ["--workers", "2", "--threads", "1", "--ray", "local"])
        )
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "corpus.jsonl"
        src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
        outs = {}
        for name, extra in modes:
            out = Path(tmp) / name.replace(" ", "_").replace(",", "")
            cmd = [sys.executable, "-m", "anyner.cli", "annotate", str(src), "--labels",
                   "person,organization,location,date", "--out", str(out), "--shard-size", "500",
                   "--no-progress", *extra]  # fmt: skip
            t = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - t
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            figures[name] = seconds
            outs[name] = out
            print(f"{name:<36} {seconds:7.1f} s  {len(texts) / seconds:7.1f} records/s  {words / seconds:8.0f} words/s"
                  "  (process start, model loads and writing included)")  # fmt: skip
        ref = read_output(outs[modes[2][0]])
        same = {name: read_output(out) == ref for name, out in outs.items() if name != modes[1][0]}
    one, two = figures["1 worker, 1 thread"], figures["2 workers, 1 thread each"]
    print(
        f"2 workers over 1 (1 thread each): speed-up {one / two:.2f}x, scaling efficiency {one / two / 2:.0%}"
    )
    print(
        f"2 workers (1 thread each) over 1 worker with 2 threads: {figures['1 worker, 2 threads'] / two:.2f}x"
    )
    if not args.skip_ray:
        ray = figures["Ray local, 2 actors, 1 thread each"]
        print(f"Ray over plain processes (2 x 1 thread): {ray / two:.2f}x the time ({ray - two:+.1f} s)")
    print("same records in every folder with 1 thread a worker:", same)
    return 0


if __name__ == "__main__":
    sys.exit(main())
