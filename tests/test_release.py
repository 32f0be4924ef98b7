"""The release: one version everywhere (pyproject, ``anyner.__version__``, ``anyner --version``,
the changelog), a quick ``--version``, and the Hub upload (with a stand-in for the Hub)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import anyner
from anyner import _version

REPO = Path(__file__).resolve().parents[1]


def pyproject_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def test_the_version_is_the_one_in_pyproject():
    assert re.fullmatch(r"\d+\.\d+\.\d+", pyproject_version())
    assert anyner.__version__ == pyproject_version()


def test_anyner_version_prints_it_without_importing_torch():
    code = (
        "import sys\n"
        "from anyner.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'onnxruntime', 'numpy') if m in sys.modules)\n"
        "print('imported:', heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"anyner {pyproject_version()}", "imported: []"]


def test_outside_a_checkout_the_version_comes_from_the_metadata(monkeypatch, tmp_path):
    monkeypatch.setattr(_version, "_PACKAGE", tmp_path / "site-packages" / "anyner")
    monkeypatch.setattr(_version.metadata, "version", lambda name: "9.8.7" if name == "anyner" else "")
    assert _version.package_version() == "9.8.7"

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(_version.metadata, "version", missing)
    assert _version.package_version() == _version.UNKNOWN  # files copied without their metadata


def test_a_checkout_reads_only_the_project_table(monkeypatch, tmp_path):
    (tmp_path / "src" / "anyner").mkdir(parents=True)
    (tmp_path / "pyproject.toml").write_text(
        '[tool.other]\nversion = "1.0.0"\n\n[project]\nname = "anyner"\nversion = "3.1.4"\n'
        '\n[tool.x]\nversion = "2.0.0"\n'
    )
    monkeypatch.setattr(_version, "_PACKAGE", tmp_path / "src" / "anyner")
    assert _version.package_version() == "3.1.4"


def test_the_changelog_has_every_release_newest_first():
    text = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith("# Changelog\n") and "keepachangelog.com" in text
    releases = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", text, re.M)
    versions = [v for v, _ in releases]
    assert versions[0] == anyner.__version__, "the newest entry is not the package's version"
    assert "0.1.0" in versions
    assert versions == sorted(versions, key=lambda v: tuple(map(int, v.split("."))), reverse=True)
    dates = [d for _, d in releases]
    assert dates == sorted(dates, reverse=True)
    kinds = set(re.findall(r"^### (\w+)$", text, re.M))
    assert kinds and kinds <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}
