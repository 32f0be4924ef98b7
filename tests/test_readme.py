"""Every shell and Python example of the README runs as pasted, in a fresh folder, in order.

A block preceded by ``<!-- readme-test: skip REASON -->`` is skipped with that reason
(the set-up commands). The others run
with ``bash -e -o pipefail`` or ``python`` in one temporary folder shared by the README's
blocks in order, and fail on a non-zero exit or a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(
    r"(?:<!-- readme-test: skip (?P<skip>[^\n]*?) -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)

pytestmark = pytest.mark.slow


def blocks() -> list:
    text = README.read_text(encoding="utf-8")
    out = []
    for m in BLOCK.finditer(text):
        line = text[: m.start("code")].count("\n") + 1
        marks = [pytest.mark.skip(reason=m["skip"])] if m["skip"] else []
        out.append(pytest.param(m["lang"], m["code"], id=f"README.md:{line}-{m['lang']}", marks=marks))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("readme")


def test_the_readme_has_examples_and_runs_most():
    # The README is the first screen (set-up commands, one Python and one shell example, links);
    # the other examples live on the documentation pages, which tests/test_docs.py runs.
    params = blocks()
    assert len(params) >= 3
    assert params[0].marks, "the README starts with the set-up commands, which .ci/run runs"
    assert sum(not p.marks for p in params) >= 2  # the examples after the set-up commands really run


@pytest.mark.parametrize("lang, code", blocks())
def test_readme_example_runs(lang, code, workdir):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    if lang == "bash":
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code]
    else:
        cmd = [sys.executable, "-c", code]
    done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    report = f"exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    assert done.returncode == 0, report
    assert "Traceback" not in done.stderr, report
