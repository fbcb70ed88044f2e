"""The analyses write every estimate with its interval: Top-1 (identification), deletion /
insertion AUCs and pixel-flipping accuracies, on a small synthetic output folder (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxray.config import load_config
from voxray.io.storage import Storage
from voxray.pipeline.analyses.faithfulness import run_faithfulness
from voxray.pipeline.analyses.gender import run_gender
from voxray.pipeline.analyses.identification import run_identification
from voxray.pipeline.analyses.multispeaker import run_multispeaker
from voxray.pipeline.context import RunContext
from voxray.testing.synthetic_outputs import make_outputs


def _outputs(tmp_path: Path, overrides: list[str], bins: int = 8) -> tuple[Storage, RunContext]:
    """A synthetic output folder (6 speakers, 3 utterances each) and the smoke run on it."""
    out = tmp_path / "out"
    s = make_outputs(str(out), speakers=6, utts=3, frames=120, bins=bins)
    return s, RunContext(load_config(profile="smoke", overrides=[f"out={out}", *overrides]))


def test_top1_aucs_and_flipping_carry_their_interval(tmp_path: Path) -> None:
    s, ctx = _outputs(
        tmp_path,
        [
            "eval.faithfulness.methods=[saliency]",
            "eval.faithfulness.steps=2",
            "eval.faithfulness.flip_fractions=[0.0, 0.01]",
        ],
    )
    run_identification(ctx)
    info = run_faithfulness(ctx)
    m = s.read_table("metrics").to_pandas()
    estimates = m[m.metric.str.match(r"^(top1|deletion_auc|insertion_auc|acc@.*)$")]
    assert len(estimates) >= 1 + 3 * 2 * 2 + 2  # top1; 3 orders x 2 scorers x 2 AUCs; flips
    assert ((estimates.ci_low <= estimates.value) & (estimates.value <= estimates.ci_high)).all()
    assert (estimates.n > 0).all()
    faith = estimates[estimates.list == "faithfulness"]
    assert (faith.n == info["utterances"]).all()
    # the AUC is the mean of the per-utterance AUCs the interval resamples
    for key, auc in info["aucs"].items():
        label, scorer, mode = key.split(":")
        row = faith[(faith.condition == label) & (faith.scorer == scorer)]
        assert row[row.metric == f"{mode}_auc"].value.iloc[0] == pytest.approx(auc, rel=1e-9)
    utterances = m[m.metric == "utterances"]
    assert utterances.ci_low.isna().all()  # a count has no interval


def test_multispeaker_rows_and_mixture_curves_carry_their_interval(tmp_path: Path) -> None:
    """Table 2's Top-1, precision and recall and Fig. 4's B-A-B curves: each value the mean
    over the mixtures, inside its interval, n the number of mixtures."""
    s, ctx = _outputs(
        tmp_path,
        [
            "eval.multispeaker.trials_per_case=4",
            "eval.multispeaker.segment_s=0.5",
            "eval.multispeaker.cases=[B-A-B]",
            "eval.multispeaker.methods=[layer_cam]",
            "eval.faithfulness.steps=2",
        ],
    )
    run_multispeaker(ctx)
    m = s.read_table("metrics").to_pandas()
    table = m[m.metric.isin(["top1", "precision", "recall"])]
    assert set(table.case) == {"B-A-B"} and len(table) > 3
    assert ((table.ci_low <= table.value) & (table.value <= table.ci_high)).all()
    assert (table.n == 4).all()
    curves = m[(m.case == "B-A-B") & m.metric.str.match(r"^(deletion|insertion)")]
    assert set(curves.condition) == {"random", "layer_cam@" + curves.condition.iloc[-1][10:]}
    assert set(curves.metric) == {
        f"{mode}{suffix}"
        for mode in ("deletion", "insertion")
        for suffix in ("@0", "@0.5", "@1", "_auc")
    }
    assert ((curves.ci_low <= curves.value) & (curves.value <= curves.ci_high)).all()
    assert (curves.n == 4).all()
    # deleting every bin leaves a blank input, revealing none: the two curves meet there
    for cond, rows in curves.groupby("condition"):
        v = rows.set_index("metric").value
        assert v["deletion@1"] == pytest.approx(v["insertion@0"]), cond


def test_gender_is_skipped_with_its_reason_on_a_front_end_alexnet_cannot_read(
    tmp_path: Path,
) -> None:
    # Resemblyzer's front-end has 40 mel bins: the default gender experiment must not crash
    s, ctx = _outputs(tmp_path, [], bins=40)
    info = run_gender(ctx)
    assert "needs at least 63 feature bins" in info["skipped"] and "40 bins" in info["skipped"]
    assert not s.exists("metrics") or "gender" not in set(
        s.read_table("metrics").column("list").to_pylist()
    )


def test_gender_accuracies_carry_their_interval(tmp_path: Path) -> None:
    # AlexNet needs at least 63 bins
    s, ctx = _outputs(tmp_path, ["eval.faithfulness.flip_fractions=[0.0, 0.01]"], bins=64)
    run_gender(ctx)
    m = s.read_table("metrics").to_pandas()
    acc = m[m.list == "gender"]
    assert len(acc) >= 2 * 2 * 2  # 2 models x (LRP, random) x fractions
    assert ((acc.ci_low <= acc.value) & (acc.value <= acc.ci_high)).all()
    # the test split: 3 speakers x 3 utterances, resampled by speaker
    assert (acc.n == 9).all()
    assert (acc.ci_high > acc.ci_low).any()
