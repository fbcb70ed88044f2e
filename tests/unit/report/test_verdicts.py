"""Verdicts on the seeds' claims from hand-made numbers: holds, does not hold, partly, absent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from voxray.report.metrics import EER
from voxray.report.sections.clustering import ahc_verdict
from voxray.report.sections.faithfulness import cam_random_verdict
from voxray.report.sections.flipping import lrp_flipping_verdict
from voxray.report.sections.frequency import formant_verdict
from voxray.report.sections.multispeaker import layer_cam_verdict
from voxray.report.sections.reliability import CONTROL, reliability_verdict
from voxray.schema import MetricRow


def _multispeaker(
    layer_cam: float, score_cam: float, cases: tuple[str, ...] = ("A-B", "B-A-B")
) -> list[MetricRow]:
    rows = []
    for case in cases:
        rows += [
            MetricRow("m", cond, "multispeaker", "", metric, value, case=case)
            for cond, metric, value in (
                ("original", "top1", 0.99),  # the unmasked input never competes
                ("layer_cam@S1", "top1", layer_cam),
                ("layer_cam@S2", "top1", layer_cam - 0.2),
                ("score_cam@S1", "top1", score_cam),
                ("layer_cam@S1", "precision", 0.0),
            )
        ]
    return rows


@pytest.mark.parametrize(
    "layer_cam, score_cam, status",
    [(0.7, 0.5, "holds"), (0.4, 0.6, "does not hold")],
    ids=["layer-cam-best", "score-cam-best"],
)
def test_layer_cam_verdict(make_metrics, layer_cam: float, score_cam: float, status: str) -> None:
    v = layer_cam_verdict(make_metrics(_multispeaker(layer_cam, score_cam)))
    assert v.status == status
    assert f"{100 * layer_cam:.2f}%" in v.detail and f"{100 * score_cam:.2f}%" in v.detail


def test_layer_cam_verdict_partly(make_metrics) -> None:
    rows = _multispeaker(0.7, 0.5, ("A-B",)) + _multispeaker(0.4, 0.6, ("A-B-C",))
    v = layer_cam_verdict(make_metrics(rows))
    assert v.status == "partly holds" and "1 of 2 cases" in v.detail


def _faithfulness(deletion: float, insertion: float) -> list[tuple]:
    rows = []
    for cond, d, i in (
        ("layer_cam/cam", deletion, insertion),
        ("random", 0.4, 0.45),
        ("time_aligned", 0.1, 0.9),
        ("saliency/classification", 0.9, 0.1),
    ):
        rows += [
            ("m", cond, "faithfulness", "top1", "deletion_auc", d),
            ("m", cond, "faithfulness", "top1", "insertion_auc", i),
        ]
    return rows


@pytest.mark.parametrize(
    "deletion, insertion, status",
    [(0.3, 0.6, "holds"), (0.5, 0.3, "does not hold"), (0.3, 0.3, "partly holds")],
    ids=["better-both", "worse-both", "better-deletion-only"],
)
def test_cam_random_verdict(make_metrics, deletion: float, insertion: float, status: str) -> None:
    v = cam_random_verdict(make_metrics(_faithfulness(deletion, insertion)))
    assert v.status == status
    assert (
        "random 0.400/0.450" in v.detail and f"Layer-CAM {deletion:.3f}/{insertion:.3f}" in v.detail
    )


def _flipping(lrp_drop: float) -> list[tuple]:
    rows = []
    for cond, drop in (("lrp_epsilon", lrp_drop), ("random", 0.1)):
        for f in (0.0, 0.005, 0.01):
            rows.append(("m", cond, "pixel_flipping", "", f"acc@{f:g}", 0.9 - drop * 100 * f))
    return rows


@pytest.mark.parametrize(
    "drop, status", [(0.5, "holds"), (0.05, "does not hold")], ids=["faster", "slower"]
)
def test_lrp_flipping_verdict(make_metrics, drop: float, status: str) -> None:
    v = lrp_flipping_verdict(make_metrics(_flipping(drop)))
    assert v.status == status
    expected = np.mean([0.9 - drop * 0.5, 0.9 - drop * 1.0])  # the fractions > 0: 0.5% and 1%
    assert f"{100 * expected:.2f}%" in v.detail


def test_lrp_flipping_verdict_uses_the_gender_experiment(make_metrics) -> None:
    rows = [
        ("alexnet-gender", c, "gender", "", f"acc@{f:g}", v)
        for c, f, v in (
            ("lrp_epsilon", 0.0, 0.97),
            ("lrp_epsilon", 0.005, 0.12),
            ("random", 0.0, 0.97),
            ("random", 0.005, 0.95),
        )
    ]
    v = lrp_flipping_verdict(make_metrics(rows))
    assert v.status == "holds" and "12.00% vs random 95.00%" in v.detail


@pytest.mark.parametrize(
    "ahc, status", [(0.0554, "holds"), (0.07, "does not hold")], ids=["ahc-lower", "ahc-higher"]
)
def test_ahc_verdict(make_metrics, ahc: float, status: str) -> None:
    rows = [
        ("ecapa", "none", "vox1-o", "ahc-average", "eer", ahc),
        ("ecapa", "none", "vox1-o", "mean_cossim", "eer", 0.0584),
        ("other", "none", "vox1-o", "ahc-average", "eer", 0.01),
    ]
    v = ahc_verdict(make_metrics(rows), "ecapa")
    assert v.status == status and f"{100 * ahc:.2f}% vs 5.84%" in v.detail


def test_formant_verdict() -> None:
    hz = np.array([50.0, 200.0, 1000.0, 2500.0, 5000.0, 7000.0])
    voiced = np.array([0.0, 0.3, 0.3, 0.3, 0.05, 0.05])
    flat_high = np.array([0.3, 0.05, 0.05, 0.05, 0.3, 0.25])
    v = formant_verdict({"ig/classification": voiced}, hz)
    # inside mean 0.3 over outside mean (0 + 0.05 + 0.05) / 3
    assert v.status == "holds" and f"{0.3 / (0.1 / 3):.2f}x" in v.detail
    assert formant_verdict({"ig/classification": flat_high}, hz).status == "does not hold"
    assert formant_verdict({"a/x": voiced, "b/x": flat_high}, hz).status == "partly holds"
    assert formant_verdict({"a/x": voiced}, None).status == "not computed"


@pytest.mark.parametrize(
    "fn",
    [
        layer_cam_verdict,
        cam_random_verdict,
        lrp_flipping_verdict,
        lambda m: ahc_verdict(m, "ecapa"),
        lambda m: formant_verdict({}, np.arange(3.0)),
    ],
    ids=["layer-cam", "cam-random", "lrp", "ahc", "formant"],
)
def test_absent_data_is_not_computed(fn, make_metrics) -> None:
    assert fn(None).status == "not computed"
    assert fn(make_metrics([("m", "none", "x", "cosine", "eer", 0.1)])).status == "not computed"


def _table2(ig: float, control: float, magnitude: float = 4.1) -> pd.DataFrame:
    cols = [("Retrained, masked test", EER), (CONTROL, f"Retrained, masked test {EER}")]
    rows = {
        "None (clean)": [3.5, np.nan],
        "Integrated Gradients": [ig, control],
        "Integrated Gradients + mask(0.1, signed)": [4.3, np.nan],
        "Integrated Gradients + mask(0.1, magnitude)": [magnitude, np.nan],
        "GradientShap": [4.6, np.nan],
    }
    return pd.DataFrame(
        list(rows.values()), index=list(rows), columns=pd.MultiIndex.from_tuples(cols)
    )


@pytest.mark.parametrize(
    "ig, control, status",
    [(4.2, 30.0, "partly holds"), (4.2, 4.4, "partly holds"), (5.0, 4.0, "does not hold")],
    ids=["below-control", "control-as-good", "order-broken"],
)
def test_reliability_verdict(ig: float, control: float, status: str) -> None:
    v = reliability_verdict(_table2(ig, control))
    assert v.status == status
    assert f"Integrated Gradients {ig:.2f}% vs shuffled maps {control:.2f}%" in v.detail
    # the magnitude row (4.1%) breaks the order IG <= IG + mask; the signed one keeps it
    assert ("signed reading: 3.50% <= 4.20% <= 4.30% <= 4.60% (ordered)" in v.detail) == (ig == 4.2)
    # the pair that breaks the order is shown with its relation
    assert f"magnitude reading: 3.50% <= {ig:.2f}% > 4.10%" in v.detail
    assert "(not ordered)" in v.detail
    assert reliability_verdict(_table2(4.2, 30.0, magnitude=4.4)).status == "holds"
    assert reliability_verdict(pd.DataFrame()).status == "not computed"
