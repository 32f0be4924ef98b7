"""Load test of ``anyner serve``: a real server process on loopback, many concurrent clients.

Starts ``python -m anyner.cli serve`` on 127.0.0.1 with a free port (the built-in model
unless ``--model`` says otherwise), warms it up, then runs two phases:

* **main**: ``--clients`` clients (default 64) send a mix of requests for ``--duration``
  seconds (default 60), each waiting for its answer before the next: single short texts,
  200-word texts, batches of several texts, 3 to 25 labels, label descriptions with
  per-label thresholds and HTML. A 503 is honoured (the client waits ``Retry-After``).
* **overload**: a second server with a small queue (``--overload-queue``, default 4) and
  clients that retry a 503 after only 50 ms, so that the queue stays full. Every request
  must get an answer within ``--timeout``, every 503 must carry ``Retry-After`` and a JSON
  detail, and afterwards the server must drain its queue and answer normally.

Prints requests/s, p50/p90/p99 latency, the count of each status, the server's RSS
(``/proc/PID/status`` VmRSS) after warm-up and at the end (flagged when it grew more than
``--rss-growth``, default 10%), and a list of checks; the exit status is 1 when a check
fails. Only 127.0.0.1 is ever contacted; clients, duration and request count are bounded.

    python benchmarks/load.py                               # 64 clients, 60 s, then the overload phase
    python benchmarks/load.py --clients 16 --duration 10 --json load.json
    python benchmarks/load.py --model path/to/model --no-overload
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _report import cpu_name

HOST = "127.0.0.1"  # loopback only, on purpose: there is no option to point this elsewhere
MAX_CLIENTS = 256
MAX_DURATION = 600.0
OVERLOAD_RETRY_S = 0.05

# ---------------------------------------------------------------------------- the request mix

SENTENCES = [
    "Bill Gates founded Microsoft with Paul Allen in Albuquerque on April 4, 1975.",
    "Angela Merkel met Emmanuel Macron in Paris to discuss the European Union budget.",
    "The patient was given 500 mg of amoxicillin twice a day for ten days.",
    "Apple released the iPhone 15 in September 2023 at its Cupertino headquarters.",
    "The Supreme Court of the United States ruled on the case in June.",
    "Ada Lovelace wrote the first published algorithm for Charles Babbage's Analytical Engine.",
    "Python and Rust are popular programming languages among developers at Google.",
    "The Nile flows through Egypt and Sudan before reaching the Mediterranean Sea.",
    "Lionel Messi scored twice as Inter Miami beat Orlando City 3-1 on Saturday.",
    "Pfizer and BioNTech developed a vaccine against COVID-19 in less than a year.",
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris.",
    "Marie Curie won the Nobel Prize in Physics in 1903 and in Chemistry in 1911.",
    "Toyota plans to open a battery plant in North Carolina by 2025.",
    "The European Central Bank raised interest rates by 0.25 percentage points on Thursday.",
    "Shakespeare's Hamlet was first performed at the Globe Theatre in London.",
    "Doctors at the Mayo Clinic treated the infection with intravenous vancomycin.",
    "Amazon Web Services hosts Netflix, whose headquarters are in Los Gatos, California.",
    "The Amazon rainforest spans Brazil, Peru, Colombia and six other countries.",
    "Tim Berners-Lee invented the World Wide Web while working at CERN in Geneva.",
    "The court in The Hague sentenced him to twelve years in prison for war crimes.",
]
SCHEMAS = [  # the label sets clients use most: requests with the same set are batched together
    ["person", "organization", "location"],
    ["person", "organization", "date", "location", "event"],
    ["drug", "dose", "disease", "hospital"],
    ["company", "product", "date", "money"],
    ["programming language", "company", "person", "city", "country", "award", "date", "court"],
]
LABEL_POOL = sorted(
    {label for schema in SCHEMAS for label in schema}
    | {"river", "sea", "building", "vaccine", "sports team", "law", "treaty", "book", "play",
       "theatre", "percentage", "time", "nationality", "religion", "political party", "vehicle",
       "chemical", "gene", "protein", "website", "currency", "university", "ship", "planet"}
)  # fmt: skip
DESCRIPTIONS = {
    "person": "the name of a person",
    "organization": "a company, institution or agency",
    "date": "a calendar date or a year",
    "location": "a city, country or other place",
}


def short_text(rng: random.Random) -> str:
    return rng.choice(SENTENCES)


def long_text(rng: random.Random, words: int = 200) -> str:
    out: list[str] = []
    while len(out) < words:
        out += rng.choice(SENTENCES).split()
    return " ".join(out[:words])


def labels_for(rng: random.Random, n: int) -> list[str]:
    """A schema with ``n`` labels most of the time; now and then a random set (cache churn)."""
    if rng.random() < 0.1:
        return rng.sample(LABEL_POOL, n)
    fitting = [s for s in SCHEMAS if len(s) >= n]
    return rng.choice(fitting)[:n] if fitting else rng.sample(LABEL_POOL, n)


# kind -> (weight, request body builder)
KINDS: dict[str, tuple[int, Any]] = {
    "short": (40, lambda r: {"text": short_text(r), "labels": labels_for(r, 3)}),
    "long_200w": (20, lambda r: {"text": long_text(r), "labels": labels_for(r, 5)}),
    "batch_2-8": (
        20,
        lambda r: {"texts": [short_text(r) for _ in range(r.randint(2, 8))], "labels": labels_for(r, 4)},
    ),
    "labels_25": (8, lambda r: {"text": short_text(r), "labels": r.sample(LABEL_POOL, 25)}),
    "batch_3x200w": (5, lambda r: {"texts": [long_text(r) for _ in range(3)], "labels": labels_for(r, 8)}),
    "described_html": (
        7,
        lambda r: {
            "text": short_text(r),
            "labels": DESCRIPTIONS,
            "threshold": {"person": 0.4, "date": 0.6},
            "flat": r.random() < 0.5,
            "html": True,
        },
    ),
}


def pick(rng: random.Random) -> tuple[str, dict]:
    names = list(KINDS)
    kind = rng.choices(names, weights=[KINDS[k][0] for k in names])[0]
    return kind, KINDS[kind][1](rng)


# ---------------------------------------------------------------------------- the server process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in KiB, from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class Server:
    """``anyner serve`` in a subprocess on loopback; its log goes to a file."""

    def __init__(
        self, model: str | None, threads: int, extra: list[str], log_dir: Path, name: str, python: str = ""
    ):
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.cmd = [
            python or sys.executable,
            "-m",
            "anyner.cli",
            "serve",
            "--host",
            HOST,
            "--port",
            str(self.port),
        ]
        self.cmd += [
            "--log-level",
            "warning",
            *(["--model", model] if model else []),
            "--threads",
            str(threads),
        ]
        self.cmd += extra
        self.log_path = log_dir / f"server-{name}.log"
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the server exited with status {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# ---------------------------------------------------------------------------- the clients


@dataclass
class Phase:
    name: str
    clients: int
    duration: float
    texts: int = 0
    elapsed: float = 0.0
    latencies: list[tuple[str, int, float]] = field(default_factory=list)  # (kind, status, seconds)
    status: Counter = field(default_factory=Counter)  # "200", "503", ..., "timeout", "error:<type>"
    no_retry_after: int = 0  # 503 answers without a usable Retry-After
    bad_503_body: int = 0  # 503 answers without a JSON detail
    max_queued: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, KiB)

    def summary(self) -> dict[str, Any]:
        all_s = sorted(s for _, _, s in self.latencies)
        ok_s = sorted(s for _, st, s in self.latencies if st == 200)
        n = sum(self.status.values())
        per_kind = {}
        for kind in KINDS:
            ks = sorted(s for k, st, s in self.latencies if k == kind and st == 200)
            if ks:
                per_kind[kind] = {"n": len(ks), "p50_ms": pct(ks, 50) * 1e3, "p99_ms": pct(ks, 99) * 1e3}
        server_errors = sum(v for k, v in self.status.items() if k.isdigit() and int(k) >= 500 and k != "503")
        return {
            "clients": self.clients,
            "duration_s": self.elapsed,
            "requests": n,
            "requests_per_s": n / max(self.elapsed, 1e-9),
            "ok_per_s": self.status["200"] / max(self.elapsed, 1e-9),
            "texts_per_s": self.texts / max(self.elapsed, 1e-9),
            "latency_ms": {q: pct(all_s, q) * 1e3 for q in (50, 90, 99)}
            | {"max": max(all_s, default=0) * 1e3},
            "ok_latency_ms": {q: pct(ok_s, q) * 1e3 for q in (50, 90, 99)},
            "status": dict(sorted(self.status.items())),
            "5xx_not_503": server_errors,
            "503_without_retry_after": self.no_retry_after,
            "503_without_json_detail": self.bad_503_body,
            "max_queued": self.max_queued,
            "per_kind": per_kind,
        }


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q / 100))]


async def client_loop(
    http: httpx.AsyncClient, url: str, phase: Phase, seed: int, until: float, overload: bool, timeout: float
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until:
        kind, body = pick(rng)
        t0 = time.monotonic()
        try:
            r = await asyncio.wait_for(http.post(url + "/v1/entities", json=body), timeout)
        except (TimeoutError, httpx.TimeoutException):
            phase.status["timeout"] += 1
            phase.latencies.append((kind, 0, time.monotonic() - t0))
            continue
        except httpx.HTTPError as e:
            phase.status[f"error:{type(e).__name__}"] += 1
            phase.latencies.append((kind, 0, time.monotonic() - t0))
            await asyncio.sleep(0.1)
            continue
        took = time.monotonic() - t0
        phase.status[str(r.status_code)] += 1
        phase.latencies.append((kind, r.status_code, took))
        if r.status_code == 200:
            phase.texts += len(body["texts"]) if "texts" in body else 1
        elif r.status_code == 503:
            retry = r.headers.get("retry-after", "")
            if not retry.isdigit():
                phase.no_retry_after += 1
            try:
                if not isinstance(r.json().get("detail"), str):
                    phase.bad_503_body += 1
            except ValueError:
                phase.bad_503_body += 1
            # overload: come back at once to keep the queue full; main: do as the server asks
            await asyncio.sleep(OVERLOAD_RETRY_S if overload else float(retry or 1))


async def watch(http: httpx.AsyncClient, server: Server, phase: Phase, until: float) -> None:
    """Once a second: the server's RSS and its queue length."""
    t0 = time.monotonic()
    while time.monotonic() < until:
        phase.rss.append((time.monotonic() - t0, rss_kib(server.pid)["VmRSS"]))
        try:
            queued = (await http.get(server.url + "/health", timeout=5)).json()["queued"]
            phase.max_queued = max(phase.max_queued, queued)
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        await asyncio.sleep(1.0)


async def run_phase(
    server: Server, name: str, clients: int, duration: float, timeout: float, overload: bool, seed: int
) -> Phase:
    phase = Phase(name, clients, duration)
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout)) as http:
        start = time.monotonic()
        until = start + duration
        tasks = [
            asyncio.create_task(
                client_loop(http, server.url, phase, seed * 1000 + i, until, overload, timeout)
            )
            for i in range(clients)
        ]
        watcher = asyncio.create_task(watch(http, server, phase, until))
        await asyncio.gather(*tasks)  # each ends after its last answer (or its timeout)
        phase.elapsed = time.monotonic() - start
        watcher.cancel()
    return phase


async def drained(server: Server, timeout: float) -> tuple[bool, int]:
    """After a phase: the queue empties and a plain request gets 200. (drained?, final status)"""
    async with httpx.AsyncClient(timeout=timeout) as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (await http.get(server.url + "/health")).json()["queued"] == 0:
                break
            await asyncio.sleep(0.1)
        else:
            return False, 0
        r = await http.post(server.url + "/v1/entities", json={"text": SENTENCES[0], "labels": SCHEMAS[0]})
        return True, r.status_code


# ---------------------------------------------------------------------------- report


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def print_report(results: dict[str, Any]) -> None:
    cfg = results["config"]
    print(
        f"# {results['date']} | {results['machine']} | {os.cpu_count()} CPUs | model {cfg['model'] or 'builtin'}"
        f" | server threads {cfg['server_threads']} | backend {cfg['backend']}"
        f" | server python {cfg['server_python'] or sys.executable} | timeout {cfg['timeout']:.0f} s"
    )
    print(f"# command: {results['command']}")
    header = (
        f"{'phase':<9} {'clients':>7} {'secs':>5} {'requests':>8} {'req/s':>7} {'texts/s':>8} "
        f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'max ms':>7}  status counts"
    )
    print(header)
    print("-" * len(header))
    for name, ph in results["phases"].items():
        lat = ph["latency_ms"]
        counts = " ".join(f"{k}:{v}" for k, v in ph["status"].items())
        print(
            f"{name:<9} {ph['clients']:>7} {ph['duration_s']:>5.0f} {ph['requests']:>8} {ph['requests_per_s']:>7.1f} "
            f"{ph['texts_per_s']:>8.1f} {lat[50]:>7.0f} {lat[90]:>7.0f} {lat[99]:>7.0f} {lat['max']:>7.0f}  {counts}"
        )
    main = results["phases"].get("main")
    if main:
        print("\nmain phase, answers 200 by kind:")
        print(f"  {'kind':<15} {'n':>6} {'p50 ms':>7} {'p99 ms':>7}")
        for kind, k in main["per_kind"].items():
            print(f"  {kind:<15} {k['n']:>6} {k['p50_ms']:>7.0f} {k['p99_ms']:>7.0f}")
    for name, ph in results["phases"].items():
        print(
            f"{name}: 503 answers {ph['status'].get('503', 0)} (without Retry-After: "
            f"{ph['503_without_retry_after']}, without JSON detail: {ph['503_without_json_detail']}); "
            f"other 5xx {ph['5xx_not_503']}; most requests queued at a /health poll: {ph['max_queued']}"
        )
    rss = results.get("rss")
    if rss:
        print(
            f"server RSS (main phase): after warm-up {mib(rss['start_kib'])}, at the end (idle) {mib(rss['end_kib'])} "
            f"({rss['growth'] * 100:+.1f}%)"
            + ("   <-- FLAG: grew more than the limit" if rss["flag"] else "")
        )
        print(
            f"  sampled each second while loaded: median of the first sixth {mib(rss['first_sixth_median_kib'])}, "
            f"of the last sixth {mib(rss['last_sixth_median_kib'])}, highest {mib(rss['max_sample_kib'])}; "
            f"VmHWM (peak, warm-up included) {mib(rss['hwm_kib'])}"
        )
    print("\nchecks:")
    for name, ok in results["checks"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")


# ---------------------------------------------------------------------------- driver


async def warm_up(server: Server, clients: int, seconds: float, timeout: float) -> None:
    """Every kind of request once, then a short burst with all clients, so that RSS is steady."""
    async with httpx.AsyncClient(timeout=timeout) as http:
        rng = random.Random(12345)
        for build in (b for _, b in KINDS.values()):
            (await http.post(server.url + "/v1/entities", json=build(rng))).raise_for_status()
    if seconds > 0:
        await run_phase(server, "warm-up", clients, seconds, timeout, overload=False, seed=99)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder (default: the built-in model)")
    p.add_argument(
        "--clients", type=int, default=64, help=f"concurrent clients (default 64, at most {MAX_CLIENTS})"
    )
    p.add_argument("--duration", type=float, default=60.0, help="seconds of the main phase (default 60)")
    p.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of concurrent warm-up before RSS (default 5)"
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, help="most seconds one request may take (default 60)"
    )
    p.add_argument(
        "--server-threads",
        type=int,
        default=1,
        help="the server's --threads (torch or ONNX Runtime, default 1)",
    )
    p.add_argument(
        "--server-python", default="",
        help="the interpreter that runs the server, e.g. a venv with only the light install (default: this one)",
    )  # fmt: skip
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "torch", "onnx"),
        help="the server's --backend (default auto)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="the server's --batch-size (default 8)")
    p.add_argument(
        "--queue-size", type=int, default=64, help="the server's --queue-size, main phase (default 64)"
    )
    p.add_argument("--no-overload", action="store_true", help="skip the overload phase")
    p.add_argument(
        "--overload-queue", type=int, default=4, help="queue size in the overload phase (default 4)"
    )
    p.add_argument(
        "--overload-duration", type=float, default=10.0, help="seconds of the overload phase (default 10)"
    )
    p.add_argument(
        "--rss-growth", type=float, default=0.10, help="flag RSS growth above this fraction (default 0.10)"
    )
    p.add_argument("--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT")
    args = p.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        p.error(f"--clients must be in [1, {MAX_CLIENTS}]")
    for name in ("duration", "overload_duration"):
        if not 0 < getattr(args, name) <= MAX_DURATION:
            p.error(f"--{name.replace('_', '-')} must be in (0, {MAX_DURATION:.0f}] seconds")
    if not 0 <= args.warmup <= 60 or not 0 < args.timeout <= 300:
        p.error("--warmup must be in [0, 60] and --timeout in (0, 300] seconds")

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": cpu_name(),
        "command": " ".join(["python", *sys.argv]) if argv is None else "load.main(" + repr(argv) + ")",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "phases": {},
    }
    checks: dict[str, bool] = {}
    log_dir = Path(tempfile.mkdtemp(prefix="anyner-load-"))
    serve_opts = ["--batch-size", str(args.batch_size), "--backend", args.backend]

    server = Server(
        args.model, args.server_threads, [*serve_opts, "--queue-size", str(args.queue_size)], log_dir, "main",
        args.server_python,
    )  # fmt: skip
    try:
        server.wait_ready()
        asyncio.run(warm_up(server, args.clients, args.warmup, args.timeout))
        start = rss_kib(server.pid)
        phase = asyncio.run(run_phase(server, "main", args.clients, args.duration, args.timeout, False, 1))
        ok, final = asyncio.run(drained(server, args.timeout))
        time.sleep(0.5)
        end = rss_kib(server.pid)  # idle again: what stays, not the last batch's tensors
        alive = server.proc.poll() is None
    except BaseException:
        print(f"server log ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        server.stop()
    s = results["phases"]["main"] = phase.summary()
    growth = end["VmRSS"] / start["VmRSS"] - 1
    samples = [k for _, k in phase.rss] or [end["VmRSS"]]
    tenth = max(1, len(samples) // 6)  # the first and the last 10 s of a 60 s run
    results["rss"] = {
        "start_kib": start["VmRSS"], "end_kib": end["VmRSS"], "growth": growth, "hwm_kib": end["VmHWM"],
        "max_sample_kib": max(samples), "samples": phase.rss, "flag": growth > args.rss_growth,
        "first_sixth_median_kib": sorted(samples[:tenth])[tenth // 2],
        "last_sixth_median_kib": sorted(samples[-tenth:])[tenth // 2],
    }  # fmt: skip
    checks["main: no 5xx (503 aside)"] = s["5xx_not_503"] == 0
    checks["main: every request answered within the timeout, no connection errors"] = all(
        k.isdigit() for k in s["status"]
    )
    checks["main: every 503 has Retry-After and a JSON detail"] = (
        s["503_without_retry_after"] == 0 and s["503_without_json_detail"] == 0
    )
    checks["main: most answers are 200"] = s["status"].get("200", 0) > 0.95 * s["requests"]
    checks["main: server alive, queue drained, then a request gets 200"] = alive and ok and final == 200
    checks[f"main: RSS grew at most {args.rss_growth:.0%} after warm-up"] = not results["rss"]["flag"]

    if not args.no_overload:
        opts = [*serve_opts, "--queue-size", str(args.overload_queue), "--max-wait-ms", "5"]
        server = Server(args.model, args.server_threads, opts, log_dir, "overload", args.server_python)
        try:
            server.wait_ready()
            phase = asyncio.run(
                run_phase(server, "overload", args.clients, args.overload_duration, args.timeout, True, 2)
            )
            ok, final = asyncio.run(drained(server, args.timeout))
            alive = server.proc.poll() is None
        except BaseException:
            print(f"server log ({server.log_path}):\n{server.log_tail()}", file=sys.stderr)
            raise
        finally:
            server.stop()
        s = results["phases"]["overload"] = phase.summary()
        results["config"]["overload_server"] = opts
        checks["overload: the queue overflowed (some 503)"] = s["status"].get("503", 0) > 0
        checks["overload: every 503 has Retry-After and a JSON detail"] = (
            s["503_without_retry_after"] == 0 and s["503_without_json_detail"] == 0
        )
        checks["overload: no other 5xx"] = s["5xx_not_503"] == 0
        checks[f"overload: no hang (every request answered within {args.timeout:.0f} s)"] = all(
            k.isdigit() for k in s["status"]
        )
        checks["overload: some requests still served (200)"] = s["status"].get("200", 0) > 0
        checks["overload: server alive, queue drained, then a request gets 200"] = (
            alive and ok and final == 200
        )

    results["checks"] = checks
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    if all(checks.values()):
        shutil.rmtree(log_dir, ignore_errors=True)
        return 0
    print(f"server logs: {log_dir}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
