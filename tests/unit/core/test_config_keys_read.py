"""Every configuration key is read by some code: a key nothing reads documents a behaviour
that does not exist (it was ``attribution.max_frames``, documented as cropping)."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

from voxray import config
from voxray.config import VoxrayConfig

CONFIG = Path(config.__file__).resolve().parent
ROOT = CONFIG.parents[1]
#: where configuration is read: the library (but the config package, which only declares and
#: checks keys), the benchmarks and the job entrypoints.
SOURCES = [
    p
    for d in ("voxray", "bench", "ray_jobs")
    for p in sorted((ROOT / d).rglob("*.py"))
    if CONFIG not in p.parents
]


def _keys(cls: type, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, field name) for every leaf field of a config dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        nested = [t for t in (kind, *typing.get_args(kind)) if dataclasses.is_dataclass(t)]
        key = f"{prefix}{f.name}"
        if typing.get_origin(kind) is tuple:  # a list of records (mask.conditions)
            out.append((key, f.name))
            key += "[]"
        if nested:
            out += _keys(nested[0], key + ".")
        elif typing.get_origin(kind) is not tuple:
            out.append((key, f.name))
    return out


def _names_read() -> set[str]:
    """Attribute names accessed, and string constants (``getattr``, ``map_params``), in code."""
    names: set[str] = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                names.add(node.value)
    return names


def test_every_config_key_is_read_by_some_code() -> None:
    read = _names_read()
    unread = [key for key, name in _keys(VoxrayConfig) if name not in read]
    assert not unread, f"config keys no code reads (remove them or wire them up): {unread}"


def test_the_check_finds_an_unread_key() -> None:
    keys = dict(_keys(VoxrayConfig))
    assert keys["attribution.ig_steps"] == "ig_steps" and "ig_steps" in _names_read()
    assert "max_frames_nobody_reads" not in _names_read()
