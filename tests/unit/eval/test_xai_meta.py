"""Metrics that can fail: Completeness as a relative error against the method's own baseline
(IG complete on ECAPA, Saliency not), and the three-map meta-evaluation that flags a metric
unable to rank a real map above a random one and leaves it out of the method ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.support.speaker_models import narrow_ecapa
from voxray import schema
from voxray.config import AttributionConfig, XaiMetricsConfig
from voxray.eval.xai_meta import UNINFORMATIVE, meta_verdict
from voxray.eval.xai_metrics import ExplainedModel, measure, voxray_explain
from voxray.models.base import SpeakerClassifier
from voxray.report.sections.xai import deeplift_note, meta_table, meta_verdicts, methods_table

CFG = XaiMetricsConfig(samples=2, correlation_runs=10, max_utterances=4)


@pytest.fixture(scope="module")
def ecapa() -> SpeakerClassifier:
    return narrow_ecapa((40, 32, 16))


@pytest.fixture(scope="module")
def feats() -> torch.Tensor:
    return torch.randn(3, 30, 40, generator=torch.Generator().manual_seed(1))


def _completeness(model: SpeakerClassifier, feats: torch.Tensor, method: str) -> np.ndarray:
    params = AttributionConfig(ig_steps=32, internal_batch_size=256, baseline="zeros")
    kwargs = {"method": method, "params": params}
    wrapper = ExplainedModel(model, "classification")
    (res,) = measure(
        wrapper,
        feats,
        CFG,
        voxray_explain,
        kwargs,
        metrics=["Completeness"],
        baseline="zeros",
        kinds=("real",),
    )
    return np.asarray(res.values)


def test_ig_is_complete_within_one_percent_on_ecapa_and_saliency_is_not(
    ecapa: SpeakerClassifier, feats: torch.Tensor
) -> None:
    ig = _completeness(ecapa, feats, "integrated_gradients")
    assert np.isfinite(ig).all() and ig.max() < 0.01, ig
    sal = _completeness(ecapa, feats, "saliency")
    assert sal.min() > 0.2, sal


def test_completeness_against_a_baseline_quantus_cannot_fill_is_undefined(
    ecapa: SpeakerClassifier, feats: torch.Tensor
) -> None:
    kwargs = {"method": "saliency", "params": AttributionConfig()}
    wrapper = ExplainedModel(ecapa, "classification")
    res = measure(
        wrapper, feats, CFG, voxray_explain, kwargs, metrics=["Completeness"], baseline="gaussian"
    )
    assert all(np.isnan(r.value) and r.note for r in res)


def test_metrics_blind_to_placement_are_flagged_on_real_scores(
    ecapa: SpeakerClassifier, feats: torch.Tensor
) -> None:
    """Sparseness and Completeness are functions of the map's values alone: a permuted map
    scores exactly as the real one, so no interval can put the real map above it."""
    kwargs = {"method": "input_x_gradient", "params": AttributionConfig()}
    wrapper = ExplainedModel(ecapa, "classification")
    res = measure(
        wrapper, feats, CFG, voxray_explain, kwargs, metrics=["Sparseness", "Completeness"]
    )
    by = {(r.metric, r.kind): np.asarray(r.values) for r in res}
    for metric in ("Sparseness", "Completeness"):
        np.testing.assert_allclose(by[metric, "real"], by[metric, "random"], rtol=1e-5)
        v = meta_verdict(
            metric,
            by[metric, "real"],
            by[metric, "random"],
            by[metric, "inverted"],
            ["s1", "s2", "s3"],
        )
        assert not v.informative
    # reversing the order changes the sum (not the range): Completeness sees it
    assert not np.allclose(by["Completeness", "inverted"], by["Completeness", "real"])


def test_meta_verdict_follows_the_interval_and_the_orientation() -> None:
    spk = np.repeat(["a", "b", "c", "d"], 3)
    real = np.linspace(0.6, 0.9, 12)
    assert meta_verdict("FaithfulnessCorrelation", real, real - 0.5, -real, spk).informative
    assert not meta_verdict("FaithfulnessCorrelation", real, real, -real, spk).informative
    # lower is better for a sensitivity: a random map with lower sensitivity wins
    assert not meta_verdict("MaxSensitivity", real, real - 0.5, real, spk).informative
    noisy = np.random.default_rng(0).standard_normal(12)
    assert not meta_verdict("FaithfulnessCorrelation", real, real + noisy, real, spk).informative


def _rows() -> pd.DataFrame:
    """Two methods, two metrics, three maps, six utterances of three speakers: Sparseness
    scores the random map as the real one (it would rank saliency first), FaithfulnessCorrelation
    ranks the real map above random and IG above saliency."""
    rows = []
    for method, faith, sparse in (
        ("integrated_gradients/classification", 0.6, 0.2),
        ("saliency/classification", 0.3, 0.8),
    ):
        for u in range(6):
            utt, spk = f"id{u % 3}/v/{u}", f"id{u % 3}"
            jitter = 0.01 * u
            for kind, f in (("real", faith), ("random", 0.0), ("inverted", -faith)):
                for metric, value, family in (
                    ("FaithfulnessCorrelation", f, "faithfulness"),
                    ("Sparseness", sparse, "complexity"),
                ):
                    rows.append(
                        schema.MetricRow(
                            "m",
                            kind,
                            "xai_sample",
                            "",
                            metric,
                            value + jitter,
                            family,
                            method,
                            utt_id=utt,
                            speaker_id=spk,
                        )
                    )
    return schema.metrics_table(rows).to_pandas()


def test_a_flagged_metric_is_shown_and_left_out_of_the_ranking() -> None:
    metrics = _rows()
    verdicts = meta_verdicts(metrics, "m")
    assert verdicts["FaithfulnessCorrelation"].informative
    assert not verdicts["Sparseness"].informative
    meta = meta_table(verdicts)
    assert dict(zip(meta["Metric"], meta["Verdict"], strict=True)) == {
        "FaithfulnessCorrelation": "informative",
        "Sparseness": UNINFORMATIVE,
    }
    t = methods_table(metrics, "m")
    assert list(t["Method"]) == [
        "Integrated Gradients (classification)",
        "Saliency (classification)",
    ]
    assert list(t["Mean rank"]) == [1.0, 2.0]
    assert f"complexity: Sparseness ({UNINFORMATIVE})" in t.columns


def test_the_report_states_deeplift_completeness_where_deeplift_was_measured() -> None:
    assert deeplift_note(pd.Series(["saliency/classification"])) is None
    note = deeplift_note(pd.Series(["deeplift/classification", "saliency/classification"]))
    assert note is not None and "EcapaTdnn: 0.5-2" in note.text
