"""003's Figs. 2-3 in the report from synthetic metrics/ rows: the tables with intervals, the
plots with error bars, the three-valued verdicts; and 4.4's single-segment baseline beside the
clustering scorers with its verdict."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import ErrorbarContainer

from tests.unit.report.conftest import metrics_frame, read_tables
from voxray.config import VoxrayConfig
from voxray.config.evaluation import IntervalConfig
from voxray.report.html import Image, Section, render_section
from voxray.report.sections import clustering as clustering_section
from voxray.report.sections import sweeps003
from voxray.schema import MetricRow


def _row(sweep: str, cond: str, scorer: str, eer: float, half: float) -> MetricRow:
    return MetricRow(
        "bilstm", cond, sweep, scorer, "eer", eer, ci_low=eer - half, ci_high=eer + half, n=120
    )


def _metrics(half: float = 0.02, width_eers=(0.34, 0.26, 0.27)) -> pd.DataFrame:
    rows = [
        _row("lstm_width", f"width={w}", "cosine", e, half)
        for w, e in zip((256, 64, 128), (width_eers[2], width_eers[0], width_eers[1]), strict=True)
    ]
    for s, e in ((5.0, 0.08), (0.4, 0.30), (2.0, 0.10)):
        rows += [_row("segment_length", f"segment_s={s}", "mean_cossim", e, half)]
        rows += [_row("segment_length", f"segment_s={s}", "mean_dot", e + 0.01, half)]
    # a verification row must not enter the sweeps
    rows.append(MetricRow("bilstm", "none", "vox1-o", "cosine", "eer", 0.5))
    return metrics_frame(rows)


def test_sweep_tables_give_each_value_its_eer_and_interval() -> None:
    m = _metrics()
    width = sweeps003.sweep_table(sweeps003.sweep_points(m, sweeps003.WIDTH), sweeps003.WIDTH)
    assert list(width.index) == ["64", "128", "256"]
    assert width["EER (%)"].tolist() == pytest.approx([34.0, 26.0, 27.0])
    assert list(width["95% CI"]) == ["[32, 36]", "[24, 28]", "[25, 29]"]
    seg = sweeps003.sweep_points(m, sweeps003.SEGMENT)
    assert len(seg) == 6 and list(seg.loc[seg["scorer"] == "mean_cossim", "value"]) == [
        0.4,
        2.0,
        5.0,
    ]
    assert sweeps003.sweep_points(None, sweeps003.WIDTH).empty


def test_sweep_plot_draws_error_bars_of_the_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = []
    real = sweeps003.to_png
    monkeypatch.setattr(sweeps003, "to_png", lambda fig: figures.append(fig) or real(fig))
    points = sweeps003.sweep_points(_metrics(), sweeps003.SEGMENT)
    png = sweeps003.sweep_plot(points, "Segment (s)")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    ax = figures[0].axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 2  # one per scorer
    line, _, (segments,) = bars[0]
    np.testing.assert_allclose(line.get_xdata(), [0.4, 2.0, 5.0])
    spans = [seg[:, 1] for seg in segments.get_segments()]
    np.testing.assert_allclose([s.max() - s.min() for s in spans], [4.0, 4.0, 4.0])


@pytest.mark.parametrize(
    ("half", "width_eers", "width_status", "segment_status"),
    [
        (0.02, (0.34, 0.26, 0.27), "holds", "holds"),
        (0.02, (0.20, 0.30, 0.27), "fails", "holds"),
        (0.2, (0.34, 0.26, 0.27), "inconclusive", "inconclusive"),
    ],
)
def test_sweep_verdicts_are_three_valued(half, width_eers, width_status, segment_status) -> None:
    m = _metrics(half, width_eers)
    width = sweeps003.width_verdict(sweeps003.sweep_points(m, sweeps003.WIDTH))
    segment = sweeps003.segment_verdict(sweeps003.sweep_points(m, sweeps003.SEGMENT))
    assert (width.status, segment.status) == (width_status, segment_status), (width, segment)
    assert "EER at width 128 vs 64" in width.detail
    assert "EER at length 5 vs 0.4" in segment.detail
    assert sweeps003.segment_verdict(pd.DataFrame()).status == "not computed"


def test_the_section_renders_tables_plots_and_verdicts() -> None:
    ctx = SimpleNamespace(out=SimpleNamespace(metrics=_metrics()), cfg=VoxrayConfig())
    s = Section("sweeps003", "t", "i")
    sweeps003.sweeps003(ctx, s)
    assert sum(isinstance(b, Image) for b in s.blocks) == 2
    assert [v.status for v in s.verdicts] == ["holds", "holds"]
    tables = read_tables(render_section(s)).tables["sweeps003"]
    assert tables[0][1][:2] == ["64", "Cosine"] and "[32, 36]" in tables[0][1]
    empty = Section("sweeps003", "t", "i")
    sweeps003.sweeps003(SimpleNamespace(out=SimpleNamespace(metrics=None)), empty)
    assert not any(isinstance(b, Image) for b in empty.blocks)
    assert [v.status for v in empty.verdicts] == ["not computed", "not computed"]


@pytest.mark.parametrize(
    ("ahc", "status"), [(0.05, "holds"), (0.11, "inconclusive"), (0.2, "fails")]
)
def test_single_segment_baseline_beside_the_clustering_scorers(ahc: float, status: str) -> None:
    def row(scorer: str, eer: float) -> MetricRow:
        return MetricRow(
            "m", "none", "l", scorer, "eer", eer, ci_low=eer - 0.02, ci_high=eer + 0.02, n=90
        )

    m = metrics_frame(
        [row("single_segment", 0.12), row("mean_cossim", 0.1), row("ahc-average", ahc)]
    )
    t = clustering_section.baseline_table(m, "m")
    assert list(t["Scorer"]) == ["Single random segment", "Mean-CosSim", "AHC-Average"]
    assert t["EER (%)"].iloc[0] == pytest.approx(12.0) and t["95% CI"].iloc[0] == "[10, 14]"
    v = clustering_section.baseline_verdict(m, None, None, "m", IntervalConfig())
    assert v.status == status, v.detail
    assert "AHC-Average vs Single random segment" in v.detail
    without = metrics_frame([row("mean_cossim", 0.1), row("ahc-average", ahc)])
    assert clustering_section.baseline_table(without, "m").empty
