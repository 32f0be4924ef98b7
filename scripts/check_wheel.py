"""Build anyner's wheel, check its size and contents, install it in a fresh venv and run it.

    python scripts/check_wheel.py                       # build into dist/, smoke test in a temp venv
    python scripts/check_wheel.py --venv .venv-light    # keep the venv (CI installs the test tools in it)
    python scripts/check_wheel.py --no-install          # build and inspect only
    python scripts/check_wheel.py --sdist               # also the sdist (python -m build), the wheel from it

The wheel is built from a copy of the tracked files (``git ls-files``; every file but the
usual caches when there is no git), so that nothing left in the working tree (a stray file
under ``resources/``, a ``build/`` folder) reaches it. With ``--sdist``, ``python -m build``
makes the sdist and the wheel from the sdist, so the sdist is checked complete too. Checks:

* size under ``--max-mb`` (default 100 MB);
* the version in its metadata is ``pyproject.toml``'s, and it has the ``anyner`` command;
* every file of the source package is in it, the same size: the built-in model (config,
  weights, int8 ONNX export, tokenizer, model card), the label maps, the web page, ``py.typed``;
  and nothing else at the top level: no ``tests/``, no virtualenv,
  no ``__pycache__`` or ``.pyc``;
* installed (with its dependencies from PyPI) into a fresh venv without the system's site
  packages, run from outside the source tree: ``anyner --version`` prints the version, one
  ``anyner predict`` with the built-in model prints the expected entities, and neither torch
  nor transformers was installed (the light install).

Exit status 0 when every check passes, 1 otherwise (each failure is printed).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "anyner"
# Files the wheel must hold whatever else changes: the built-in model and the web page.
REQUIRED = [
    "anyner/__init__.py",
    "anyner/cli.py",
    "anyner/resources/builtin/gliner_config.json",
    "anyner/resources/builtin/model.safetensors",
    "anyner/resources/builtin/model_int8.onnx",
    "anyner/resources/builtin/tokenizer.json",
    "anyner/resources/builtin/tokenizer_config.json",
    "anyner/resources/builtin/MODEL_CARD.md",
    "anyner/resources/builtin/calibration.json",
    "anyner/resources/builtin/relations/gliner_config.json",
    "anyner/resources/builtin/relations/model_delta.safetensors",
    "anyner/resources/label_synonyms.json",
    "anyner/web/index.html",
    "anyner/web/app.js",
    "anyner/py.typed",
]
SMOKE_TEXT = "Bill Gates founded Microsoft on April 4, 1975."
SMOKE_LABELS = "person,organization,date"
SMOKE_EXPECTED = {("Bill Gates", "person"), ("Microsoft", "organization"), ("April 4, 1975", "date")}
HEAVY = ("torch", "transformers")
IGNORED_PARTS = {
    ".git",
    ".venv",
    ".venv-light",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
}


def project_version() -> str:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]


def tracked_files() -> list[Path]:
    """The files to build from, relative to the repository: git's tracked files, else all but caches."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60
        ).stdout
        files = [Path(p) for p in out.decode("utf-8").split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        files = [p.relative_to(REPO) for p in REPO.rglob("*") if p.is_file()]
    return [
        p
        for p in files
        if (REPO / p).is_file()
        and not IGNORED_PARTS.intersection(p.parts)
        and not p.name.endswith((".pyc", ".egg-info"))
        and not any(part.endswith(".egg-info") for part in p.parts)
    ]


def build(dist: Path, isolation: bool, sdist: bool) -> tuple[Path, Path | None]:
    """Build from a clean copy of the tracked files; returns the wheel's path and the sdist's.

    With ``sdist``, ``python -m build`` makes the sdist and then the wheel from it (so the wheel
    proves the sdist complete); else ``pip wheel`` makes the wheel alone.
    """
    dist.mkdir(parents=True, exist_ok=True)
    for old in [*dist.glob("anyner-*.whl"), *dist.glob("anyner-*.tar.gz")]:
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="anyner-src-") as tmp:
        src = Path(tmp) / "anyner"
        for rel in tracked_files():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
        if sdist:
            cmd = [sys.executable, "-m", "build", "--outdir", str(dist), str(src)]
            cmd += [] if isolation else ["--no-isolation"]
        else:
            cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(dist)]
            cmd += [] if isolation else ["--no-build-isolation"]
        done = subprocess.run(
            cmd, env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(
                f"the build failed ({' '.join(cmd[1:4])}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )
    wheels = sorted(dist.glob("anyner-*.whl"))
    sdists = sorted(dist.glob("anyner-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != int(sdist):
        raise SystemExit(f"expected one anyner wheel in {dist}, found {[w.name for w in wheels + sdists]}")
    return wheels[0], sdists[0] if sdist else None


def inspect_sdist(path: Path) -> list[str]:
    """The failures of the sdist's contents check: the project files in, no venv, git or build folder."""
    import tarfile

    version = project_version()
    with tarfile.open(path) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    root = f"anyner-{version}/"
    inner = {n[len(root) :] for n in names if n.startswith(root)}
    failures = [f"sdist entry outside {root}: {n}" for n in names if not n.startswith(root)]
    for need in ("pyproject.toml", "README.md", "PKG-INFO", *(f"src/{r}" for r in REQUIRED)):
        if need not in inner:
            failures.append(f"missing from the sdist: {need}")
    for n in inner:
        if {".git", ".venv", ".venv-light", "build", "dist", "__pycache__"}.intersection(n.split("/")[:-1]):
            failures.append(f"venv, git, build or cache file in the sdist: {n}")
    print(f"sdist: {path.name}: {path.stat().st_size / 1e6:.1f} MB, {len(names)} files")
    return failures


def inspect_wheel(wheel: Path, max_mb: float) -> list[str]:
    """The failures of the size and contents checks (empty: all pass); prints a summary."""
    failures = []
    version = project_version()
    size_mb = wheel.stat().st_size / 1e6
    with zipfile.ZipFile(wheel) as z:
        infos = {i.filename: i for i in z.infolist() if not i.is_dir()}
        dist_info = f"anyner-{version}.dist-info"
        metadata = z.read(f"{dist_info}/METADATA").decode() if f"{dist_info}/METADATA" in infos else ""
        entry_points = (
            z.read(f"{dist_info}/entry_points.txt").decode()
            if f"{dist_info}/entry_points.txt" in infos
            else ""
        )
    if size_mb >= max_mb:
        failures.append(f"the wheel is {size_mb:.1f} MB, the limit is {max_mb:g} MB")
    if f"Version: {version}\n" not in metadata:
        failures.append(f"{dist_info}/METADATA missing or without 'Version: {version}'")
    if "anyner = anyner.cli:main" not in entry_points:
        failures.append("no console script 'anyner = anyner.cli:main' in entry_points.txt")
    for name in REQUIRED:
        if name not in infos:
            failures.append(f"missing from the wheel: {name}")
    # every file of the source package, the same size (py.typed included where the source has it)
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE.parent).as_posix()
        if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        if rel not in infos:
            failures.append(f"source file not in the wheel: {rel}")
        elif infos[rel].file_size != path.stat().st_size:
            failures.append(f"{rel}: {infos[rel].file_size} bytes in the wheel, {path.stat().st_size} in src")
    for name in infos:
        top = name.split("/", 1)[0]
        if top not in ("anyner", dist_info):
            failures.append(f"unexpected top-level entry in the wheel: {name}")
        if "__pycache__" in name or name.endswith(".pyc") or ".venv" in name or name.startswith("tests/"):
            failures.append(f"cache, venv or test file in the wheel: {name}")
    biggest = sorted(infos.values(), key=lambda i: i.file_size, reverse=True)[:4]
    print(f"wheel: {wheel.name}: {size_mb:.1f} MB compressed (limit {max_mb:g} MB), {len(infos)} files")
    for i in biggest:
        print(f"  {i.file_size / 1e6:8.1f} MB  {i.filename}")
    return failures


def smoke_test(wheel: Path, env_dir: Path) -> list[str]:
    """Install ``wheel`` into a fresh venv at ``env_dir`` and run it from outside the source tree."""
    failures = []
    print(f"venv: {env_dir} (no system site packages)")
    venv.EnvBuilder(clear=True, with_pip=True, system_site_packages=False).create(env_dir)
    bindir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    python, anyner = bindir / "python", bindir / "anyner"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", HF_HUB_OFFLINE="1")
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, env=env)
    with tempfile.TemporaryDirectory(prefix="anyner-smoke-") as cwd:

        def run(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=300)

        done = run(str(anyner), "--version")
        if done.returncode != 0 or done.stdout.strip() != f"anyner {project_version()}":
            failures.append(
                f"anyner --version: exit {done.returncode}, {done.stdout.strip()!r} {done.stderr}"
            )
        else:
            print(f"  {done.stdout.strip()}")
        done = run(str(anyner), "predict", SMOKE_TEXT, "--labels", SMOKE_LABELS, "--format", "jsonl")
        try:
            found = {(e["text"], e["label"]) for e in json.loads(done.stdout)["entities"]}
        except (ValueError, KeyError, TypeError):
            found = None
        if done.returncode != 0 or found != SMOKE_EXPECTED:
            failures.append(
                f"anyner predict: exit {done.returncode}, found {found}, stderr {done.stderr[-500:]}"
            )
        else:
            print(f"  anyner predict: {sorted(found)}")
        # the built-in relation model needs torch: a clear refusal, not a crash
        done = run(str(anyner), "predict", SMOKE_TEXT, "--labels", SMOKE_LABELS, "--relations", "founded")
        if done.returncode != 2 or "anyner[torch]" not in done.stderr:
            failures.append(
                f"anyner predict --relations: exit {done.returncode}, stderr {done.stderr[-500:]}"
            )
        else:
            print(f"  anyner predict --relations: refused, {done.stderr.strip().splitlines()[-1]}")
        probe = (
            "import importlib.util, json, anyner; print(json.dumps({'file': anyner.__file__, "
            f"'heavy': [m for m in {HEAVY!r} if importlib.util.find_spec(m)]}}))"
        )
        done = run(str(python), "-c", probe)
        info = json.loads(done.stdout) if done.returncode == 0 else {"file": "", "heavy": ["?"]}
        if not Path(info["file"]).resolve().is_relative_to(env_dir.resolve()):
            failures.append(f"anyner imported from {info['file']}, not from the venv")
        if info["heavy"]:
            failures.append(
                f"the light install pulled in {info['heavy']} (or the probe failed: {done.stderr})"
            )
        else:
            print(f"  importable in the venv: none of {', '.join(HEAVY)}; anyner from {info['file']}")
    return failures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dist", type=Path, default=REPO / "dist", help="where the wheel goes (default dist/)")
    p.add_argument("--wheel", type=Path, help="check this wheel instead of building one")
    p.add_argument("--max-mb", type=float, default=100.0, help="largest wheel accepted (default 100)")
    p.add_argument(
        "--venv", type=Path, help="create the smoke-test venv here and keep it (default: temporary)"
    )
    p.add_argument("--no-install", action="store_true", help="skip the venv smoke test")
    p.add_argument(
        "--sdist", action="store_true",
        help="build the sdist too, and the wheel from it, with `python -m build` (pip install build)",
    )  # fmt: skip
    p.add_argument(
        "--no-build-isolation", action="store_true", help="build with the installed setuptools (offline)"
    )
    args = p.parse_args(argv)
    failures = []
    if args.wheel is not None:
        wheel = args.wheel
    else:
        if args.sdist and importlib.util.find_spec("build") is None:
            raise SystemExit("--sdist needs the build package: pip install build")
        wheel, sdist = build(args.dist, isolation=not args.no_build_isolation, sdist=args.sdist)
        failures += inspect_sdist(sdist) if sdist is not None else []
    failures += inspect_wheel(wheel, args.max_mb)
    if not args.no_install:
        if args.venv is not None:
            failures += smoke_test(wheel, args.venv.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="anyner-venv-") as tmp:
                failures += smoke_test(wheel, Path(tmp) / "venv")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print("wheel check: " + ("passed" if not failures else f"{len(failures)} failure(s)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
