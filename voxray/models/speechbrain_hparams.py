"""Read a SpeechBrain ``hyperparams.yaml`` without running it, and the front-end it names.

SpeechBrain's YAML (HyperPyYAML) builds objects from ``!new:<class>`` tags and links values
with ``!ref <key>``. Here a SafeLoader subclass keeps them as data: a ``!new:`` mapping is a
``Tagged`` dict that remembers its class, a ``!ref`` an unresolved ``Ref`` string; plain
``<key>`` references are resolved against the top level. Nothing is imported or constructed.

The front-end is the recipe's ``compute_features`` (``speechbrain.lobes.features.Fbank``) and
``mean_var_norm`` (``speechbrain.processing.features.InputNormalization``). Without a
``compute_features`` the VoxCeleb ECAPA recipe is assumed: Fbank with ``n_mels`` = the
network's input size and sentence mean normalisation. A setting voxray does not implement is
a ``ValueError`` naming the file and the key.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from voxray.features.base import FrontEndSpec
from voxray.features.speechbrain import SpeechBrainFbankParams

SB_FBANK = "speechbrain.lobes.features.Fbank"
SB_NORM = "speechbrain.processing.features.InputNormalization"
#: Fbank argument -> SpeechBrainFbankParams field, with SpeechBrain's default.
FBANK_ARGS: dict[str, tuple[str, Any]] = {
    "n_mels": ("n_mels", 40),
    "sample_rate": ("sample_rate", 16000),
    "n_fft": ("n_fft", 400),
    "win_length": ("win_length_ms", 25.0),
    "hop_length": ("hop_length_ms", 10.0),
    "f_min": ("f_min", 0.0),
    "f_max": ("f_max", None),
    "deltas": ("deltas", False),
}
#: Fbank arguments voxray implements only at SpeechBrain's default value.
FBANK_FIXED = {"context": False, "requires_grad": False, "filter_shape": "triangular"}
#: Fbank arguments that do not change inference features (training-time or context-only).
FBANK_INERT = ("param_change_factor", "param_rand_factor", "left_frames", "right_frames")
#: InputNormalization arguments that do not change sentence normalisation at inference.
NORM_INERT = ("mean_norm", "avg_factor", "update_until_epoch", "avoid_padding_norm", "device")


class Tagged(dict):
    """A ``!new:<class>`` mapping; ``tag`` is the class path."""

    tag: str = ""


class Ref(str):
    """An unresolved ``!ref`` expression such as ``<n_mels>``."""


class _Loader(yaml.SafeLoader):
    """SafeLoader reading SpeechBrain's tags as data (no object is ever constructed)."""


def _plain(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if suffix == "ref" and isinstance(node, yaml.ScalarNode):
        return Ref(loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode) or suffix.startswith("new:"):
        is_map = isinstance(node, yaml.MappingNode)
        mapping = Tagged(loader.construct_mapping(node, deep=True) if is_map else {})
        mapping.tag = suffix.partition(":")[2]
        return mapping
    return loader.construct_scalar(node)  # type: ignore[arg-type]  # a ScalarNode here


_Loader.add_multi_constructor("!", _plain)


def read_hparams(text: str, where: str) -> dict[str, Any]:
    """hyperparams.yaml text as plain data; ValueError naming ``where`` when unreadable."""
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ValueError(f"{where}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{where}: not a mapping of hyperparameters")
    return data


def resolve(value: Any, data: dict[str, Any], key: str, where: str) -> Any:
    """``value`` with a ``!ref <name>`` replaced by the top-level ``name`` (one level deep)."""
    if not isinstance(value, Ref):
        return value
    m = re.fullmatch(r"\s*<([\w]+)>\s*", value)
    if not m or m.group(1) not in data or isinstance(data[m.group(1)], Ref):
        raise ValueError(f"{where}: {key}: cannot resolve !ref {value!r} (only <name> of a value)")
    return data[m.group(1)]


def _section(data: dict[str, Any], name: str, tag: str, where: str) -> dict[str, Any] | None:
    section = data.get(name)
    if section is None:
        return None
    if not isinstance(section, Tagged) or section.tag != tag:
        got = section.tag if isinstance(section, Tagged) else repr(section)
        raise ValueError(f"{where}: {name} is {got}; voxray supports !new:{tag} only")
    return {k: resolve(v, data, f"{name}.{k}", where) for k, v in section.items()}


def _fbank_params(fbank: dict[str, Any] | None, input_dim: int, where: str) -> dict[str, Any]:
    """SpeechBrainFbankParams fields from a recipe's ``compute_features`` (None: n_mels only)."""
    if fbank is None:
        return {"n_mels": input_dim}
    params: dict[str, Any] = {}
    for key, value in fbank.items():
        if key in FBANK_FIXED:
            if value != FBANK_FIXED[key]:
                raise ValueError(
                    f"{where}: compute_features.{key} = {value!r} is not supported "
                    f"(voxray's sb_fbank implements {key}={FBANK_FIXED[key]!r})"
                )
        elif key in FBANK_ARGS:
            params[FBANK_ARGS[key][0]] = value
        elif key not in FBANK_INERT:
            raise ValueError(f"{where}: compute_features.{key} is not a supported Fbank setting")
    for field_name, default in FBANK_ARGS.values():
        params.setdefault(field_name, default)
    params["f_max"] = params["f_max"] or 0.0
    return params


def _norm_params(norm: dict[str, Any] | None, has_fbank: bool, where: str) -> dict[str, Any]:
    """The ``norm`` / ``std_norm`` fields from a recipe's ``mean_var_norm``."""
    if norm is None:
        # no InputNormalization in a recipe that names its features: none is applied
        return {"norm": "none" if has_fbank else "sentence", "std_norm": False}
    norm_type = norm.get("norm_type", "global")
    if norm_type != "sentence":
        raise ValueError(
            f"{where}: mean_var_norm.norm_type = {norm_type!r} is not supported "
            "(voxray's sb_fbank implements 'sentence')"
        )
    if norm.get("length_dim", 1) != 1:
        raise ValueError(f"{where}: mean_var_norm.length_dim must be 1 (time)")
    for key in norm:
        if key not in ("norm_type", "std_norm", "length_dim", "epsilon", *NORM_INERT):
            raise ValueError(f"{where}: mean_var_norm.{key} is not a supported setting")
    if norm.get("epsilon", 1e-10) != 1e-10:
        raise ValueError(f"{where}: mean_var_norm.epsilon must be 1e-10 (SpeechBrain's default)")
    return {"norm": "sentence", "std_norm": bool(norm.get("std_norm", True))}


def front_end_from_hparams(data: dict[str, Any], input_dim: int, where: str) -> FrontEndSpec:
    """The ``sb_fbank`` front-end of a SpeechBrain recipe for a network of ``input_dim`` inputs.

    Raises:
        ValueError: an unsupported class or setting (named), or features that do not fit.
    """
    fbank = _section(data, "compute_features", SB_FBANK, where)
    norm = _section(data, "mean_var_norm", SB_NORM, where)
    params = _fbank_params(fbank, input_dim, where)
    params.update(_norm_params(norm, fbank is not None, where))
    try:
        spec_params = SpeechBrainFbankParams(
            n_mels=int(params["n_mels"]),
            sample_rate=int(params.get("sample_rate", 16000)),
            n_fft=int(params.get("n_fft", 400)),
            win_length_ms=float(params.get("win_length_ms", 25.0)),
            hop_length_ms=float(params.get("hop_length_ms", 10.0)),
            f_min=float(params.get("f_min", 0.0)),
            f_max=float(params.get("f_max", 0.0)),
            deltas=bool(params.get("deltas", False)),
            norm=params["norm"],
            std_norm=params["std_norm"],
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: compute_features: {exc}") from exc
    spec = FrontEndSpec("sb_fbank", spec_params)
    bins = spec_params.n_mels * (3 if spec_params.deltas else 1)
    if bins != input_dim:
        raise ValueError(
            f"{where}: compute_features gives {bins} features per frame "
            f"(n_mels={spec_params.n_mels}, deltas={spec_params.deltas}) "
            f"but the network takes {input_dim}"
        )
    return spec
