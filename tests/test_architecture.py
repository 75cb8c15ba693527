"""The architecture's rules, checked on the source: imports form no cycle, no module imports
another's private names, and ``classifiers`` never imports ``monitor`` (data flows one way)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    found = {}
    for root in ("monitor", "classifiers"):
        for path in (REPO / root).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Module → the modules of ours it imports (anywhere in it, lazily too), and every
    private name imported from another module."""
    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    private: list[str] = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                targets = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                            else base, alias.name) for alias in node.names]
            for target, imported in targets:
                found = owner(target)
                if found is None or found == name or name.startswith(found + "."):
                    continue
                graph[name].add(found)
                if imported and imported.startswith("_") and not imported.startswith("__"):
                    private.append(f"{name} imports {imported} from {found}")
    return graph, private


def test_no_import_cycles_and_no_private_imports() -> None:
    graph, private = _imports(_modules())
    assert private == []
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == []


def test_classifiers_never_import_monitor() -> None:
    graph, _ = _imports(_modules())
    leaks = {m: sorted(t for t in deps if t.startswith("monitor"))
             for m, deps in graph.items() if m.startswith("classifiers")}
    assert {m: t for m, t in leaks.items() if t} == {}
