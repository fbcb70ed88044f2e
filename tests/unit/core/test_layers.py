"""The import direction of docs/architecture.md: a package imports only packages of lower
layers, and production code takes nothing from voxray.testing."""

from __future__ import annotations

import ast
from pathlib import Path

import voxray

PACKAGE = Path(voxray.__file__).resolve().parent
#: docs/architecture.md's layers (testing is test support: it may import any layer).
LAYER = {
    "config": 0,
    "schema": 0,
    "log": 0,
    "faults": 0,
    "io": 1,
    "features": 1,
    "nodes": 1,
    "native_stderr": 1,
    "models": 2,
    "corpus": 2,
    "attribution": 3,
    "mask": 4,
    "eval": 5,
    "train": 6,
    "report": 6,
    "check": 6,
    "pipeline": 7,
    "cli": 8,
    "__main__": 9,
}


def _imports() -> list[tuple[str, str, str]]:
    """(importing package, imported module, where) for every voxray import in voxray/."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        package = rel.parts[0].removesuffix(".py")
        if package in ("__init__", "_version"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                target = node.module
                if target in ("voxray", "voxray.testing"):  # from voxray(.testing) import x
                    target = f"{target}.{node.names[0].name}"
            elif isinstance(node, ast.Import):
                target = next((a.name for a in node.names if a.name.startswith("voxray")), "")
            else:
                continue
            if target.startswith("voxray.") or target == "voxray":
                out.append((package, target, f"{rel}:{node.lineno}"))
    return out


def test_every_package_has_a_layer() -> None:
    packages = {p.name.removesuffix(".py") for p in PACKAGE.iterdir() if not p.name.startswith("_")}
    packages -= {"testing", "py.typed"}
    assert {p for p in packages if not p.endswith(".pyc")} <= set(LAYER) | {"__pycache__"}


def test_imports_point_down_the_layers() -> None:
    upward = []
    for package, target, where in _imports():
        imported = target.split(".")[1] if "." in target else ""
        if package == "testing" or imported in ("", package, "__version__"):
            continue
        if imported == "testing":
            continue  # checked below
        if LAYER[imported] >= LAYER[package] and not (LAYER[imported] == LAYER[package] == 0):
            upward.append(f"{where}: {package} (layer {LAYER[package]}) imports {target}")
    assert not upward, "\n".join(upward)


def test_production_code_imports_nothing_from_testing() -> None:
    bad = [
        f"{where}: {target}"
        for package, target, where in _imports()
        if package != "testing" and target.startswith("voxray.testing")
    ]
    assert not bad, bad


def _module_name(path: Path) -> str:
    """``voxray/a/b.py`` -> ``voxray.a.b``; a package's ``__init__.py`` -> the package."""
    parts = ("voxray", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_module(name: str, modules: set[str]) -> str | None:
    """The voxray module an import of ``name`` loads: ``name`` itself, else the nearest
    package or module above it (``voxray.a.b.func`` -> ``voxray.a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the voxray modules it imports, at any level: an import inside a function (a
    lazy import) is an edge too, since it only hides a cycle from the interpreter."""
    paths = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
    modules = set(paths)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in paths.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, up level - 1
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                # ``from pkg import sub`` loads the submodule ``pkg.sub`` when there is one
                names = [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                target = _imported_module(name, modules)
                if target and target != module:
                    graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as ``[a, b, ..., a]``, or ``[]`` when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished (no cycle through it)
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return []


def test_find_cycle_names_the_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert not cycle, "import cycle: " + " -> ".join(cycle)
