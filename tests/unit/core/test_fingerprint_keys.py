"""The settings each stage's fingerprint holds (voxray.pipeline.fingerprint.SETTINGS) against
the config keys its code reads, found by the key-path analysis of test_config_keys_read over
the modules the stage imports: a key the stage reads and no fingerprint holds would let a
changed setting reuse stale outputs, the bug of issue 29."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests.unit.core.test_config_keys_read import ROOT, config_tree, keys_read
from voxray.pipeline.fingerprint import SETTINGS, UPSTREAM, operational, under
from voxray.pipeline.stages import STAGES

#: keys a stage's modules read that do not shape its outputs, with why.
NOT_OUTPUTS: dict[str, tuple[str, ...]] = {
    # the features stage loads the model only to learn its front-end (model.feature_kind, and
    # the completeness check of the front-end kinds features/ holds)
    "features": ("model", "train.name"),
    # attribute (and trial, which imports it) writes the heat-map utterances' audio beside the
    # maps: report.heatmap_utterances picks those utterances (an addition, never a changed map),
    # and the audio split imports voxray.mask.rules for its clipping, whose condition fields
    # (rule, threshold, reading, top_fraction) shape the mask stage's outputs, not these
    **{
        stage: (
            "report.heatmap_utterances",
            "mask.conditions[].reading",
            "mask.conditions[].rule",
            "mask.conditions[].threshold",
            "mask.conditions[].top_fraction",
        )
        for stage in ("attribute", "trial")
    },
}
# trial picks its worst errors with the verification scorer, whose module also computes the
# EER's interval (eval.intervals): the picked trials do not depend on it
NOT_OUTPUTS["trial"] += ("eval.intervals",)


def _module_file(name: str) -> Path | None:
    base = ROOT / name.replace(".", "/")
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def _imported(tree: ast.Module) -> list[str]:
    names = []
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("voxray"):
            names += [n.module, *(f"{n.module}.{a.name}" for a in n.names)]
        elif isinstance(n, ast.Import):
            names += [a.name for a in n.names if a.name.startswith("voxray")]
    return names


def stage_sources(module: str) -> dict[Path, str]:
    """The stage module and every voxray module it imports, directly or not (the config
    package declares keys, it does not read them)."""
    found: dict[Path, str] = {}
    todo, seen = [module], set()
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None or name.startswith("voxray.config"):
            continue
        seen.add(name)
        found[path] = path.read_text()
        todo += _imported(ast.parse(found[path]))
    return found


@functools.cache
def stage_reads(module: str) -> frozenset[str]:
    """The key paths the stage module's code reads (computed once per module)."""
    return frozenset(keys_read(stage_sources(module))[1])


def _ancestors(stage: str) -> set[str]:
    out, todo = {stage}, [stage]
    while todo:
        for up in UPSTREAM[todo.pop()]:
            if up not in out:
                out.add(up)
                todo.append(up)
    return out


def _held(key: str, prefixes: list[str]) -> bool:
    """``key`` is held by a prefix, or is a tuple of records some of whose fields are."""
    return any(under(key, p) or p.startswith(key + "[]") for p in prefixes)


@pytest.mark.parametrize("stage", [s for s in STAGES], ids=lambda s: s.name)
def test_every_key_a_stage_reads_is_in_its_fingerprint(stage) -> None:
    """Each key the stage's code reads is held by its own settings or an upstream stage's
    (their recipes are in its own), or only says how it runs."""
    read = stage_reads(stage.target.split(":")[0])
    held = [p for s in _ancestors(stage.name) for p in SETTINGS[s]]
    held += NOT_OUTPUTS.get(stage.name, ())
    missing = sorted(k for k in read if not operational(k) and not _held(k, held))
    assert not missing, f"{stage.name} reads keys its fingerprint does not hold: {missing}"


@pytest.mark.parametrize("stage", [s for s in STAGES], ids=lambda s: s.name)
def test_a_stage_holds_only_keys_it_reads(stage) -> None:
    """No declared setting is one the stage's code never reads (it would redo it for
    nothing)."""
    read = stage_reads(stage.target.split(":")[0])
    unread = [p for p in SETTINGS[stage.name] if not any(under(k, p) for k in read)]
    assert not unread, f"{stage.name} declares settings it never reads: {unread}"


def test_every_key_is_held_by_a_stage_or_only_says_how_a_stage_runs() -> None:
    """A new config key needs a decision: which fingerprint holds it, or that it is
    operational."""
    _, keys = config_tree()
    held = [p for prefixes in SETTINGS.values() for p in prefixes]
    loose = [k for k in keys if not operational(k) and not _held(k, held)]
    assert not loose, f"config keys in no stage's fingerprint: {loose}"


def test_the_check_finds_a_key_read_and_not_held() -> None:
    """With attribute's own settings emptied, attribution.ig_steps (read by its modules) is
    reported: the check can fail."""
    read = stage_reads("voxray.pipeline.attribute_stage")
    held = [p for s in _ancestors("attribute") - {"attribute"} for p in SETTINGS[s]]
    assert "attribution.ig_steps" in [k for k in read if not _held(k, held)]
