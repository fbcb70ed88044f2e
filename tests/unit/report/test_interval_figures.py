"""The report's figures with intervals: error bars drawn from the metrics rows' ci_low /
ci_high (pixel flipping, the multi-speaker Top-1, the B-A-B deletion / insertion curves), the
verdict on Layer-CAM's mixture AUCs, and the maps at the configured mask thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from tests.unit.report.conftest import metrics_frame
from voxray.config import MaskCondition, load_config
from voxray.mask.rules import threshold_mask
from voxray.report.load import Heatmap
from voxray.report.metrics import rows_as_curves
from voxray.report.plots import draw_curves
from voxray.report.sections import multispeaker as ms_section
from voxray.report.sections.mixtures import (
    layer_cam_mixture_verdict,
    mixture_auc_table,
    mixture_panels,
    mixture_rows,
)
from voxray.report.sections.thresholds import configured_thresholds, threshold_panels
from voxray.schema import MetricRow
from voxray.testing.synthetic_report import mixture_metrics


def _bars(ax) -> list[tuple[float, float, float]]:
    """(x, low, high) of every error bar drawn on ``ax``."""
    out = []
    for coll in ax.collections:
        for seg in coll.get_segments():
            (x0, y0), (_, y1) = seg
            out.append((float(x0), float(y0), float(y1)))
    return sorted(out)


def test_flipping_curve_error_bars_are_the_rows_intervals() -> None:
    rows = metrics_frame(
        [
            MetricRow("m", "lrp_0", "gender", "", f"acc@{q:g}", v, ci_low=v - d, ci_high=v + d, n=9)
            for q, v, d in ((0.0, 0.9, 0.05), (0.01, 0.6, 0.1), (0.05, 0.3, 0.2))
        ]
        + [MetricRow("m", "random", "gender", "", "acc@0", 0.9)]  # no interval: no bar
    )
    points = rows_as_curves(rows, "acc")
    assert len(points) == 4 and set(points["variant"]) == {"gender"}
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    draw_curves(ax, points, x_scale=100, y_scale=100)
    expected = [(0.0, 85.0, 95.0), (1.0, 50.0, 70.0), (5.0, 10.0, 50.0)]
    np.testing.assert_allclose(_bars(ax), expected)
    assert len(ax.get_lines()) == 2  # LRP and the random reference, both drawn


def test_top1_plot_bars_are_the_rows_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [
        MetricRow(
            "m",
            "original",
            "multispeaker",
            "",
            "top1",
            0.5,
            case="B-A-B",
            ci_low=0.4,
            ci_high=0.6,
            n=8,
        ),
        MetricRow(
            "m",
            "layer_cam@S2",
            "multispeaker",
            "",
            "top1",
            0.7,
            case="B-A-B",
            ci_low=0.55,
            ci_high=0.8,
            n=8,
        ),
        MetricRow(
            "m",
            "layer_cam@S2+S1",
            "multispeaker",
            "",
            "top1",
            0.9,
            case="B-A-B",
            ci_low=0.8,
            ci_high=1.0,
            n=8,
        ),
    ]
    figures: list[Figure] = []
    encode = ms_section.to_png
    monkeypatch.setattr(ms_section, "to_png", lambda f: figures.append(f) or encode(f))
    png = ms_section.top1_plot(metrics_frame(rows), ["B-A-B"])
    assert png[:4] == b"\x89PNG"
    (ax,) = [a for a in figures[0].axes if a.get_visible()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["S2", "S2+S1"]
    # Layer-CAM at each setting, then Original's interval at every setting
    np.testing.assert_allclose(
        _bars(ax), sorted([(0, 55, 80), (1, 80, 100), (0, 40, 60), (1, 40, 60)])
    )


def test_mixture_curves_table_and_verdict() -> None:
    metrics = metrics_frame(mixture_metrics("ecapa"))
    rows = mixture_rows(metrics)
    deletion, insertion = mixture_panels(rows)
    assert deletion[0] == "Deletion (block3+block2+block1)" and insertion[0].startswith("Insertion")
    assert set(deletion[1]["method"]) == {"grad_cam_pp", "layer_cam", "random"}
    assert deletion[1]["ci_low"].notna().all()
    table = mixture_auc_table(rows)
    assert list(table.index) == ["Grad-CAM++", "Layer-CAM", "Random"]
    assert table.loc["Layer-CAM", "Deletion AUC"] < table.loc["Grad-CAM++", "Deletion AUC"]
    assert table.loc["Layer-CAM", "Deletion AUC 95% CI"].startswith("[")
    assert layer_cam_mixture_verdict(rows).status == "holds"
    # Layer-CAM's curves swapped with Grad-CAM++'s: the claim fails
    swapped = metrics.assign(
        condition=metrics["condition"].replace(
            {
                "layer_cam@block3+block2+block1": "grad_cam_pp@block3+block2+block1",
                "grad_cam_pp@block3+block2+block1": "layer_cam@block3+block2+block1",
            }
        )
    )
    assert layer_cam_mixture_verdict(mixture_rows(swapped)).status == "fails"
    assert layer_cam_mixture_verdict(mixture_rows(pd.DataFrame())).status == "not computed"


def test_threshold_figure_draws_the_configured_taus() -> None:
    cfg = load_config(profile="demo")
    taus = configured_thresholds(cfg)
    assert taus == sorted(
        {c.threshold for c in cfg.mask.conditions if c.rule == "threshold"} | set(cfg.tune.taus)
    )
    assert len(taus) == 4 and cfg.tune.enabled
    # without the Tune sweep only the mask conditions' taus are used (the demo masks by
    # product only: none; paper000 at 0.1 under both readings)
    assert (
        configured_thresholds(load_config(profile="demo", overrides=["tune.enabled=false"])) == []
    )
    paper = load_config(profile="paper000", overrides=["tune.enabled=false"])
    assert configured_thresholds(paper) == [0.1]
    many = load_config(profile="demo", overrides=["tune.taus=[0.05, 0.1, 0.2, 0.3, 0.5, 0.7]"])
    picked = configured_thresholds(many)
    assert len(picked) == 4 and picked[0] == 0.05 and picked[-1] == 0.7
    assert set(picked) <= {0.05, 0.1, 0.2, 0.3, 0.5, 0.7}
    rng = np.random.default_rng(0)
    x, a = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    h = Heatmap("u", x, {"integrated_gradients/traversal": a})
    cond = MaskCondition("integrated_gradients", "traversal", "threshold", 0.1)
    panels = threshold_panels(h, "integrated_gradients/traversal", taus, cond, "abs_max")
    assert [t.split(" (")[0] for t in panels] == [f"tau = {t:g}" for t in taus]
    for tau, masked in zip(taus, panels.values(), strict=True):
        np.testing.assert_array_equal(masked, threshold_mask(x, a, tau, "abs_max", "signed"))
    kept = [float((m != 0).mean()) for m in panels.values()]
    assert kept == sorted(kept, reverse=True) and kept[0] > kept[-1]
