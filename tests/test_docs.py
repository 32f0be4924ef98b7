"""The documentation site: every page's examples run as pasted, and the site builds offline.

Each page under ``docs/`` is one test: its ```bash and ```python blocks run in order in one
fresh folder (``bash -e -o pipefail`` / ``python``), offline, and must exit 0 without a
traceback. A block preceded by ``<!-- docs-test: skip REASON -->`` is skipped; a skip
marker without a reason is an error. ``mkdocs build --strict`` must pass and the pages must
not load anything from a CDN or Google Fonts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(
    r"(?:<!-- docs-test: skip(?P<skip>[^\n]*?) -->\n)?```(?P<lang>bash|python)\n(?P<code>.*?)```", re.S
)


def page_blocks(page: Path) -> list[tuple[str, str, int]]:
    """(lang, code, line) of each block to run; raises for a skip marker with no reason."""
    text = page.read_text(encoding="utf-8")
    out = []
    for m in BLOCK.finditer(text):
        line = text[: m.start("code")].count("\n") + 1
        if m["skip"] is not None:
            if not m["skip"].strip():
                raise AssertionError(f"{page.name}:{line}: a docs-test skip marker needs a reason")
            continue
        out.append((m["lang"], m["code"], line))
    return out


PAGES = sorted(DOCS.glob("*.md"))


def test_every_page_is_in_the_site_and_most_examples_run():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert PAGES, "no documentation pages"
    for page in PAGES:
        assert f": {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"
    assert sum(len(page_blocks(p)) for p in PAGES) >= 10


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_examples_run(page, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    for lang, code, line in page_blocks(page):
        cmd = ["bash", "-e", "-o", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        report = f"{page.name}:{line} exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert done.returncode == 0, report
        assert "Traceback" not in done.stderr, report


@pytest.mark.slow
def test_the_site_builds_offline_and_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install 'anyner[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install 'anyner[docs]')")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "anyner" in index
    for page in tmp_path.joinpath("site").rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "fonts.googleapis.com" not in html and "cdn.jsdelivr" not in html, page
    # the offline plugin writes page.html, not page/index.html
    api = (tmp_path / "site" / "api.html").read_text(encoding="utf-8")
    assert "encode_labels" in api and "predict_batch" in api  # the API reference is generated
    cli = (tmp_path / "site" / "cli.html").read_text(encoding="utf-8")
    assert "cli-reference" not in cli  # the marker was replaced by docs/hooks.py
    for command in ("predict", "evaluate", "train", "annotate", "serve", "export onnx", "plot", "push"):
        assert f"usage: anyner {command}" in cli, command  # each subcommand's --help
    assert "--shutdown-timeout" in cli and "--max-body-bytes" in cli
    bench = (tmp_path / "site" / "benchmarks.html").read_text(encoding="utf-8")
    for png in sorted((DOCS / "img").glob("*.png")):
        assert f"img/{png.name}" in bench, png.name  # every chart is shown
        assert (tmp_path / "site" / "img" / png.name).is_file()
