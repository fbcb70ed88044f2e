"""What a stage's outputs were made from, and whether a rerun may reuse them.

A stage's fingerprint has two halves. The *recipe*: the resolved config keys the stage reads
(``SETTINGS``, less the keys that change how fast it runs, not what it writes), the model's
identity (``--model``) and, by digest, its upstream stages' recipes; a changed recipe means
every output of the stage is stale, so the stage is rebuilt, and so is every stage after it
(their recipes hold this one's). The *corpus*: a digest of the input rows the stage reads; a
changed corpus with the same recipe means outputs are missing, not wrong, so the stage resumes
and computes only the rows it lacks (the row-level stages; the others redo their work whole).

The functions here are pure over a config, digests and the old marker's fingerprint
(``decide``); reading the corpus and writing markers is ``voxray.pipeline.stages``'s job.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from voxray.config import VoxrayConfig, to_dict

#: the config key paths (or their prefixes) each stage reads and whose values shape its
#: outputs. tests/unit/core/test_fingerprint_keys.py checks them against the keys the
#: stage's code reads.
SETTINGS: dict[str, tuple[str, ...]] = {
    "manifest": ("corpus",),
    "features": ("features", "model.feature_kind"),
    "train": ("model", "train"),
    # the scorers decide which segment embeddings are computed
    "embed": ("embed", "eval.scorers"),
    # the mask conditions name maps the stage computes beyond attribution.methods; a headless
    # model's CAMs explain the speaker of its enrolment head (crops of train.segment_s)
    "attribute": (
        "attribution",
        "mask.conditions[].method",
        "mask.conditions[].pathway",
        "eval.enrolment",
        "train.segment_s",
    ),
    # the worst-error trials are chosen by the verification scores
    "trial": (
        "trial",
        "attribution",
        "seed",
        "mask.conditions[].method",
        "mask.conditions[].pathway",
        "eval.scorers",
        "eval.linkages",
        "eval.p_targets",
        "eval.asnorm",
        "eval.asnorm_cohort",
        "eval.asnorm_top_k",
    ),
    # the class-leak rows (mask.leak) carry speaker-bootstrap intervals
    "mask": ("mask", "seed", "eval.intervals"),
    "retrain": ("retrain", "train", "eval.scorers"),
    # the 003 sweeps' metrics/ rows carry speaker-bootstrap intervals, their validation split
    # is drawn with the run's seed
    "tune": ("tune", "train", "seed", "eval.scorers", "eval.linkages", "eval.intervals"),
    "evaluate": ("eval", "seed"),
    "report": ("report", "profile", "seed"),
}
#: the stages whose outputs each stage reads (its recipe holds theirs, so theirs changing
#: makes it stale too).
UPSTREAM: dict[str, tuple[str, ...]] = {
    "manifest": (),
    "features": ("manifest",),
    "train": ("features",),
    "embed": ("features", "train"),
    "attribute": ("features", "train"),
    "trial": ("embed", "attribute"),
    "mask": ("attribute",),
    "retrain": ("mask", "embed"),
    "tune": ("attribute", "mask"),
    "evaluate": ("embed", "attribute", "trial", "mask", "retrain", "tune"),
    "report": ("evaluate",),
}
#: keys that set how a stage runs (where, how fast, how many retries), never what it writes:
#: changing them reuses the outputs. A key path matches when it starts with one of these or
#: one of its parts is in ``OPERATIONAL_PARTS``.
OPERATIONAL: tuple[str, ...] = (
    "ray",
    "out",
    "data_root",
    "model_path",  # the model's identity is its own part of the recipe (model_identity)
    "corpus.s3",
    "attribution.internal_batch_size",
    "attribution.memory_fraction",
    "embed.bucket_frames",
    "embed.from_audio",  # both paths write the same rows (tests/ray/test_embed_from_audio.py)
    "train.max_failures",
    "tune.max_failures",
    "train.torch_threads",
    "train.cpus_per_worker",
)
OPERATIONAL_PARTS = frozenset({"resources"})


NO_FINGERPRINT = "its marker has no fingerprint (written by an older voxray): --force it to redo"


class Action(str, Enum):
    SKIP = "skip"  # complete and fresh
    RESUME = "resume"  # incomplete, or new input rows: compute what is missing
    REBUILD = "rebuild"  # stale or forced: discard the outputs, then run
    KEEP_STALE = "keep-stale"  # stale, reused on the user's word (--keep-stale)


@dataclass(frozen=True)
class Decision:
    stage: str
    action: Action
    #: why, for the log and the marker: the settings that changed, "forced", ...
    reasons: tuple[str, ...] = ()


def operational(key: str) -> bool:
    """Whether ``key`` only sets how a stage runs (see ``OPERATIONAL``)."""
    parts = key.split(".")
    return any(under(key, p) for p in OPERATIONAL) or bool(OPERATIONAL_PARTS & set(parts))


def under(key: str, prefix: str) -> bool:
    """Whether ``key`` is ``prefix`` or below it (``mask.conditions[].method`` is below
    ``mask.conditions`` and ``mask``)."""
    return key == prefix or key.startswith((prefix + ".", prefix + "[]"))


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Leaves by dotted key path; a list of records becomes one list per record field
    (``mask.conditions[].method``), so a stage can read some fields of the records only."""
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        fields: dict[str, list[Any]] = {}
        for record in value:
            flat: dict[str, Any] = {}
            _flatten(record, "", flat)
            for k, v in flat.items():
                fields.setdefault(k, []).append(v)
        for k, vs in fields.items():
            out[f"{prefix}[].{k}"] = vs
    else:
        out[prefix] = value


def settings(cfg: VoxrayConfig, stage: str) -> dict[str, Any]:
    """The resolved values of the keys ``stage`` reads, by dotted key path."""
    flat: dict[str, Any] = {}
    _flatten(to_dict(cfg), "", flat)
    wanted = SETTINGS[stage]
    return {
        k: v
        for k, v in sorted(flat.items())
        if any(under(k, p) for p in wanted) and not operational(k)
    }


def model_identity(model_path: str) -> str:
    """A given model by path, size and modification time (a file replaced in place is another
    model); empty when the run trains its own (the train stage's recipe stands for it)."""
    if not model_path:
        return ""
    target = os.path.join(model_path, "model.pt") if os.path.isdir(model_path) else model_path
    try:
        st = os.stat(target)
    except OSError:  # a named pretrained model (resemblyzer) or an s3:// path
        return model_path
    return f"{model_path} ({st.st_size} bytes, mtime {st.st_mtime_ns})"


def digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def recipes(cfg: VoxrayConfig) -> dict[str, dict[str, Any]]:
    """Every stage's recipe (settings, model, upstream recipes' digests, and its own digest),
    upstream first; with ``--model``, train's recipe is the model's identity alone."""
    model = model_identity(cfg.model_path)
    out: dict[str, dict[str, Any]] = {}
    for stage, ups in UPSTREAM.items():
        if stage == "train" and model:
            recipe: dict[str, Any] = {"settings": {}, "model": model, "upstream": {}}
        else:
            recipe = {
                "settings": settings(cfg, stage),
                "model": "",
                "upstream": {u: out[u]["digest"] for u in ups},
            }
        out[stage] = {**recipe, "digest": digest(recipe)}
    return out


def fingerprint(cfg: VoxrayConfig, stage: str, corpus: str | None) -> dict[str, Any]:
    """What a stage's marker records: its recipe and the digest of the input rows it read
    (None where they could not be read: the corpus then never counts as changed)."""
    return {**recipes(cfg)[stage], "corpus": corpus}


def _value(v: Any) -> str:
    return json.dumps(v, default=str)


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, in words: each changed setting with its old and
    new value, the model, each upstream stage whose recipe changed, the corpus."""
    out = []
    o, n = old.get("settings", {}), new.get("settings", {})
    for key in sorted(set(o) | set(n)):
        if o.get(key, "<unset>") != n.get(key, "<unset>"):
            out.append(f"{key}: {_value(o.get(key, '<unset>'))} -> {_value(n.get(key, '<unset>'))}")
    if old.get("model") != new.get("model"):
        out.append(f"model: {old.get('model') or 'trained'} -> {new.get('model') or 'trained'}")
    ou, nu = old.get("upstream", {}), new.get("upstream", {})
    out += [f"upstream {u} changed" for u in sorted(set(ou) | set(nu)) if ou.get(u) != nu.get(u)]
    if old.get("digest") == new.get("digest") and not out:  # same recipe
        if None not in (old.get("corpus"), new.get("corpus")) and old["corpus"] != new["corpus"]:
            out.append("input corpus changed")
    return out


@functools.cache
def _default_settings(stage: str) -> dict[str, Any]:
    return settings(VoxrayConfig(), stage)


def _new_keys(stage: str, old: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The settings ``now`` has and ``old`` lacks whose value is the default: a key added
    since ``old`` was written, left at what voxray did before it."""
    defaults = _default_settings(stage)
    missing = object()
    return {k: v for k, v in now.items() if k not in old and defaults.get(k, missing) == v}


def current_form(
    stage: str,
    old: dict[str, Any],
    markers: Mapping[str, dict[str, Any] | None],
    now: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """An old marker's fingerprint as this voxray would have written it for the same recipe:
    settings that have since become ``OPERATIONAL`` dropped, keys added since then taken as
    unchanged where this run (``now``: ``recipes``) leaves them at their default (a new key's
    default keeps what voxray did before it), and each upstream digest
    redone the same way from that stage's own marker (in ``markers``, by stage; where the
    marker is missing or no longer the one this stage was made from, the stored digest
    stands). So a new key or one moved to ``OPERATIONAL`` never makes outputs stale, while a
    new key set otherwise, or a marker whose upstream has since been rebuilt, still differs."""
    kept = {k: v for k, v in old.get("settings", {}).items() if not operational(k)}
    kept.update(_new_keys(stage, kept, now[stage]["settings"]))
    upstream = dict(old.get("upstream", {}))
    for u, stored in upstream.items():
        theirs = markers.get(u)
        if theirs and theirs.get("digest") == stored:
            upstream[u] = current_form(u, theirs, markers, now)["digest"]
    recipe = {"settings": kept, "model": old.get("model", ""), "upstream": upstream}
    return {**old, **recipe, "digest": digest(recipe)}


def decide(
    stage: str,
    complete: bool,
    old: dict[str, Any] | None,
    new: dict[str, Any],
    forced: bool = False,
    keep_stale: bool = False,
) -> Decision:
    """What a run does with ``stage``, given whether its marker says it completed, the
    fingerprint on that marker (None for a marker written before fingerprints) and the one
    it would have now. A marker without a fingerprint is unknown: its outputs are reused with
    a warning (``--force STAGE`` redoes them), as throwing away a finished run that may well
    be fresh costs more than the warning."""
    if forced:
        return Decision(stage, Action.REBUILD, ("forced",))
    if not complete:
        return Decision(stage, Action.RESUME, ("not complete",))
    if old is None:  # unknown, not stale: outputs of an older voxray are not thrown away
        return Decision(stage, Action.KEEP_STALE, (NO_FINGERPRINT,))
    reasons = tuple(changes(old, new))
    if not reasons:
        return Decision(stage, Action.SKIP)
    if keep_stale:
        return Decision(stage, Action.KEEP_STALE, reasons)
    stale = old.get("digest") != new["digest"]
    return Decision(stage, Action.REBUILD if stale else Action.RESUME, reasons)


def downstream(stage: str) -> set[str]:
    """``stage`` and every stage that reads its outputs, directly or through others."""
    found = {stage}
    for s, ups in UPSTREAM.items():  # UPSTREAM lists each stage after its inputs
        if found & set(ups):
            found.add(s)
    return found
