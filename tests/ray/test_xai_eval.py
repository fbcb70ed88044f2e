"""The evaluate stage's Quantus step on a small output folder: one row per metric and
(method, pathway) job, with the family and method columns, and the same values as measuring
the job directly on the driver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from voxray.config import load_config
from voxray.eval.xai_metrics import FAMILIES, ExplainedModel, measure, voxray_explain
from voxray.models.checkpoint import load_model
from voxray.pipeline.analyses.crops import crops
from voxray.pipeline.context import RunContext
from voxray.pipeline.xai_eval import run_xai, xai_jobs
from voxray.testing.synthetic_outputs import make_outputs

pytestmark = pytest.mark.ray


def test_xai_rows_name_family_and_method_and_match_a_direct_measure(
    ray_local, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    s = make_outputs(str(out), speakers=6, utts=3, frames=30, bins=8)
    overrides = [
        f"out={out}",
        "train.segment_s=0.2",
        "eval.xai.methods=[saliency,grad_cam_pp]",
        "eval.xai.pathways=[traversal,classification,trial]",
        "eval.xai.max_utterances=3",
        "eval.xai.samples=2",
        "eval.xai.metrics=[FaithfulnessCorrelation,Sparseness,MPRT,RandomLogit]",
    ]
    cfg = load_config(profile="smoke", overrides=overrides)
    ctx = RunContext(cfg)
    jobs = xai_jobs(cfg, has_head=True)
    assert jobs == [
        ("saliency", "traversal"),
        ("saliency", "classification"),
        ("saliency", "trial"),
        ("grad_cam_pp", "cam"),
    ]
    info = run_xai(ctx)
    rows = s.read_table("metrics/xai-ecapa.parquet").to_pandas()
    # 4 jobs x 4 metrics x 3 maps (real, random, inverted) x 3 utterances
    assert len(rows) == info["rows"] == 4 * 4 * 3 * 3
    assert set(rows.condition) == {"real", "random", "inverted"}
    assert rows.utt_id.notna().all() and rows.speaker_id.notna().all()
    assert set(rows.method) == {f"{m}/{p}" for m, p in jobs}
    assert (rows.family == rows.metric.map(FAMILIES)).all()
    assert (rows.list == "xai_sample").all()
    traversal = rows[rows.method == "saliency/traversal"]
    assert traversal[traversal.metric == "RandomLogit"].value.isna().all()  # one output

    model = load_model(s.uri("models/ecapa")).classifier.eval()
    sample = crops(ctx, "fbank", "test", 6, 20, lambda _: 0)
    feats, bank_feats = sample.feats[:3], sample.feats[3:6]
    with torch.no_grad():
        bank = model.embedder(bank_feats)
    wrapper = ExplainedModel(model, "trial", bank)
    kwargs = {"method": "saliency", "params": cfg.attribution}
    direct = measure(wrapper, feats, cfg.eval.xai, voxray_explain, kwargs, cfg.seed)
    trial = rows[rows.method == "saliency/trial"]
    ours = trial.groupby(["metric", "condition"]).value.apply(list)
    for r in direct:
        got = np.asarray(ours[r.metric, r.kind], dtype=np.float64)
        np.testing.assert_allclose(got, r.values, rtol=1e-4, atol=1e-5, err_msg=str(r))
