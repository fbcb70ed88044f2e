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
