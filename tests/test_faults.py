"""Faults: a training run killed with SIGKILL (mid-step, mid-checkpoint, at random), damaged model
folders and training checkpoints, and a model that fails on one request inside the server."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from anyner import AnyNER, Entity
from anyner.checkpoint import CheckpointError
from anyner.train import Trainer
from anyner.train.config import config_from_dict
from anyner.train.loop import STATE_NAME
from tests.conftest import StubModel, in_thread, same_entities, spread_head, wait_until, write_train_data

REPO = Path(__file__).resolve().parents[1]
STEPS, SAVE_EVERY = 24, 3


# ---------------------------------------------------------------------- training killed with SIGKILL

# A process that imports torch and anyner once, then forks one child per training run (each
# a real process: it is SIGKILLed for real), so that a run costs its training, not the imports.
# stdin: one JSON job per line; stdout: {"pid"} when a child starts, {"code"} when it ends.
ZYGOTE = r"""
import json, os, sys, time, traceback
import torch
from anyner.train import Trainer
from anyner.train.config import config_from_dict


def child(job):
    torch.set_num_threads(1)
    log = open(job["log"], "a", buffering=1)

    def kill_at(point, step):  # the fault is injected here, by the test: the loop only names its points
        if job["kill_at"] == f"{point}:{step}":
            os.kill(os.getpid(), 9)

    trainer = Trainer(
        config_from_dict(job["config"]), progress=False, log=lambda m: print(m, file=log), on_checkpoint=kill_at
    )
    def before_optimizer_step(optimizer, args, kwargs):
        if trainer.step + 1 == job["kill_in_step"]:  # gradients computed, weights not yet updated
            os.kill(os.getpid(), 9)
        time.sleep(job["slow_step_s"])
    trainer.optimizer.register_step_pre_hook(before_optimizer_step)
    trainer.fit(resume=job["resume"])

for line in sys.stdin:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            child(job)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    print(json.dumps({"pid": pid}), flush=True)
    print(json.dumps({"code": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), flush=True)
"""


# `anyner train ...` (argv[2:]) as the CLI runs it, with a fault injected by the test: the process
# SIGKILLs itself at the checkpoint point argv[1] ("<point>:<step>"), as `kill -9` would.
CLI_KILLED_AT = r"""
import os, sys
from anyner import cli
from anyner.train import loop

where = sys.argv[1]
plain_init = loop.Trainer.__init__

def init(self, *args, **kwargs):
    plain_init(self, *args, **kwargs)
    self.on_checkpoint = lambda point, step: f"{point}:{step}" == where and os.kill(os.getpid(), 9)

loop.Trainer.__init__ = init
sys.exit(cli.main(sys.argv[2:]))
"""


class Runs:
    """Training runs in children of one zygote process."""

    def __init__(self, workdir: Path, encoder: Path):
        self.workdir, self.encoder = workdir, encoder
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        self.child: int | None = None  # the running child's pid
        self._buffer = b""

    def config(self, name: str) -> dict:
        folder = self.workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        return {
            "model": {"encoder": str(self.encoder), "hidden_size": 32, "num_rnn_layers": 1, "dropout": 0.4, "max_width": 4},
            "data": [{"path": str(write_train_data(folder))}],
            "train": {"steps": STEPS, "batch_size": 2, "lr_encoder": 1e-3, "lr_others": 3e-3, "warmup_ratio": 0.05,
                      "drop_labels": 0.5, "neg_ratio": 1.0, "seed": 0},
            "output": {"dir": str(folder / "run"), "save_every": SAVE_EVERY, "keep": 2, "log_every": 1},
        }  # fmt: skip

    def start(self, name: str, resume=False, kill_at=None, kill_in_step=0, slow_step_s=0.0) -> int:
        job = {
            "config": self.config(name), "resume": resume, "kill_in_step": kill_in_step, "slow_step_s": slow_step_s,
            "kill_at": kill_at, "log": str(self.workdir / name / "log.txt"),
        }  # fmt: skip
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        self.child = self._message(30)["pid"]
        return self.child

    def wait(self, timeout: float = 120) -> int:
        """The exit code of the last run: 0, 1 for an exception, -9 for SIGKILL."""
        code = self._message(timeout)["code"]
        self.child = None
        return code

    def _message(self, timeout: float) -> dict:
        """The zygote's next line, read unbuffered so that a hang fails the test instead of blocking it."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([fd], [], [], left)[0], (
                f"no answer from the zygote in {timeout} s"
            )
            chunk = os.read(fd, 4096)
            assert chunk, "the zygote died"
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def run(self, name: str, **kw) -> int:
        self.start(name, **kw)
        return self.wait()

    def close(self) -> None:
        if self.child is not None:  # a test failed while its run was going on
            os.kill(self.child, signal.SIGKILL)
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert_dir):
    runs = Runs(tmp_path_factory.mktemp("faults"), tiny_bert_dir)
    assert runs.run("reference") == 0, (runs.workdir / "reference" / "log.txt").read_text()
    yield runs
    runs.close()


def run_dir(runs: Runs, name: str) -> Path:
    return runs.workdir / name / "run"


def latest(runs: Runs, name: str) -> Path | None:
    return Trainer.latest_checkpoint(SimpleNamespace(ckpt_dir=run_dir(runs, name) / "checkpoints"))


def logged_steps(runs: Runs, name: str) -> list[int]:
    """The steps the run logged, one line each (log_every=1): every step up to the last was done."""
    path = run_dir(runs, name) / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().split("\n")[:-1]:  # complete lines only
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):  # pragma: no cover - a line cut by a kill
            pass
    return steps


def check_checkpoints(runs: Runs, name: str, steps_done: int) -> Path | None:
    """Every complete checkpoint loads; the latest lost at most one interval. Returns the latest."""
    ckpt_dir = run_dir(runs, name) / "checkpoints"
    complete = sorted(p for p in ckpt_dir.glob("step-*") if (p / STATE_NAME).is_file())
    if not complete:  # killed before its first checkpoint
        assert steps_done <= SAVE_EVERY
        return None
    for folder in complete:
        state = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
        assert state["step"] == int(folder.name.split("-")[1])
        model = AnyNER.from_pretrained(folder)  # the checkpoint is a model folder too
        assert isinstance(model.predict("Alice lives in Paris .", ["person", "city"], threshold=0.0), list)
    found = latest(runs, name)
    assert found is not None and found in complete
    assert steps_done - int(found.name.split("-")[1]) <= SAVE_EVERY, (found.name, steps_done)
    return found


def assert_same_final_weights(runs: Runs, name: str) -> None:
    want = load_file(run_dir(runs, "reference") / "model" / "model.safetensors")
    got = load_file(run_dir(runs, name) / "model" / "model.safetensors")
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key


@pytest.mark.parametrize(
    ("case", "kill", "steps_done", "expect_latest"),
    [
        ("mid-step", {"kill_in_step": 5}, 4, 3),  # dies in step 5's optimizer step
        ("model-written", {"kill_at": "checkpoint-model:6"}, 6, 3),  # temp folder without trainer state
        ("all-written", {"kill_at": "checkpoint-rename:6"}, 6, 3),  # complete temp folder, not renamed
        ("renamed", {"kill_at": "checkpoint-latest:6"}, 6, 3),  # step-6 in place, `latest` still says 3
    ],
)
@pytest.mark.slow
def test_kill_9_then_resume_ends_like_an_uninterrupted_run(runs, case, kill, steps_done, expect_latest):
    assert runs.run(case, **kill) == -signal.SIGKILL
    found = check_checkpoints(runs, case, steps_done)
    assert found.name == f"step-{expect_latest:08d}"
    assert not (run_dir(runs, case) / "model").exists(), "the run did not finish"
    assert runs.run(case, resume=True) == 0, (runs.workdir / case / "log.txt").read_text()
    log = (runs.workdir / case / "log.txt").read_text()
    assert f"resumed from {found} at step {expect_latest}" in log
    assert_same_final_weights(runs, case)
    leftovers = sorted(p.name for p in (run_dir(runs, case) / "checkpoints").iterdir())
    assert leftovers == ["latest", f"step-{STEPS - SAVE_EVERY:08d}", f"step-{STEPS:08d}"]


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume(runs):
    """Four kills from outside, each once the run reaches a random step of a later stretch of the run,
    plus 0 to 150 ms (mid-step or mid-checkpoint, as it falls), each followed by a resume; the last
    resume finishes like an uninterrupted run."""
    rng, name = random.Random(7), "random"
    logged = lambda: logged_steps(runs, name)  # noqa: E731
    for low in (2, 7, 12, 17):
        target, before = rng.randint(low, low + 3), len(logged())
        pid = runs.start(name, resume=True, slow_step_s=0.01)  # resume=True starts afresh when empty
        deadline = time.monotonic() + 60
        while not any(step >= target for step in logged()[before:]):  # log_every=1: a line per step
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.002)
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(pid, signal.SIGKILL)
        assert runs.wait() == -signal.SIGKILL, "the run ended before the kill"
        check_checkpoints(runs, name, logged()[-1])
    assert runs.run(name, resume=True) == 0, (runs.workdir / name / "log.txt").read_text()
    assert_same_final_weights(runs, name)


# ---------------------------------------------------------------------- a damaged training checkpoint


@pytest.mark.slow
def test_the_cli_killed_mid_checkpoint_resumes_and_refuses_a_damaged_checkpoint(
    tmp_path, tiny_bert_dir, capsys
):
    """``python -m anyner.cli train`` killed while writing its second checkpoint; ``--resume`` (in-process)."""
    from anyner import cli

    write_train_data(tmp_path)
    config = tmp_path / "train.toml"
    config.write_text(
        f'[model]\nencoder = "{tiny_bert_dir}"\nhidden_size = 32\nnum_rnn_layers = 0\nmax_width = 4\n'
        '[[data]]\npath = "train.jsonl"\n[train]\nsteps = 9\nbatch_size = 2\n'
        '[output]\ndir = "run"\nsave_every = 3\nlog_every = 100\n'
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(
        [sys.executable, "-c", CLI_KILLED_AT, "checkpoint-rename:6", "train", str(config)],
        env=env, capture_output=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == [".step-00000006.tmp", "latest", "step-00000003"]

    state = ckpts / "step-00000003" / STATE_NAME
    good = state.read_bytes()
    state.write_bytes(good[:100])
    assert cli.main(["train", str(config), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"\nanyner: error: cannot resume from step-00000003: cannot read {state}: " in err
    state.write_bytes(good)
    assert cli.main(["train", str(config), "--resume"]) == 0
    assert f"resumed from {ckpts / 'step-00000003'} at step 3" in capsys.readouterr().err
    assert sorted(p.name for p in ckpts.iterdir()) == [
        "latest",
        "step-00000003",
        "step-00000006",
        "step-00000009",
    ]
    assert (
        AnyNER.from_pretrained(tmp_path / "run" / "model").predict("Alice lives in Paris .", ["person"])
        is not None
    )


def nine_step_config(tmp_path, encoder, **output):
    return config_from_dict(
        {
            "model": {"encoder": str(encoder), "hidden_size": 32, "num_rnn_layers": 0, "max_width": 4},
            "data": [{"path": str(write_train_data(tmp_path))}],
            "train": {"steps": 9, "batch_size": 2, "warmup_ratio": 0.0},
            "output": {"dir": str(tmp_path / "run"), "save_every": 3, "log_every": 100, **output},
        }
    )


def test_a_damaged_training_checkpoint_stops_resume_with_a_clear_error(tmp_path, tiny_bert_dir):
    """No silent fall-back: the error names the checkpoint, the file, the problem and the way back."""
    quiet = dict(progress=False, log=lambda m: None)
    Trainer(nine_step_config(tmp_path, tiny_bert_dir), **quiet).fit(until_step=6)
    ckpts = tmp_path / "run" / "checkpoints"
    state, weights = ckpts / "step-00000006" / STATE_NAME, ckpts / "step-00000006" / "model.safetensors"
    good_state, good_weights = state.read_bytes(), weights.read_bytes()

    def resume_error() -> str:
        with pytest.raises(CheckpointError) as info:
            Trainer(nine_step_config(tmp_path, tiny_bert_dir), **quiet).fit(resume=True)
        return str(info.value)

    state.write_bytes(good_state[: len(good_state) // 2])
    message = resume_error()
    assert message.startswith("cannot resume from step-00000006: cannot read ") and str(state) in message
    assert f"to resume from the checkpoint before it, delete {ckpts / 'step-00000006'}" in message
    state.write_bytes(b"not a torch file")
    assert str(state) in resume_error()
    torch.save({"step": 6}, state)
    assert "is not a trainer state" in resume_error()
    state.write_bytes(good_state)

    weights.write_bytes(good_weights[:1000])
    message = resume_error()
    assert f"cannot read weights from {weights}" in message and "step-00000006" in message
    weights.write_bytes(good_weights)

    other = nine_step_config(tmp_path, tiny_bert_dir)
    other.model.network = dataclasses.replace(
        other.model.network, hidden_size=64
    )  # the config changed since the checkpoint was written
    with pytest.raises(CheckpointError, match=r"step-00000006: .*(shape|does not fit this run)"):
        Trainer(other, **quiet).fit(resume=True)

    # the way back the message gives: without the damaged folder, resume starts from the one before
    state.write_bytes(b"damaged")
    shutil.rmtree(ckpts / "step-00000006")
    logs: list[str] = []
    trainer = Trainer(nine_step_config(tmp_path, tiny_bert_dir), progress=False, log=logs.append)
    trainer.fit(resume=True)
    assert f"resumed from {ckpts / 'step-00000003'} at step 3" in logs and trainer.step == 9


# ---------------------------------------------------------------------- damaged model folders


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_bert_dir) -> Path:
    torch.manual_seed(0)
    model = AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0)
    return model.save_pretrained(tmp_path_factory.mktemp("saved") / "m")


def rewrite_config(**changes):
    def change(folder: Path) -> None:
        config = json.loads((folder / "gliner_config.json").read_text())
        for key, value in changes.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key] = {**config[key], **value}
            else:
                config[key] = value
        (folder / "gliner_config.json").write_text(json.dumps(config))

    return change


def rewrite_weights(change):
    def apply(folder: Path) -> None:
        state = load_file(folder / "model.safetensors")
        change(state)
        save_file(state, folder / "model.safetensors")

    return apply


def as_pickle(cut: bool):
    def apply(folder: Path) -> None:
        state = load_file(folder / "model.safetensors")
        (folder / "model.safetensors").unlink()
        torch.save(state, folder / "pytorch_model.bin")
        data = (folder / "pytorch_model.bin").read_bytes()
        (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2] if cut else os.urandom(4096))

    return apply


def nan_in(state):
    state["prompt_rep_layer.0.weight"][0, 0] = float("nan")


def inf_in(state):
    state["span_rep_layer.span_rep_layer.out_project.0.bias"][1] = float("inf")


def ints_in(state):
    state["prompt_rep_layer.0.bias"] = state["prompt_rep_layer.0.bias"].to(torch.int64)


# The cases tests/test_checkpoint.py does not cover (it has: no folder, no config, bad JSON, no
# weights, truncated safetensors, a wrong shape, missing and unexpected keys, config/weights mismatch).
DAMAGE = {
    "random bytes": (
        lambda f: (f / "model.safetensors").write_bytes(os.urandom(8192)),
        r"cannot read weights from {f}/model\.safetensors: ValueError: header length \d+ is past the end",
    ),
    "empty weights": (
        lambda f: (f / "model.safetensors").write_bytes(b""),
        r"cannot read weights from {f}/model\.safetensors",
    ),
    "random pytorch_model.bin": (as_pickle(cut=False), r"cannot read weights from {f}/pytorch_model\.bin"),
    "truncated pytorch_model.bin": (as_pickle(cut=True), r"cannot read weights from {f}/pytorch_model\.bin"),
    "NaN weight": (
        rewrite_weights(nan_in),
        r"{f}/model\.safetensors: prompt_rep_layer\.0\.weight holds NaN or infinite",
    ),
    "inf weight": (
        rewrite_weights(inf_in),
        r"{f}/model\.safetensors: span_rep_layer.*bias holds NaN or infinite",
    ),
    "integer weight": (rewrite_weights(ints_in), r"prompt_rep_layer\.0\.bias holds torch\.int64 values"),
    "config not UTF-8": (
        lambda f: (f / "gliner_config.json").write_bytes(b'{"name": "\xff\xfe"}'),
        r"{f}/gliner_config\.json is not UTF-8 text",
    ),
    "config empty": (
        lambda f: (f / "gliner_config.json").write_text(""),
        r"{f}/gliner_config\.json is not valid JSON",
    ),
    "config a list": (
        lambda f: (f / "gliner_config.json").write_text("[]"),
        r"{f}/gliner_config\.json: expected a JSON object",
    ),
    "config field of the wrong type": (
        rewrite_config(hidden_size="wide"),
        r"{f}/gliner_config\.json: invalid literal for int",
    ),
    "encoder_config of an unknown type": (
        rewrite_config(encoder_config={"model_type": "nonsense"}),
        r"{f}/gliner_config\.json: its encoder_config is not valid: .*unknown model_type 'nonsense'",
    ),
    "encoder_config field of the wrong type": (
        rewrite_config(encoder_config={"num_hidden_layers": "two"}),
        r"{f}/gliner_config\.json: its encoder_config is not valid",
    ),
    "encoder_config from another model": (
        rewrite_config(encoder_config={"hidden_size": 64, "num_attention_heads": 2}),
        r"{f}/model\.safetensors: .* has shape .* do not belong together",
    ),
    "tokenizer.json damaged": (
        lambda f: (f / "tokenizer.json").write_text('{"version": '),
        r"cannot load the tokenizer from {f}/tokenizer\.json",
    ),
    "tokenizer_config.json damaged": (
        lambda f: (f / "tokenizer_config.json").write_bytes(b"\x00\x01garbage"),
        r"cannot load the tokenizer from {f}/tokenizer_config\.json",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_model_folder_gets_an_error_naming_file_and_problem(saved, tmp_path, case):
    damage, pattern = DAMAGE[case]
    folder = shutil.copytree(saved, tmp_path / "m")
    damage(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' own warnings about the damaged files
        with pytest.raises(CheckpointError, match=pattern.format(f=re.escape(str(folder)))):
            AnyNER.from_pretrained(folder)


# ---------------------------------------------------------------------- a model that fails in the server

POISON = "This text makes the model raise."
LABELS = ["person", "city"]


@pytest.fixture(scope="module")
def serve():
    """``anyner.serve`` and FastAPI's TestClient (the tests skip without FastAPI)."""
    pytest.importorskip("fastapi", reason="the server needs FastAPI")
    with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 to httpx
        warnings.filterwarnings("ignore", message=".*httpx", category=UserWarning)
        from fastapi.testclient import TestClient
    import anyner.serve

    return SimpleNamespace(
        TestClient=TestClient, create_app=anyner.serve.create_app, MicroBatcher=anyner.serve.MicroBatcher
    )


@pytest.fixture(scope="module")
def tiny_model(tiny_bert_dir) -> AnyNER:
    torch.manual_seed(0)
    return spread_head(AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0))


def test_a_request_the_model_fails_on_gets_500_and_the_batch_around_it_is_served(
    serve, tiny_model, monkeypatch
):
    """The poisoned text shares a micro-batch with good ones: only its request fails."""
    real, calls, gate = tiny_model.predict_batch, [], threading.Event()

    def predict_batch(texts, labels, **kw):
        calls.append(list(texts))
        if len(calls) == 1:
            assert gate.wait(30)  # hold the worker so that the next requests queue up together
        if POISON in texts:
            raise RuntimeError("the model broke on this input")
        return real(texts, labels, **kw)

    monkeypatch.setattr(tiny_model, "predict_batch", predict_batch)
    goods = [
        "Alice lives in Paris .",
        "Bob Smith visited London yesterday .",
        "Carol met the mayor of Rome .",
    ]
    with serve.TestClient(serve.create_app(tiny_model, batch_size=16, max_wait_ms=100)) as client:
        queued = client.app.state.batcher.queue
        post = lambda body: client.post("/v1/entities", json=body)  # noqa: E731
        first = in_thread(post, {"text": "first", "labels": LABELS})
        wait_until(lambda: len(calls) == 1)
        bodies = [
            {"text": goods[0], "labels": LABELS, "threshold": 0.0},
            {"text": POISON, "labels": LABELS, "threshold": 0.0},
            {"texts": goods[1:], "labels": LABELS, "threshold": 0.0},
            {"texts": [goods[0], POISON], "labels": LABELS, "threshold": 0.0},  # a batch holding the poison
        ]
        joins = []
        for n, body in enumerate(bodies, 1):
            joins.append(in_thread(post, body))
            wait_until(lambda n=n: queued.qsize() == n)
        gate.set()
        assert first().status_code == 200
        single, poisoned, batch, poisoned_batch = (j() for j in joins)
        for r in (poisoned, poisoned_batch):
            assert r.status_code == 500 and r.headers["content-type"] == "application/json"
            assert r.json() == {"detail": "the model failed: RuntimeError: the model broke on this input"}
        assert single.status_code == 200 and batch.status_code == 200
        # each request was run again on its own (below): compare with the same batches, since
        # padding moves near-tied scores of this saturated tiny head by a rounding error
        want = real(goods[:1], LABELS, threshold=0.0) + real(goods[1:], LABELS, threshold=0.0)
        same_entities(single.json()["entities"], [e.to_dict() for e in want[0]])
        for got, ents in zip(batch.json()["results"], want[1:], strict=True):
            same_entities(got["entities"], [e.to_dict() for e in ents])
        # the four queued requests went to the model together, failed, then one by one
        assert calls[1] == [goods[0], POISON, *goods[1:], goods[0], POISON]
        assert sorted(map(tuple, calls[2:])) == sorted(
            [(goods[0],), (POISON,), tuple(goods[1:]), (goods[0], POISON)]
        )
        # the server goes on: more requests, poisoned or not, concurrent
        later = [in_thread(post, {"text": t, "labels": LABELS}) for t in [goods[2], POISON, goods[1]] * 3]
        assert [j().status_code for j in later] == [200, 500, 200] * 3
        assert client.get("/health").json() == {"status": "ok", "queued": 0}


class FirstLetter(StubModel):
    """Finds the first letter of each text; every call waits for ``gate``."""

    def __init__(self):
        super().__init__(gate=threading.Event())

    def entities(self, text, labels):
        return [Entity(0, 1, text[:1], labels[0], 0.9)]


def test_a_caller_that_goes_away_does_not_stop_the_worker(serve):
    """Before the fix the worker set the result of a cancelled future, died, and left the rest waiting."""
    stub = FirstLetter()

    async def scenario():
        batcher = serve.MicroBatcher(stub, max_wait_ms=50)
        predict = lambda text: batcher.predict([text], ["x"], 0.5, True, False)  # noqa: E731
        first = asyncio.create_task(predict("first"))
        while not stub.calls:
            await asyncio.sleep(0.005)
        gone, stays = asyncio.create_task(predict("gone")), asyncio.create_task(predict("stays"))
        while batcher.queue.qsize() < 2:
            await asyncio.sleep(0.005)
        gone.cancel()  # e.g. a client's timeout, or a server that cancels on disconnect
        await asyncio.sleep(0.01)
        stub.gate.set()
        assert (await asyncio.wait_for(first, 10))[0][0].text == "f"
        assert (await asyncio.wait_for(stays, 10))[0][0].text == "s"
        assert (await asyncio.wait_for(predict("later"), 10))[0][0].text == "l"
        assert batcher._thread.is_alive()
        batcher.close()

    asyncio.run(scenario())
    texts = [call["texts"] for call in stub.calls]
    assert ["gone"] not in texts and ["stays"] in texts


def test_requests_queued_when_the_batcher_closes_get_an_error_not_a_hang(serve):
    stub = FirstLetter()

    async def scenario():
        batcher = serve.MicroBatcher(stub)
        running = asyncio.create_task(batcher.predict(["a"], ["x"], 0.5, True, False))
        while not stub.calls:
            await asyncio.sleep(0.005)
        waiting = asyncio.create_task(batcher.predict(["b"], ["x"], 0.5, True, False))
        while batcher.queue.qsize() < 1:
            await asyncio.sleep(0.005)
        closing = asyncio.create_task(asyncio.to_thread(batcher.close, 0.2))  # the worker is busy
        await asyncio.wait_for(closing, 10)
        with pytest.raises(RuntimeError, match="shutting down"):
            await asyncio.wait_for(waiting, 10)
        stub.gate.set()
        assert len(await asyncio.wait_for(running, 10)) == 1

    asyncio.run(scenario())
