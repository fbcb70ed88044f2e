"""The trial stage's joint decomposition: the cohort-mean baseline pair, the jobs it plans, the
actor's joint rows on a tiny untrained ECAPA (they add up within 1% and equal
``attribute_joint`` on the same inputs), the contract check of those rows, and the config key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch

from voxray import schema
from voxray.attribution.trial import attribute_joint
from voxray.check import _joint_problems
from voxray.config import AttributionConfig, ConfigError, TrialConfig, load_config
from voxray.models.checkpoint import load_model
from voxray.pipeline.model_ref import ModelRef
from voxray.pipeline.trial_joint import cohort_pairs, fit_frames
from voxray.pipeline.trial_stage import (
    ComputeTrialAttributions,
    JointWork,
    Trial,
    TrialJob,
    joint_info,
    trial_jobs,
)
from voxray.testing.synthetic_outputs import make_outputs

PARAMS = AttributionConfig(ig_steps=64, internal_batch_size=256)


def test_the_cohort_pair_is_the_impostor_trial_nearest_the_mean_sharing_no_utterance() -> None:
    trials = [
        Trial("l", 0, "a", "b", 0.1),
        Trial("l", 0, "c", "d", 0.3),  # nearest the impostor mean 0.3, but shares c
        Trial("l", 0, "e", "f", 0.5),
        Trial("l", 0, "g", "h", 0.28),
        Trial("l", 1, "c", "x", 0.9),
        Trial("other", 1, "p", "q", 0.9),
    ]
    pairs = cohort_pairs(trials, [trials[4], trials[1], trials[5]])
    assert pairs[("l", "c", "x")] == ("g", "h")
    assert pairs[("l", "c", "d")] == ("g", "h")
    assert ("other", "p", "q") not in pairs  # its list has no impostor trial


def test_fit_frames_cuts_or_repeats_in_time() -> None:
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    np.testing.assert_array_equal(fit_frames(x, 2), x[:2])
    np.testing.assert_array_equal(fit_frames(x, 5), x[[0, 1, 2, 0, 1]])


def test_joint_rows_are_planned_for_ig_only_and_the_others_say_why() -> None:
    cfg = TrialConfig(methods=("integrated_gradients", "deeplift"), sides=("a",))
    t = Trial("l", 1, "a", "b", 0.9)
    jobs = trial_jobs([t], cfg, {("l", "a", "b"): ("p", "q")})
    joint = [j for j in jobs if j.side in schema.JOINT_SIDES]
    assert [(j.side, j.method, j.explained) for j in joint] == [
        ("joint_a", "integrated_gradients", "a"),
        ("joint_b", "integrated_gradients", "b"),
    ]
    assert joint[0].sibling == joint[1] and (joint[0].base_a, joint[0].base_b) == ("p", "q")
    info = joint_info(cfg, [t], {})
    assert info["methods"] == ["integrated_gradients"] and info["without_baseline"] == 1
    assert "DeepLift" in info["skipped"]["deeplift"]
    off = TrialConfig(methods=cfg.methods, joint_baseline="none")
    assert all(j.side in ("a", "b") for j in trial_jobs([t], off, {("l", "a", "b"): ("p", "q")}))


def test_the_config_refuses_an_unknown_joint_baseline() -> None:
    with pytest.raises(ConfigError, match=r"trial\.joint_baseline.*'cohort_mean'"):
        load_config(profile="smoke", overrides=["trial.joint_baseline=threshold"])
    assert load_config(profile="smoke").trial.joint_baseline == "cohort_mean"


@pytest.fixture(scope="module")
def joint_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, dict, str]:
    """The actor's rows for two joint pairs (one batch of their a sides) on make_outputs'
    untrained ECAPA, with the features and the model's path."""
    torch.set_num_threads(1)
    s = make_outputs(str(tmp_path_factory.mktemp("out")), speakers=4, utts=2, frames=30, bins=8)
    feats = s.read_table("features/kind=fbank")
    x = dict(zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True))
    u = sorted(x)
    jobs = [
        TrialJob("l", u[0], u[1], "joint_a", "integrated_gradients", u[4], u[7]),
        TrialJob("l", u[2], u[3], "joint_a", "integrated_gradients", u[5], u[6]),
    ]
    work = JointWork(
        {j.utt_a: [j] for j in jobs}, {k: x[k] for k in (u[1], u[3], *u[4:])}, "cohort_mean"
    )
    path = s.uri("models/ecapa")
    actor = ComputeTrialAttributions(ModelRef(path, "ecapa"), PARAMS, {}, {}, work, None, 0, None)
    batch = feats.filter(pc.is_in(feats.column("utt_id"), pa.array([u[0], u[2]])))
    return actor(batch).to_pandas(), x, path


def test_the_stage_joint_rows_add_up_within_one_percent(joint_rows) -> None:
    rows, _, _ = joint_rows
    assert rows.error.isna().all() and len(rows) == 4
    for _, g in rows.groupby(["utt_a", "utt_b"]):
        assert sorted(g.side) == list(schema.JOINT_SIDES)
        assert (g.joint_baseline == "cohort_mean").all() and g.baseline_utt_a.notna().all()
        total = sum(float(np.sum(v, dtype=np.float64)) for v in g["values"])
        delta = float(g.score.iloc[0] - g.baseline_score.iloc[0])
        assert abs(delta) > 0.05, delta  # a change worth decomposing
        assert abs(total - delta) / abs(delta) < 0.01
        # stored from float32 sums: equal to the float64 one within 1e-5 of the score change
        err = abs(total - delta) / abs(delta)
        assert g.completeness_error.iloc[0] == pytest.approx(err, abs=1e-5)
    assert not _joint_problems(rows)


def test_the_stage_joint_rows_equal_attribute_joint(joint_rows) -> None:
    rows, x, path = joint_rows
    model = load_model(path).classifier.eval()
    for (a, b), g in rows.groupby(["utt_a", "utt_b"]):
        r = g.iloc[0]
        pair = [torch.from_numpy(x[u].copy())[None] for u in (a, b)]
        bases = [
            torch.from_numpy(fit_frames(x[u], len(x[side])))[None]
            for u, side in ((r.baseline_utt_a, a), (r.baseline_utt_b, b))
        ]
        direct = attribute_joint(model, *pair, PARAMS, *bases)
        by_side = dict(zip(g.side, schema.matrices(pa.Table.from_pandas(g)), strict=True))
        np.testing.assert_allclose(by_side["joint_a"], direct.maps_a[0], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(by_side["joint_b"], direct.maps_b[0], rtol=1e-4, atol=1e-6)
        assert r.baseline_score == pytest.approx(float(direct.baseline_score[0]), abs=1e-6)


def test_the_check_finds_a_joint_pair_that_does_not_add_up(joint_rows) -> None:
    rows = joint_rows[0].copy()
    rows.at[0, "completeness_error"] = rows.at[0, "completeness_error"] + 0.5
    lone = rows[rows.side == "joint_a"]
    assert any("its maps give" in p for p in _joint_problems(rows))
    assert any("not both of a joint pair" in p for p in _joint_problems(lone))
