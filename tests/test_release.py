"""The release: one version everywhere (pyproject, ``anyner.__version__``, ``anyner --version``,
the changelog), a quick ``--version``, the wheel checker's inspection, and the Hub upload (with a
stand-in for the Hub: the real one is out of reach in tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import anyner
from anyner import _version, hub

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


# ---------------------------------------------------------------------- the wheel checker


def load_check_wheel():
    import importlib.util

    spec = importlib.util.spec_from_file_location("check_wheel", REPO / "scripts" / "check_wheel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_wheel_checker_names_what_is_missing_or_extra(tmp_path):
    check = load_check_wheel()
    version = pyproject_version()
    wheel = tmp_path / f"anyner-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name in check.REQUIRED:
            if "builtin/model" not in name:  # the weights and ONNX export left out
                z.write(REPO / "src" / name, name)
        z.writestr("tests/test_x.py", "")
        z.writestr("anyner/__pycache__/cli.cpython-311.pyc", "")
        z.writestr(f"anyner-{version}.dist-info/METADATA", f"Name: anyner\nVersion: {version}\n")
        z.writestr(
            f"anyner-{version}.dist-info/entry_points.txt", "[console_scripts]\nanyner = anyner.cli:main\n"
        )
    failures = check.inspect_wheel(wheel, max_mb=100)
    text = "\n".join(failures)
    assert "missing from the wheel: anyner/resources/builtin/model.safetensors" in text
    assert "missing from the wheel: anyner/resources/builtin/model_int8.onnx" in text
    assert "unexpected top-level entry in the wheel: tests/test_x.py" in text
    assert "cache, venv or test file in the wheel: anyner/__pycache__/cli.cpython-311.pyc" in text
    assert "source file not in the wheel: anyner/pipeline.py" in text
    assert not any("METADATA" in f or "console script" in f for f in failures)
    assert check.inspect_wheel(wheel, max_mb=0.001)[0].startswith("the wheel is ")


def test_the_sdist_check_names_what_is_missing_or_extra(tmp_path):
    import io
    import tarfile

    check = load_check_wheel()
    root = f"anyner-{pyproject_version()}"
    sdist = tmp_path / f"{root}.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name in ("pyproject.toml", "PKG-INFO", "src/anyner/cli.py", ".venv/bin/python", "stray.txt"):
            info = tarfile.TarInfo(f"{root}/{name}" if name != "stray.txt" else name)
            tar.addfile(info, io.BytesIO(b""))
    failures = check.inspect_sdist(sdist)
    assert "missing from the sdist: README.md" in failures
    assert "missing from the sdist: src/anyner/resources/builtin/model.safetensors" in failures
    assert "venv, git, build or cache file in the sdist: .venv/bin/python" in failures
    assert f"sdist entry outside {root}/: stray.txt" in failures
    assert "missing from the sdist: src/anyner/cli.py" not in failures


# ---------------------------------------------------------------------- push_to_hub


class FakeHub:
    """Stands in for ``huggingface_hub.HfApi``: records the calls, keeps a copy of the uploaded folder."""

    calls: list = []
    uploaded: Path | None = None
    fail: Exception | None = None

    def __init__(self, token=None):
        self.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id, **kw):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kw}))
        if self.fail is not None:
            raise self.fail

    def create_branch(self, repo_id, **kw):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kw}))

    def upload_folder(self, **kw):
        self.calls.append(("upload_folder", kw))
        shutil.copytree(kw["folder_path"], FakeHub.uploaded)
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{kw['repo_id']}/commit/abc"})()


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # only our stand-in is reached
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    monkeypatch.setattr(FakeHub, "calls", [])
    monkeypatch.setattr(FakeHub, "uploaded", tmp_path / "uploaded")
    monkeypatch.setattr(FakeHub, "fail", None)
    return FakeHub


@pytest.fixture(scope="module")
def tiny_model(tiny_bert_dir):
    from tests.conftest import spread_head

    return spread_head(anyner.AnyNER.from_encoder(tiny_bert_dir, hidden_size=32, num_rnn_layers=0))


def test_push_to_hub_uploads_a_folder_that_loads(fake_hub, tiny_model):
    from tests.conftest import same_entities

    url = tiny_model.push_to_hub("me/tiny-ner", private=True, commit_message="first", revision="v1")
    assert url == "https://huggingface.co/me/tiny-ner/commit/abc"
    calls = dict((name, kw) for name, kw in fake_hub.calls)
    assert calls["create_repo"] == {
        "repo_id": "me/tiny-ner",
        "private": True,
        "exist_ok": True,
        "repo_type": "model",
    }
    assert calls["create_branch"]["branch"] == "v1"
    assert calls["upload_folder"]["revision"] == "v1" and calls["upload_folder"]["commit_message"] == "first"
    files = {p.name for p in fake_hub.uploaded.iterdir()}
    assert {"gliner_config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files
    card = (fake_hub.uploaded / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: gliner\n") and 'AnyNER.from_pretrained("me/tiny-ner")' in card
    reloaded = anyner.AnyNER.from_pretrained(fake_hub.uploaded)
    text, labels = "Alice lives in Paris with Bob Smith .", ["person", "city"]
    want = tiny_model.predict(text, labels, threshold=0.3)
    assert want, "the test model finds nothing: the comparison would not test anything"
    same_entities(reloaded.predict(text, labels, threshold=0.3), want)


def test_push_to_hub_offline_says_what_to_do(monkeypatch, tiny_model):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(hub.HubError, match=r"HF_HUB_OFFLINE is set.*HF_TOKEN.*huggingface-cli login"):
        tiny_model.push_to_hub("me/tiny-ner")


def test_the_hub_librarys_own_offline_error_is_explained(monkeypatch, tmp_path):
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("huggingface_hub was imported before HF_HUB_OFFLINE=1 was set")
    monkeypatch.setattr(hub, "offline", lambda: False)  # past our own check, to the library's
    with pytest.raises(hub.HubError, match=r"switched off.*HF_TOKEN"):
        hub.push_folder(tmp_path, "me/tiny-ner")


def test_refused_and_missing_tokens_say_how_to_log_in(fake_hub, tmp_path):
    import httpx
    from huggingface_hub import errors

    request = httpx.Request("POST", "https://huggingface.co/api/repos/create")
    fake_hub.fail = errors.HfHubHTTPError("401 Unauthorized", response=httpx.Response(401, request=request))
    with pytest.raises(hub.HubError, match=r"refused the token \(HTTP 401\).*HF_TOKEN.*write to 'me'"):
        hub.push_folder(tmp_path, "me/tiny-ner")
    fake_hub.fail = errors.LocalTokenNotFoundError("Token is required")
    with pytest.raises(hub.HubError, match=r"no Hugging Face token found; set HF_TOKEN"):
        hub.push_folder(tmp_path, "me/tiny-ner")
    fake_hub.fail = httpx.ConnectError("Name or service not known")
    with pytest.raises(hub.HubError, match=r"could not be reached \(ConnectError"):
        hub.push_folder(tmp_path, "me/tiny-ner")


def test_a_bad_repo_id_is_an_argument_error(fake_hub, tmp_path):
    for bad in ("a/b/c", "", "me/bad name"):
        with pytest.raises(ValueError, match="is not a Hub repository id|must be a Hub repository id"):
            hub.push_folder(tmp_path, bad)
    assert fake_hub.calls == []


def test_anyner_push_offline_fails_before_the_model_loads(monkeypatch, capsys):
    from anyner.cli import EXIT_FAILED, EXIT_USAGE, main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", "/nonexistent-model", "me/tiny-ner"]) == EXIT_FAILED
    assert "HF_HUB_OFFLINE is set" in capsys.readouterr().err
    assert main(["push", "/nonexistent-model", "a/b/c"]) == EXIT_USAGE


def test_anyner_push_uploads(fake_hub, tiny_model, tmp_path, capsys):
    from anyner.cli import EXIT_OK, main

    folder = tiny_model.save_pretrained(tmp_path / "model")
    (tmp_path / "card.md").write_text("# My model\n\nF1 42 on my data.\n")
    assert (
        main(["push", str(folder), "me/tiny-ner", "--private", "--card", str(tmp_path / "card.md")])
        == EXIT_OK
    )
    assert "pushed" in capsys.readouterr().out
    assert (fake_hub.uploaded / "model.safetensors").is_file()
    assert (fake_hub.uploaded / "README.md").read_text() == "# My model\n\nF1 42 on my data.\n"
    assert dict(fake_hub.calls)["create_repo"]["private"] is True
    assert main(["push", str(folder), "me/tiny-ner", "--card", str(tmp_path / "none.md")]) == 2
    assert "cannot read the model card" in capsys.readouterr().err
