"""The package layers and the import graph, read from the source (every import, lazy or not).

``pipeline -> ingest, retrieval, prompts``; ``retrieval -> ingest``'s data types and pure helpers only;
``ingest`` imports neither; nothing imports ``pipeline``; and no module imports itself back through
others, at any depth.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mmrag.pipeline

ROOT = Path(mmrag.pipeline.__file__).resolve().parents[1]
PACKAGES = ("pipeline", "ingest", "retrieval", "prompts")
RETRIEVAL_MAY_USE = {
    "mmrag.ingest.chunk",
    "mmrag.ingest.errors",
    "mmrag.ingest.text.numbers",
    "mmrag.ingest.permissions",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(("mmrag", *parts[:-1])) if parts[-1] == "__init__" else ".".join(("mmrag", *parts))
            found[name] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            if name.startswith("mmrag.") and name in modules:
                out.add(name)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_layers_hold() -> None:
    wrong = []
    for module, imports in _graph().items():
        layer = module.split(".")[1]
        for target in imports:
            target_layer = target.split(".")[1]
            if target_layer == "pipeline" and layer != "pipeline":
                wrong.append(f"{module} imports {target}")
            if layer == "ingest" and target_layer == "retrieval":
                wrong.append(f"{module} imports {target}")
            if layer == "retrieval" and target_layer == "ingest" and target not in RETRIEVAL_MAY_USE:
                wrong.append(f"{module} imports {target} (retrieval may use {sorted(RETRIEVAL_MAY_USE)})")
    assert wrong == []


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)
