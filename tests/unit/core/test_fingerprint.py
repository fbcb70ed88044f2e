"""Stage outputs tied to the settings that made them (issue 29): the decision over old and new
fingerprints, and the stage driver acting on it with stand-in stage functions (no Ray)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from voxray.cli import _forced, build_parser
from voxray.config import ConfigError, VoxrayConfig, load_config, replace
from voxray.io.prune import drop_rows
from voxray.io.run_state import mark_stage_done, stage_info
from voxray.io.storage import Storage
from voxray.pipeline import stages
from voxray.pipeline.context import RunContext, StageResult
from voxray.pipeline.fingerprint import (
    NO_FINGERPRINT,
    Action,
    decide,
    downstream,
    fingerprint,
    settings,
)
from voxray.pipeline.front_ends import run_front_ends
from voxray.pipeline.stages import STAGE_NAMES, Stage, run_stages
from voxray.pipeline.stale import discard_outputs

AFTER_ATTRIBUTE = {"attribute", "trial", "mask", "retrain", "tune", "evaluate", "report"}


@functools.cache
def _profile() -> VoxrayConfig:
    return load_config(profile="smoke")


def _smoke(**overrides: object) -> VoxrayConfig:
    if not overrides:
        return _profile()
    return load_config(profile="smoke", overrides=[f"{k}={v}" for k, v in overrides.items()])


def _plan(old: VoxrayConfig, new: VoxrayConfig, **kw: bool) -> dict[str, Action]:
    """Each stage's action on a complete output folder made with ``old``, rerun with ``new``
    on the same corpus."""
    return {
        s: decide(s, True, fingerprint(old, s, "c"), fingerprint(new, s, "c"), **kw).action
        for s in STAGE_NAMES
    }


def _redone(plan: dict[str, Action]) -> set[str]:
    return {s for s, a in plan.items() if a in (Action.REBUILD, Action.RESUME)}


def test_changing_ig_steps_redoes_attribute_and_after_but_not_features_train_embed() -> None:
    old = _smoke()
    plan = _plan(old, _smoke(**{"attribution.ig_steps": old.attribution.ig_steps + 56}))
    assert {s for s, a in plan.items() if a == Action.REBUILD} == AFTER_ATTRIBUTE
    assert {"attribute", "mask", "retrain", "evaluate"} <= _redone(plan)
    assert plan["features"] == plan["train"] == plan["embed"] == Action.SKIP


def test_the_reasons_name_the_changed_setting_and_the_stale_upstream() -> None:
    old, new = _smoke(), _smoke(**{"attribution.ig_steps": 64})
    attribute = decide(
        "attribute", True, fingerprint(old, "attribute", "c"), fingerprint(new, "attribute", "c")
    )
    assert attribute.reasons == (f"attribution.ig_steps: {old.attribution.ig_steps} -> 64",)
    mask = decide("mask", True, fingerprint(old, "mask", "c"), fingerprint(new, "mask", "c"))
    assert mask.reasons == ("upstream attribute changed",)


def test_changing_nothing_redoes_nothing() -> None:
    assert _redone(_plan(_smoke(), _smoke())) == set()


def test_settings_of_how_a_stage_runs_redo_nothing() -> None:
    """Resources, retries and Ray's own settings change speed, not outputs."""
    new = _smoke(
        **{
            "attribution.resources.batch_size": 3,
            "attribution.internal_batch_size": 2,
            "ray.num_cpus": 7,
            "train.max_failures": 9,
        }
    )
    assert _redone(_plan(_smoke(), new)) == set()


def test_a_train_setting_redoes_train_and_after_it() -> None:
    plan = _plan(_smoke(), _smoke(**{"train.epochs": 7}))
    assert _redone(plan) == set(STAGE_NAMES) - {"manifest", "features"}


def test_keep_stale_reuses_what_would_be_rebuilt() -> None:
    plan = _plan(_smoke(), _smoke(**{"attribution.ig_steps": 64}), keep_stale=True)
    assert {s for s, a in plan.items() if a == Action.KEEP_STALE} == AFTER_ATTRIBUTE
    assert _redone(plan) == set()


def test_force_names_a_stage_and_everything_that_reads_it() -> None:
    assert downstream("attribute") == AFTER_ATTRIBUTE
    assert downstream("report") == {"report"}
    assert downstream("manifest") == set(STAGE_NAMES)


def test_a_marker_without_a_fingerprint_is_reused_with_a_warning() -> None:
    d = decide("embed", True, None, fingerprint(_smoke(), "embed", "c"))
    assert d.action == Action.KEEP_STALE and d.reasons == (NO_FINGERPRINT,)


def test_a_new_corpus_with_the_same_recipe_resumes_and_an_unread_corpus_never_counts() -> None:
    cfg = _smoke()
    d = decide("embed", True, fingerprint(cfg, "embed", "a"), fingerprint(cfg, "embed", "b"))
    assert d.action == Action.RESUME and d.reasons == ("input corpus changed",)
    same = decide("embed", True, fingerprint(cfg, "embed", "a"), fingerprint(cfg, "embed", None))
    assert same.action == Action.SKIP


def test_mask_conditions_reach_attribute_by_method_and_pathway_only() -> None:
    """attribute computes the maps the conditions name: a threshold leaves it fresh (the
    condition's shuffled-map control follows it: mask.controls)."""
    cfg = _smoke()
    own = [c for c in cfg.mask.conditions if c.maps == "own"]
    tighter = replace(
        cfg, mask=replace(cfg.mask, conditions=(replace(own[0], threshold=0.3), *own[1:]))
    )
    assert len(tighter.mask.conditions) == len(cfg.mask.conditions)
    plan = _plan(cfg, tighter)
    assert plan["attribute"] == Action.SKIP and plan["mask"] == Action.REBUILD
    assert "mask.conditions[].method" in settings(cfg, "attribute")


def test_a_given_model_replaced_in_place_redoes_what_reads_the_model(tmp_path: Path) -> None:
    model = tmp_path / "m.ckpt"
    model.write_bytes(b"one")
    cfg = replace(_smoke(), model_path=str(model))
    old = {s: fingerprint(cfg, s, "c") for s in STAGE_NAMES}
    assert decide("embed", True, old["embed"], fingerprint(cfg, "embed", "c")).action == Action.SKIP
    model.write_bytes(b"other")
    plan = {s: decide(s, True, old[s], fingerprint(cfg, s, "c")).action for s in STAGE_NAMES}
    assert _redone(plan) == set(STAGE_NAMES) - {"manifest", "features"}


def test_force_takes_a_stage_and_keep_stale_is_an_option() -> None:
    args = build_parser().parse_args(["run", "--force", "attribute", "--keep-stale", "a=1"])
    assert args.force == ["attribute"] and args.keep_stale and args.overrides == ["a=1"]
    assert _forced(args.force, STAGE_NAMES) == ("attribute",)
    bare = build_parser().parse_args(["embed", "--force"])
    assert _forced(bare.force, ("embed",)) == ("embed",)
    with pytest.raises(ConfigError, match="--force: unknown stage 'train.epochs=3'"):
        _forced(["train.epochs=3"], STAGE_NAMES)


def test_discarding_attribute_keeps_the_trial_rows_of_the_shared_folder(tmp_path: Path) -> None:
    out = Storage(str(tmp_path))
    rows = {"utt_id": ["a", "a", "b"], "pathway": ["traversal", "trial", "classification"]}
    out.write_table("attributions/method=ig/part-0.parquet", pa.table(rows))
    ctx = RunContext(replace(VoxrayConfig(), out=str(tmp_path)))
    discard_outputs(ctx, "attribute", {})
    assert out.read_table("attributions").column("pathway").to_pylist() == ["trial"]
    assert drop_rows(out, "attributions", pc.field("pathway") == "trial") == 1
    assert out.parquet_files("attributions") == []


def test_discarding_tune_removes_the_sweeps_metrics_parts_only(tmp_path: Path) -> None:
    out = Storage(str(tmp_path))
    for rel in ("tune/results.parquet", "metrics/tune-lstm_width.parquet", "metrics/eval.parquet"):
        out.write_table(rel, pa.table({"x": [1]}))
    discard_outputs(RunContext(replace(VoxrayConfig(), out=str(tmp_path))), "tune", {})
    assert out.parquet_files("metrics") == ["metrics/eval.parquet"]
    assert not out.exists("tune")


def test_discarding_embed_keeps_other_models_rows(tmp_path: Path) -> None:
    """Rows of the model embed uses now go; another model's rows (the old marker's model
    included: a changed --model adds a model, its embeddings were made by the old one and
    stay its own) and the masked conditions' (retrain's) stay."""
    out = Storage(str(tmp_path))
    rows = {
        "model": ["old", "new", "other", "new"],
        "condition": ["none", "none", "none", "masked"],
    }
    out.write_table("embeddings/part-0.parquet", pa.table(rows))
    model = "/m/new/embedding_model.ckpt"  # named "new", after its folder
    ctx = RunContext(replace(VoxrayConfig(), out=str(tmp_path), model_path=model))
    discard_outputs(ctx, "embed", {"model": "old"})
    left = out.read_table("embeddings").to_pylist()
    assert left == [
        {"model": "old", "condition": "none"},
        {"model": "other", "condition": "none"},
        {"model": "new", "condition": "masked"},
    ]


# ------------------------------------------------------------------ the driver, stages faked


class FakeStages:
    """Stand-ins for the stage functions: features, embed and attribute write one row per
    utterance they lack (resuming as the real ones do, by committed keys); every call is
    logged with the utterances it computed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...]]] = []

    def function(self, name: str) -> Callable[[RunContext], StageResult]:
        return lambda ctx: getattr(self, name, self.whole)(ctx, name)

    def whole(self, ctx: RunContext, name: str) -> StageResult:
        self.calls.append((name, ()))
        return StageResult(name)

    def manifest(self, ctx: RunContext, name: str) -> StageResult:
        files = ctx.data.find("wav")
        ctx.out.write_table(
            "manifest.parquet",
            pa.table(
                {
                    "utt_id": [f[len("wav/") : -len(".wav")] for f in files],
                    "path": files,
                    "num_samples": [1] * len(files),
                    "split": [f.split("/")[1] for f in files],
                }
            ),
        )
        return self.whole(ctx, name)

    def _rows(self, ctx: RunContext, name: str, folder: str, value: object) -> StageResult:
        utts = ctx.out.read_table("manifest.parquet").column("utt_id").to_pylist()
        have = set()
        if ctx.out.parquet_files(folder):
            have = set(ctx.out.read_table(folder).column("utt_id").to_pylist())
        todo = tuple(u for u in utts if u not in have)
        for u in todo:
            row = {"utt_id": [u], "value": [str(value)], "pathway": ["traversal"]}
            row |= {"model": ["m"], "condition": ["none"]}
            ctx.out.write_table(f"{folder}/{u.replace('/', '_')}.parquet", pa.table(row))
        self.calls.append((name, todo))
        return StageResult(name)

    def features(self, ctx: RunContext, name: str) -> StageResult:
        result = self._rows(ctx, name, "features", ctx.cfg.features.num_mel_bins)
        result.info = {"kinds": [s.name for s in run_front_ends(ctx)]}
        return result

    def embed(self, ctx: RunContext, name: str) -> StageResult:
        return self._rows(ctx, name, "embeddings", ctx.cfg.embed.segment_s)

    def attribute(self, ctx: RunContext, name: str) -> StageResult:
        return self._rows(ctx, name, "attributions", ctx.cfg.attribution.ig_steps)


@pytest.fixture
def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(run(keep_stale=..., force=..., **overrides) -> the stage calls, corpus, --out)."""
    fakes = FakeStages()
    monkeypatch.setattr(Stage, "function", lambda self: fakes.function(self.name))
    monkeypatch.setattr(stages, "uses_ray", lambda ctx, stage: False)
    data = tmp_path / "corpus"
    for utt in ("train/s1/v/1", "train/s1/v/2", "test/s2/v/1"):
        (data / "wav" / utt).parent.mkdir(parents=True, exist_ok=True)
        (data / "wav" / f"{utt}.wav").write_bytes(b"x")

    def run(
        keep_stale: bool = False,
        force: tuple[str, ...] = (),
        only: str = "",
        **overrides: object,
    ) -> list[tuple[str, tuple[str, ...]]]:
        """``only``: one stage's command (it runs even when fresh)."""
        fakes.calls.clear()
        cfg = replace(_smoke(**overrides), data_root=str(data), out=str(tmp_path / "out"))
        names = (only,) if only else STAGE_NAMES
        run_stages(RunContext(cfg), names, force=force, keep_stale=keep_stale, rerun=bool(only))
        return list(fakes.calls)

    return run, data, Storage(str(tmp_path / "out"))


def test_the_driver_redoes_only_what_a_change_makes_stale(
    driver, caplog: pytest.LogCaptureFixture
) -> None:
    run, _, out = driver
    assert [name for name, _ in run()] == list(STAGE_NAMES)
    assert run() == []  # nothing changed: a no-op
    ig_steps = _smoke().attribution.ig_steps

    caplog.clear()
    with caplog.at_level("INFO", logger="voxray"):
        again = run(**{"attribution.ig_steps": 64})
    assert [name for name, _ in again] == [s for s in STAGE_NAMES if s in AFTER_ATTRIBUTE]
    assert dict(again)["attribute"] == ("test/s2/v/1", "train/s1/v/1", "train/s1/v/2")
    assert out.read_table("attributions").column("value").to_pylist() == ["64"] * 3
    stale = "redone, its outputs are stale"
    assert f"stage attribute: {stale}: attribution.ig_steps: {ig_steps} -> 64" in caplog.text
    assert f"stage mask: {stale}: upstream attribute changed" in caplog.text
    assert run(**{"attribution.ig_steps": 64}) == []


def test_the_driver_adds_a_new_test_file_incrementally(driver) -> None:
    run, data, _ = driver
    run()
    (data / "wav" / "test" / "s2" / "v" / "2.wav").write_bytes(b"y")
    calls = dict(run())
    assert "train" not in calls  # a test speaker's utterance leaves the model as it is
    assert calls["features"] == calls["embed"] == calls["attribute"] == ("test/s2/v/2",)
    assert set(calls) == set(STAGE_NAMES) - {"train"}
    assert run() == []


def test_keep_stale_is_recorded_and_force_redoes_a_stage_and_what_reads_it(driver) -> None:
    run, _, out = driver
    run()
    assert run(keep_stale=True, **{"attribution.ig_steps": 64}) == []
    kept = stage_info(out, "attribute")["kept_stale"]
    assert kept == [f"attribution.ig_steps: {_smoke().attribution.ig_steps} -> 64"]
    forced = run(force=("mask",))
    assert [name for name, _ in forced] == ["mask", "retrain", "tune", "evaluate", "report"]
    assert "kept_stale" not in stage_info(out, "mask")
    forced_attribute = dict(run(force=("attribute",)))
    assert len(forced_attribute["attribute"]) == 3  # its rows discarded, all recomputed


def test_an_old_marker_without_a_fingerprint_is_kept_and_marked(driver) -> None:
    run, _, out = driver
    run()
    info = stage_info(out, "embed")
    del info["fingerprint"]
    mark_stage_done(out, "embed", info)
    assert run() == []
    assert stage_info(out, "embed")["kept_stale"] == [NO_FINGERPRINT]
    assert run(only="embed") == [("embed", ())]  # named: it runs, resuming (nothing missing)
    assert "fingerprint" in stage_info(out, "embed")


def test_a_one_stage_command_rebuilds_its_stage_when_stale(driver) -> None:
    run, _, out = driver
    run()
    assert run(only="attribute", **{"attribution.ig_steps": 64}) == [
        ("attribute", ("test/s2/v/1", "train/s1/v/1", "train/s1/v/2"))
    ]
    assert run(only="attribute", **{"attribution.ig_steps": 64}) == [("attribute", ())]


def test_a_key_that_became_operational_leaves_old_outputs_fresh(
    driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Markers written while ``embed.from_audio`` was still part of embed's recipe: moving it
    to OPERATIONAL reuses them (embed and what reads it), and a real change still redoes."""
    from voxray.pipeline import fingerprint as fp

    run, _, _ = driver
    with monkeypatch.context() as older:
        older.setattr(
            fp, "OPERATIONAL", tuple(k for k in fp.OPERATIONAL if k != "embed.from_audio")
        )
        run()
        assert run(**{"embed.from_audio": "true"})[0][0] == "embed"  # then it was a recipe
        run()
    assert run() == []
    assert run(**{"embed.from_audio": "true"}) == []
    redone = [name for name, _ in run(**{"train.epochs": 7})]
    assert redone == [s for s in STAGE_NAMES if s not in ("manifest", "features")]


def test_a_key_added_since_keeps_old_outputs_at_its_default_and_redoes_them_otherwise(
    driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Markers written before ``train.patience`` existed: at its default (no early stopping,
    what voxray did then) nothing is redone; set to 3, train and what reads it are."""
    from voxray.pipeline import fingerprint as fp

    run, _, _ = driver
    with monkeypatch.context() as older:  # a voxray that did not know the keys
        older.setattr(fp, "OPERATIONAL", (*fp.OPERATIONAL, "train.patience", "train.val_fraction"))
        run()
    assert run() == []
    assert run(**{"mask.conditions": "[]"})[0][0] == "attribute"
    assert run(**{"mask.conditions": "[]"}) == []  # no records: not filled with the defaults'
    redone = [name for name, _ in run(**{"train.patience": 3})]
    assert redone == [s for s in STAGE_NAMES if s not in ("manifest", "features")]
