"""Training on 2 processes (torchrun, gloo on CPU): the weights of a single-process run with the
same global batch, within float rounding; killed with SIGKILL and resumed, the same again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import write_train_data

pytestmark = pytest.mark.slow  # each run starts torch in two processes

STEPS, SAVE_EVERY = 8, 2


@pytest.fixture(scope="module")
def no_dropout_bert(tmp_path_factory, tiny_bert_dir) -> Path:
    """The tiny encoder without its own dropout: then every random draw of a step is the seeded
    sampler's, and 2 processes can be compared with 1 weight for weight."""
    import shutil

    out = tmp_path_factory.mktemp("no_dropout_bert")
    for f in tiny_bert_dir.iterdir():
        shutil.copy(f, out / f.name)
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def config(folder: Path, encoder: Path, out: str, reduction: str = "sum") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = write_train_data(folder)
    path = folder / f"{out}.toml"
    path.write_text(f"""
[model]
encoder = "{encoder}"
hidden_size = 32
num_rnn_layers = 1
dropout = 0.0
max_width = 4

[train]
steps = {STEPS}
batch_size = 4
lr_encoder = 1e-3
lr_others = 3e-3
warmup_ratio = 0.1
drop_labels = 0.5
neg_ratio = 1.0
reduction = "{reduction}"
seed = 3

[output]
dir = "{folder / out}"
save_every = {SAVE_EVERY}
log_every = 2

[[data]]
path = "{data}"
""")
    return path


def env() -> dict[str, str]:
    return os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def torchrun(cfg: Path, *extra: str, **popen) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "anyner.train", str(cfg), *extra]  # fmt: skip
    return subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def single(cfg: Path, *extra: str) -> None:
    done = subprocess.run([sys.executable, "-m", "anyner.train", str(cfg), *extra], env=env(),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model" / "model.safetensors"))


def assert_close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst < 1e-4, f"max |delta weight| {worst:.2e}"


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_two_processes_give_the_single_process_weights(tmp_path, no_dropout_bert, reduction):
    one = config(tmp_path, no_dropout_bert, "one", reduction)
    two = config(tmp_path, no_dropout_bert, "two", reduction)
    single(one)
    proc = torchrun(two)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()[-3000:]
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"))
    # rank 0 alone wrote the metrics: one line per logged step, with the whole batch's loss
    a = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(2, STEPS + 1, 2))
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4)
    # the untrained start differs from the end: the comparison above is not trivially true
    start = load_file(str(next((tmp_path / "one" / "checkpoints").glob("step-*")) / "model.safetensors"))
    assert any(not torch.equal(start[k], weights(tmp_path / "one")[k]) for k in start)


def test_killed_with_sigkill_then_resumed_on_two_processes(tmp_path, no_dropout_bert):
    one = config(tmp_path, no_dropout_bert, "one")
    two = config(tmp_path, no_dropout_bert, "two")
    single(one)
    proc = torchrun(two, start_new_session=True)
    ckpts = tmp_path / "two" / "checkpoints"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (ckpts / f"step-{2 * SAVE_EVERY:08d}").is_dir():
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks, as a lost node would
    proc.wait()
    assert not (tmp_path / "two" / "model").exists(), "the run finished before the kill"
    again = torchrun(two, "--resume")
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out.decode()[-3000:]
    assert b"resumed from" in out
    assert_close(weights(tmp_path / "one"), weights(tmp_path / "two"))
