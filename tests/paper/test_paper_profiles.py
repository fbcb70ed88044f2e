"""Each seed paper's profile runs end to end at smoke size: its set-up (model, front-end,
methods, analyses) unchanged, only the compute sizes shrunk by overrides, on a tiny generated
corpus. Each run must complete every stage, meet the output contract and produce what that
paper's experiments report."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pipeline import accounts_for_inputs, read, run_profile
from voxray.check import check
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.pipeline.stages import STAGE_NAMES

#: compute sizes only (epochs, widths, sample counts); each profile's set-up stays as it is.
SMALL = (
    "train.epochs=1",
    "train.segment_s=1.0",
    "attribution.max_utterances=2",
    "attribution.perturbation_max_utterances=1",
    "attribution.ig_steps=4",
    "attribution.shap_samples=2",
    "attribution.patch_frames=40",
    "attribution.patch_bins=40",
    "eval.faithfulness.max_utterances=2",
    "eval.faithfulness.steps=4",
    "report.heatmap_utterances=1",
)
PROFILES = {
    # Table 2 with one of its conditions (IG/product on Traversal, and the shuffled-map control
    # mask.controls adds), from scratch only: each condition and variant is one more retraining,
    # and the stage runs the same code for every one
    "paper000": (
        "model.channels=32",
        "model.embedding_dim=32",
        "mask.conditions=[{method: integrated_gradients, pathway: traversal, rule: product}]",
        "retrain.variants=[scratch]",
    ),
    "paper001": (
        "model.channels=8",
        "model.embedding_dim=32",
        "eval.multispeaker.trials_per_case=1",
        "eval.multispeaker.segment_s=1.0",
    ),
    "paper002": (
        "model.channels=8",
        "model.embedding_dim=32",
        "eval.gender.epochs=1",
        "eval.gender.segment_s=1.0",
    ),
    "paper003": (
        "model.channels=16",
        "model.embedding_dim=32",
        "model.bottleneck_dim=16",
        "embed.segment_s=1.0",
    ),
}


def _metrics(out: Path):
    return read(out, "metrics").to_pandas()


def _paper000(out: Path) -> None:
    # Table 2: the base model, and a retrained model per mask condition, each with an EER
    conditions = set(_metrics(out).query("metric == 'eer'").condition)
    assert "none" in conditions and len(conditions) >= 1 + 2, conditions
    assert any("shuffled" in c for c in conditions), conditions
    methods = set(read(out, "attributions", ["method"]).column("method").to_pylist())
    assert {"integrated_gradients", "gradient_shap", "deeplift", "saliency"} <= methods


def _paper001(out: Path) -> None:
    methods = set(read(out, "attributions", ["method"]).column("method").to_pylist())
    assert methods == {"grad_cam_pp", "score_cam", "layer_cam"}
    metrics = set(_metrics(out).metric)
    assert {"deletion_auc", "insertion_auc"} <= metrics, metrics


def _paper002(out: Path) -> None:
    methods = set(read(out, "attributions", ["method"]).column("method").to_pylist())
    assert methods == {"lrp_0", "lrp_epsilon", "lrp_gamma"}
    gender = _metrics(out).query("list == 'gender'")  # pixel flipping of the gender classifier
    assert set(gender.condition) >= {"lrp_0", "random"}, gender


def _paper003(out: Path) -> None:
    scorers = set(read(out, "scores", ["scorer"]).column("scorer").to_pylist())
    assert "mean_cossim" in scorers, scorers
    for family in ("ahc-", "ds-"):  # AHC and dominant sets over every linkage
        assert any(s.startswith(family) for s in scorers), scorers
    # 3.3's early stopping: a validation loss every epoch, the kept epoch recorded
    history = read(out, "models/bilstm/history.parquet").to_pandas()
    assert history.val_loss.notna().all() and (history.best_epoch >= 1).all(), history
    # the Fig. 2 / Fig. 3 sweeps, each EER with its interval
    sweeps = _metrics(out).query("list in ('lstm_width', 'segment_length') and metric == 'eer'")
    assert set(sweeps.list) == {"lstm_width", "segment_length"}, sweeps
    assert (sweeps.ci_low <= sweeps.value).all() and (sweeps.value <= sweeps.ci_high).all()


OUTCOMES = {
    "paper000": _paper000,
    "paper001": _paper001,
    "paper002": _paper002,
    "paper003": _paper003,
}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_paper_profile_runs_at_smoke_size(profile: str, smoke_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_profile(smoke_corpus, out, profile, *SMALL, *PROFILES[profile], timeout=1800)
    s = Storage(str(out))
    for stage in STAGE_NAMES:
        info = stage_info(s, stage)
        if info:
            assert accounts_for_inputs(info), (stage, info)
    assert check(str(out)) == []
    assert s.exists("report/index.html")
    OUTCOMES[profile](out)
