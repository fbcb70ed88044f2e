"""The generic validator: a value built into a config type, or a ConfigError naming its key."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Callable, Literal, Union


class ConfigError(ValueError):
    """A configuration file, key or value that cannot be used; the message names it."""


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build(tp: Any, value: Any, key: str) -> Any:
    """Coerce ``value`` to type ``tp`` or raise ConfigError naming ``key``."""
    where = key or "<root>"
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build_section(tp, value, key)
    if origin is Literal:
        return _build_choice(tp, value, where)
    if origin in (Union, types.UnionType):
        return _build_union(tp, value, key)
    if origin in (tuple, list):
        return _build_sequence(tp, value, key)
    if tp is Any:
        return value
    if tp in _SCALARS:
        return _SCALARS[tp](value, where)
    raise ConfigError(f"{where}: unsupported type {_describe(tp)}")


def _build_section(tp: Any, value: Any, key: str) -> Any:
    """A config dataclass from a mapping: unknown keys are named, each field built in turn."""
    where = key or "<root>"
    if isinstance(value, tp):
        return value
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {value!r}")
    hints = typing.get_type_hints(tp)
    names = {f.name for f in dataclasses.fields(tp) if f.init}
    unknown = sorted(set(value) - names)
    if unknown:
        full = [f"{key}.{u}" if key else str(u) for u in unknown]
        raise ConfigError(
            f"unknown config key {', '.join(full)} (valid keys here: {', '.join(sorted(names))})"
        )
    kwargs = {
        name: build(hints[name], val, f"{key}.{name}" if key else name)
        for name, val in value.items()
    }
    try:
        return tp(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _build_choice(tp: Any, value: Any, where: str) -> Any:
    """One of a Literal's values, of the same type (``1`` is not ``True``)."""
    allowed = typing.get_args(tp)
    if not any(value == a and type(value) is type(a) for a in allowed):
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
    return value


def _build_union(tp: Any, value: Any, key: str) -> Any:
    """The first member type ``value`` builds as."""
    for arg in typing.get_args(tp):
        try:
            return build(arg, value, key)
        except ConfigError:
            continue
    raise ConfigError(f"{key or '<root>'}: {value!r} does not match {_describe(tp)}")


def _build_sequence(tp: Any, value: Any, key: str) -> Any:
    """A tuple (fixed length or ``tuple[X, ...]``) or list, each item built and named by index."""
    where = key or "<root>"
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
        items = zip(args, value, strict=True)
        return tuple(build(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(items))
    item = args[0] if args else Any
    built = [build(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(built) if origin is tuple else built


def _build_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    return value


def _build_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value


def _build_float(value: Any, where: str) -> float:
    if isinstance(value, str):
        # YAML 1.1 reads 1e-4 (no dot) as a string; accept what Python reads as a number
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)


def _build_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


#: how each scalar type is checked (bool before int: YAML's true is not the integer 1).
_SCALARS: dict[type, Callable[[Any, str], Any]] = {
    bool: _build_bool,
    int: _build_int,
    float: _build_float,
    str: _build_str,
}


def require_at_least(key: str, value: float, low: float, meaning: str = "") -> None:
    """Refuse a setting below ``low`` (a ValueError naming ``key``; ``meaning`` says what the
    bound means): the one check many sections make in ``__post_init__``."""
    if value < low:
        raise ValueError(f"{key} must be >= {low}{meaning}, got {value}")


def require_between(key: str, value: float, low: float, high: float) -> None:
    """Refuse a setting outside the open interval ``(low, high)`` (a ValueError naming ``key``)."""
    if not low < value < high:
        raise ValueError(f"{key} must lie in ({low:g}, {high:g}), got {value}")
