"""The analyses write every estimate with its interval: Top-1 (identification), deletion /
insertion AUCs and pixel-flipping accuracies, on a small synthetic output folder (no Ray)."""

from __future__ import annotations

from pathlib import Path

import pytest

from voxray.config import load_config
from voxray.pipeline.analyses.faithfulness import run_faithfulness
from voxray.pipeline.analyses.identification import run_identification
from voxray.pipeline.context import RunContext
from voxray.testing.synthetic_outputs import make_outputs


def test_top1_aucs_and_flipping_carry_their_interval(tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = make_outputs(str(out), speakers=6, utts=3, frames=120, bins=8)
    cfg = load_config(
        profile="smoke",
        overrides=[
            f"out={out}",
            "eval.faithfulness.methods=[saliency]",
            "eval.faithfulness.steps=2",
            "eval.faithfulness.flip_fractions=[0.0, 0.01]",
        ],
    )
    ctx = RunContext(cfg)
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
