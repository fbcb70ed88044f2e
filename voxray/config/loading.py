"""Loading: YAML files, profiles and ``key=value`` overrides merged into one validated config."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import yaml

from voxray.config.run import VoxrayConfig
from voxray.config.validation import ConfigError, build


def conf_dir() -> Path:
    """The conf/ folder: $VOXRAY_CONF, ./conf, or the one beside the installed package."""
    env = os.environ.get("VOXRAY_CONF")
    if env:
        return Path(env)
    here = Path.cwd() / "conf"
    if (here / "base.yaml").exists():
        return here
    return Path(__file__).resolve().parents[2] / "conf"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Safe-load one YAML mapping; a missing file or a non-mapping names the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: the top level must be a mapping, got {type(data).__name__}")
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` -> ``{"a": {"b": {"c": value}}}``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {key}: cannot parse value {raw!r}: {exc}") from exc
    node: dict[str, Any] = {}
    cur = node
    parts = key.split(".")
    for part in parts[:-1]:
        cur[part] = {}
        cur = cur[part]
    cur[parts[-1]] = value
    return node


def profile_path(profile: str) -> Path:
    path = conf_dir() / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (conf_dir() / "profiles").glob("*.yaml"))
        raise ConfigError(f"unknown profile {profile!r} (known: {', '.join(known) or 'none'})")
    return path


def load_config(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    profile: str | None = None,
    use_base: bool = True,
    pretrained: bool = False,
) -> VoxrayConfig:
    """Build a validated ``VoxrayConfig`` from base.yaml, a profile, files and overrides;
    ``pretrained`` without a profile adds conf/pretrained.yaml over base.yaml (the defaults
    for explaining a model the run did not train: sized for a CPU in minutes)."""
    data: dict[str, Any] = {}
    base = conf_dir() / "base.yaml"
    if use_base and base.is_file():
        data = deep_merge(data, read_yaml(base))
    if pretrained and not profile:
        data = deep_merge(data, read_yaml(conf_dir() / "pretrained.yaml"))
    if profile:
        data = deep_merge(data, read_yaml(profile_path(profile)))
        data["profile"] = profile
    for f in files:
        data = deep_merge(data, read_yaml(f))
    for o in overrides:
        data = deep_merge(data, parse_override(o))
    return build(VoxrayConfig, data, "")


def asked_keys(
    files: list[str | Path] | tuple[str | Path, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    profile: str | None = None,
) -> frozenset[str]:
    """The dotted keys a profile, a config file or an override sets: what the user asked for,
    where every other key holds base.yaml's (or pretrained.yaml's) default. A method the model
    cannot explain is refused when the user asked for it and left out with its reason when it
    only came from a default."""
    data: dict[str, Any] = read_yaml(profile_path(profile)) if profile else {}
    for f in files:
        data = deep_merge(data, read_yaml(f))
    for o in overrides:
        data = deep_merge(data, parse_override(o))

    def leaves(d: dict[str, Any], prefix: str) -> list[str]:
        out = []
        for key, value in d.items():
            nested = isinstance(value, dict) and value
            out += leaves(value, f"{prefix}{key}.") if nested else [f"{prefix}{key}"]
        return out

    return frozenset(leaves(data, ""))


def replace(cfg: Any, **changes: Any) -> Any:
    """dataclasses.replace with dotted keys: ``replace(cfg, **{"train.epochs": 3})``."""
    nested: dict[str, dict[str, Any]] = {}
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        head, _, rest = key.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            flat[head] = value
    for head, sub in nested.items():
        flat[head] = replace(getattr(cfg, head), **sub)
    return dataclasses.replace(cfg, **flat)


def to_dict(cfg: Any) -> Any:
    """A plain, YAML-safe structure (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


def dump_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Validate a plain mapping (e.g. a config.yaml we wrote) into ``cls``."""
    return build(cls, data, "")
