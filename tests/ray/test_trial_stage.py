"""The trial stage on a small output folder: the worst errors are selected at the EER
threshold, every (trial, side, method) lands in attributions/ with its key and equals the trial
attribution computed directly, and a rerun computes nothing again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import torch

from voxray import schema
from voxray.attribution.trial import attribute_joint, attribute_trials
from voxray.check import check
from voxray.config import load_config
from voxray.io.sink import write_partitioned
from voxray.models.checkpoint import load_model
from voxray.pipeline.context import RunContext
from voxray.pipeline.trial_joint import fit_frames
from voxray.pipeline.trial_stage import TRIAL_KEYS, run_trial
from voxray.testing.synthetic_outputs import make_outputs

pytestmark = pytest.mark.ray


def _write_embeddings(s, model_dir: str) -> dict[str, np.ndarray]:
    """Whole-utterance embeddings of every utterance, as the embed stage writes them."""
    model = load_model(s.uri(model_dir)).classifier.eval()
    feats = s.read_table("features/kind=fbank")
    utts = feats.column("utt_id").to_pylist()
    with torch.no_grad():
        embs = [
            model.embedder(torch.from_numpy(x.copy())[None])[0].numpy()
            for x in schema.matrices(feats)
        ]
    n = len(utts)
    t = schema.table(
        schema.EMBEDDINGS,
        {
            "utt_id": utts,
            "segment": pa.array([-1] * n, pa.int32()),
            "start_frame": pa.array([0] * n, pa.int32()),
            "num_frames": feats.column("num_frames"),
            "model": ["ecapa"] * n,
            "condition": ["none"] * n,
            "embedding": schema.floats_column(embs),
        },
    )
    write_partitioned(s, "embeddings", t, schema.EMBEDDINGS, ("utt_id", "segment"))
    return dict(zip(utts, embs, strict=True))


def _plant_errors(s, emb: dict[str, np.ndarray]) -> tuple[tuple[str, str], tuple[str, str]]:
    """Relabel the best-scoring target trial as an impostor and the worst-scoring impostor as a
    target (the untrained model separates the synthetic speakers perfectly): a known false
    accept and a known false reject at the EER threshold."""
    trials = s.read_table("trials.parquet").to_pandas()
    trials["score"] = [
        float(np.dot(emb[a], emb[b]) / (np.linalg.norm(emb[a]) * np.linalg.norm(emb[b])))
        for a, b in zip(trials.utt_a, trials.utt_b, strict=True)
    ]
    fa = trials[trials.label == 1].score.idxmax()
    fr = trials[trials.label == 0].score.idxmin()
    trials.loc[fa, "label"], trials.loc[fr, "label"] = 0, 1
    s.write_table(
        "trials.parquet", schema.table(schema.TRIALS, trials.drop(columns="score").to_dict("list"))
    )
    return (
        (trials.loc[fa, "utt_a"], trials.loc[fa, "utt_b"]),
        (trials.loc[fr, "utt_a"], trials.loc[fr, "utt_b"]),
    )


def _check_joint(rows: pd.DataFrame, model, x_of: dict) -> None:
    """Each trial's two joint rows equal attribute_joint from its named cohort pair (fitted in
    time to its sides), an impostor trial sharing no utterance with it."""
    assert len(rows) == 4 and (rows.joint_baseline == "cohort_mean").all()
    by_key = {(r.utt_a, r.utt_b, r.side): r.map for r in rows.itertuples()}
    params = load_config(profile="smoke").attribution
    for (a, b), g in rows.groupby(["utt_a", "utt_b"]):
        r = g.iloc[0]
        assert not {a, b} & {r.baseline_utt_a, r.baseline_utt_b}
        pair = [torch.from_numpy(x_of[u].copy())[None] for u in (a, b)]
        bases = [
            torch.from_numpy(fit_frames(x_of[u], len(x_of[side])))[None]
            for u, side in ((r.baseline_utt_a, a), (r.baseline_utt_b, b))
        ]
        direct = attribute_joint(model, *pair, params, *bases)
        for side, m in (("joint_a", direct.maps_a), ("joint_b", direct.maps_b)):
            np.testing.assert_allclose(by_key[(a, b, side)], m[0], rtol=1e-4, atol=1e-6)
        assert r.score == pytest.approx(float(direct.score[0]), abs=1e-6)
        assert r.baseline_score == pytest.approx(float(direct.baseline_score[0]), abs=1e-6)
        assert r.completeness_error == pytest.approx(float(direct.completeness_error[0]), abs=1e-4)


def test_worst_errors_are_explained_once_with_their_keys(ray_local, tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = make_outputs(str(out), speakers=6, utts=3, frames=30, bins=8)
    emb = _write_embeddings(s, "models/ecapa")
    false_accept, false_reject = _plant_errors(s, emb)
    overrides = [
        f"out={out}",
        "trial.select=worst",
        "trial.worst_k=1",
        "trial.methods=[saliency,integrated_gradients]",
        "trial.resources.concurrency=1",
    ]
    cfg = load_config(profile="smoke", overrides=overrides)
    result = run_trial(RunContext(cfg))
    table = s.read_table("attributions")
    rows = table.to_pandas()
    assert (rows.pathway == "trial").all()
    # trials x sides x methods, and IG's joint decomposition: two rows per trial
    assert result.outputs == len(rows) == result.inputs == 2 * 2 * 2 + 2 * 2
    assert result.info["joint"]["methods"] == ["integrated_gradients"]
    assert {(a, b) for a, b in zip(rows.utt_a, rows.utt_b, strict=True)} == {
        false_accept,
        false_reject,
    }
    assert not rows.duplicated(list(TRIAL_KEYS)).any()

    model = load_model(s.uri("models/ecapa")).classifier.eval()
    feats = s.read_table("features/kind=fbank")
    x_of = dict(zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True))
    rows["map"] = schema.matrices(table)
    joint = rows.side.isin(schema.JOINT_SIDES)
    _check_joint(rows[joint], model, x_of)
    for r in rows[~joint].itertuples():
        explained, fixed = (r.utt_a, r.utt_b) if r.side == "a" else (r.utt_b, r.utt_a)
        assert r.utt_id == explained
        direct = attribute_trials(
            model,
            torch.from_numpy(x_of[explained].copy())[None],
            torch.from_numpy(emb[fixed])[None],
            str(r.method),
            cfg.attribution,
        )
        np.testing.assert_allclose(r.map, direct.maps[0].numpy(), rtol=1e-4, atol=1e-6)
        assert r.score == pytest.approx(float(direct.score[0]), rel=1e-5, abs=1e-6)
        if direct.baseline_score is None:
            assert pd.isna(r.baseline_score)
        else:
            assert r.baseline_score == pytest.approx(float(direct.baseline_score[0]), abs=1e-6)
        if r.method == "integrated_gradients":
            assert r.completeness_error == pytest.approx(
                float(direct.completeness_error[0]), rel=1e-3, abs=1e-6
            )
        else:
            assert np.isnan(r.completeness_error)

    assert not check(str(out)), check(str(out))

    again = run_trial(RunContext(cfg))
    assert again.outputs == result.outputs
    assert s.read_table("attributions").num_rows == len(rows)
