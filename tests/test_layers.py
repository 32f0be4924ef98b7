"""The package's import graph: no circle, no private name used across modules, and the
layers the README's architecture section states (runtime below the pipeline, export above)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "anyner"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names imported from it, line) for every import in the file, lazy ones too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def _edges() -> dict[str, set[str]]:
    """module -> the anyner modules it imports (``from anyner import x`` counts as anyner.x)."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for name, path in MODULES.items():
        for module, names, _ in _imports(path):
            if not module.startswith("anyner"):
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in MODULES] or [module]
            for t in targets:
                if t in MODULES and t != name:
                    graph[name].add(t)
    return graph


def _cycles(graph: dict[str, set[str]], ignore: set[str]) -> list[list[str]]:
    """Every module that lies on a cycle, with the cycle (depth-first search)."""
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m] - ignore):
            if state.get(n) == 1:
                found.append(stack[stack.index(n) :] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(set(graph) - ignore):
        if m not in state:
            visit(m)
    return found


def test_no_import_circle():
    # The package facades re-export names lazily (``anyner.AnyNER``, ``anyner.train.Trainer``):
    # importing them is importing what they name, so they are not nodes of their own.
    facades = {"anyner", "anyner.train", "anyner.data"}
    graph = _edges()
    for facade in facades:
        for m in graph:
            if facade in graph[m]:
                graph[m] |= graph[facade]
    assert _cycles(graph, facades) == []


def test_the_layers_the_readme_states():
    graph = _edges()

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            m = todo.pop()
            if m == b:
                return True
            if m not in seen:
                seen.add(m)
                todo += sorted(graph.get(m, ()))
        return False

    assert not reaches("anyner.pipeline", "anyner.export_onnx")  # export sits above the pipeline
    assert not reaches("anyner.runtime", "anyner.pipeline")  # the runtime below it
    assert not reaches("anyner.builtin", "anyner.pipeline")  # builtin returns a path
    assert graph["anyner.model_types"] == set()  # the registry names its parts; it imports none
    for module in ("anyner.featurize", "anyner.batching", "anyner.runtime", "anyner.decode"):
        assert not reaches(module, "anyner.model.gliner"), module  # below the network
    assert not any(m.startswith("anyner.train") for m in graph["anyner.model.span"])


def test_no_private_name_is_used_across_modules():
    problems = []
    for name, path in MODULES.items():
        for module, names, line in _imports(path):
            if module.startswith("anyner"):
                problems += [
                    f"{name}:{line} imports {module}.{n}"
                    for n in names
                    if n.startswith("_") and not n.startswith("__")
                ]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # model._label_set(...) style reaches into another object's private method
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id not in ("self", "cls")
                and node.value.id in {"model", "featurizer", "runner", "trainer", "net"}
            ):
                problems.append(f"{name}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert problems == []


def test_builtin_touches_no_global_state():
    """``builtin.py`` finds a folder: it seeds nothing and writes nothing."""
    import torch

    from anyner.builtin import builtin_model_path

    torch.manual_seed(1234)
    before = torch.get_rng_state()
    path = builtin_model_path()
    assert (path / "gliner_config.json").is_file()
    assert torch.equal(before, torch.get_rng_state())
    text = (PACKAGE / "builtin.py").read_text(encoding="utf-8")
    assert "manual_seed" not in text and "tempfile" not in text
