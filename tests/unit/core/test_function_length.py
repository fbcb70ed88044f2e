"""No function in voxray/ over 60 lines (nested ones counted on their own, as Python's ast sees
them) unless the line before its ``def`` says why (a comment starting ``# long:``): a long
function is where a stage's driver starts doing its actors' work."""

from __future__ import annotations

import ast
from pathlib import Path

import voxray

PACKAGE = Path(voxray.__file__).resolve().parent
MAX_LINES = 60


def long_functions(root: Path, limit: int = MAX_LINES) -> list[str]:
    """``path:line name (n lines)`` of every function of ``root``'s modules over ``limit`` lines
    without a ``# long:`` reason on the line above it (or above its decorators)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            n = node.end_lineno - node.lineno + 1
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            reason = first >= 2 and lines[first - 2].strip().startswith("# long:")
            if n > limit and not reason:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({n} lines)")
    return found


def test_no_function_is_over_60_lines_without_a_reason() -> None:
    assert long_functions(PACKAGE) == []


def test_a_long_function_is_found_and_a_reason_excuses_it(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n# long: a table\ndef g():\n{body}")
    assert long_functions(tmp_path) == [f"m.py:1 f ({MAX_LINES + 1} lines)"]
