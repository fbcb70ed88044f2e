"""Lehmann & Stadelmann 2020's sweeps (Figs. 2-3): the test EER per LSTM width and per
evaluation segment length, each with its speaker-bootstrap interval, as tables and plots with
error bars, and a verdict on each figure's claim. Rows: metrics/ list ``lstm_width`` /
``segment_length``, condition ``width=<w>`` / ``segment_s=<s>`` (voxray.pipeline.paper_sweeps).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxray.eval.intervals import Interval
from voxray.report.html import Image, Section
from voxray.report.metrics import EER, empty_table, interval_text, select_rows
from voxray.report.names import scorer_name
from voxray.report.plots import WIDTH_IN, figure, legend, styled, to_png
from voxray.report.sections.base import ReportContext, section, table_or_missing
from voxray.report.verdicts import Verdict, between, verdict

TITLE = "Network width and segment length (Figs. 2-3 of Lehmann & Stadelmann 2020)"
INTRO = (
    "Test EER (%) of the BiLSTM trained at each LSTM width (early stopping on a validation "
    "split; widths {cfg.tune.lstm_width.widths}) and of the base model when every test "
    "utterance is embedded as segments of each length (seconds, overlap "
    "{cfg.tune.segment_length.overlap}) and scored by the mean segment embeddings' cosine or "
    "dot product. Error bars and brackets: 95% speaker-bootstrap intervals."
)
#: (metrics/ list, condition prefix, the swept value's column heading)
WIDTH = ("lstm_width", "width=", "LSTM width")
SEGMENT = ("segment_length", "segment_s=", "Segment (s)")


def sweep_points(metrics: pd.DataFrame | None, sweep: tuple[str, str, str]) -> pd.DataFrame:
    """One row per swept value and scorer: value, scorer, eer, ci_low, ci_high, n (fractions),
    sorted by value; empty without the sweep's rows."""
    name, prefix, _ = sweep
    rows = select_rows(metrics, list=name, metric="eer")
    if rows.empty:
        return empty_table()
    out = pd.DataFrame(
        {
            "value": rows["condition"].astype(str).str.removeprefix(prefix).astype(float),
            "scorer": rows["scorer"].astype(str),
            "eer": rows["value"].astype(float),
            "ci_low": rows.get("ci_low", np.nan),
            "ci_high": rows.get("ci_high", np.nan),
            "n": rows.get("n", np.nan),
        }
    )
    return out.sort_values(["scorer", "value"], kind="stable").reset_index(drop=True)


def sweep_table(points: pd.DataFrame, sweep: tuple[str, str, str]) -> pd.DataFrame:
    """The figure's numbers: swept value, scorer, EER (%), its interval and trials."""
    if points.empty:
        return empty_table()
    return pd.DataFrame(
        {
            sweep[2]: [f"{v:g}" for v in points["value"]],
            "Scorer": [scorer_name(s) for s in points["scorer"]],
            EER: 100 * points["eer"],
            "95% CI": [interval_text(_interval(r), 100) for _, r in points.iterrows()],
            "Trials": points["n"],
        }
    ).set_index(sweep[2])


def _interval(row: pd.Series) -> Interval:
    """A sweep point's EER with its interval (NaN bounds where it has none)."""
    return Interval(
        float(row["eer"]),
        float(row["ci_low"]),
        float(row["ci_high"]),
        int(row["n"]) if pd.notna(row["n"]) else 0,
        "speaker bootstrap",
    )


@styled
def sweep_plot(points: pd.DataFrame, xlabel: str, log_x: bool = False) -> bytes:
    """EER (%) against the swept value, one line per scorer, 95% intervals as error bars."""
    fig, axes = figure(1, 1, height_in=3.2, width_in=WIDTH_IN * 0.6)
    ax = axes[0, 0]
    for scorer, g in points.groupby("scorer", sort=True):
        eer = 100 * g["eer"].to_numpy()
        below = np.clip(eer - 100 * g["ci_low"].to_numpy(dtype=float), 0, None)
        above = np.clip(100 * g["ci_high"].to_numpy(dtype=float) - eer, 0, None)
        err = np.nan_to_num(np.vstack([below, above]))
        ax.errorbar(
            g["value"].to_numpy(dtype=float),
            eer,
            yerr=err,
            fmt="o-",
            capsize=3,
            label=scorer_name(scorer),
        )
    if log_x:
        ax.set_xscale("log", base=2)
        ax.set_xticks(
            sorted(points["value"].unique()), [f"{v:g}" for v in sorted(points["value"].unique())]
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel("EER (%)")
    legend(ax)
    return to_png(fig)


def _end_check(points: pd.DataFrame, scorer: str, first: int, last: int, what: str) -> list:
    """``between``: the EER at position ``last`` of the sorted values lies below that at
    ``first`` (disjoint intervals), for one scorer."""
    g = points[points["scorer"] == scorer].sort_values("value")
    if len(g) < 2:
        return []
    a, b = g.iloc[last], g.iloc[first]
    label = f"{scorer_name(scorer)}: EER at {what} {a['value']:g} vs {b['value']:g}"
    return [between(label, _interval(a), _interval(b), "below", 100, "%")]


def width_verdict(points: pd.DataFrame) -> Verdict:
    """003 4.2: doubling the narrowest width lowers the EER (33.8% -> 26.1% for 256 -> 512)."""
    claim = "Lehmann & Stadelmann 2020 (Fig. 2): doubling the narrowest LSTM width lowers the EER"
    checks = _end_check(points, "cosine", 0, 1, "width") if not points.empty else []
    return verdict(claim, checks, "needs the EERs of two LSTM widths (tune.lstm_width)")


def segment_verdict(points: pd.DataFrame) -> Verdict:
    """003 4.3: longer evaluation segments give lower EERs (cosine, 0.4 s against 5 s)."""
    claim = "Lehmann & Stadelmann 2020 (Fig. 3): the longest segments beat the shortest"
    checks = _end_check(points, "mean_cossim", 0, -1, "length") if not points.empty else []
    return verdict(claim, checks, "needs the cosine EERs of two lengths (tune.segment_length)")


@section("sweeps003", TITLE, INTRO, order=45)
def sweeps003(ctx: ReportContext, s: Section) -> None:
    width = sweep_points(ctx.out.metrics, WIDTH)
    segment = sweep_points(ctx.out.metrics, SEGMENT)
    s.verdicts += [width_verdict(width), segment_verdict(segment)]
    for points, sweep, fig, log_x in (
        (width, WIDTH, "Fig. 2", True),
        (segment, SEGMENT, "Fig. 3", False),
    ):
        what = f"the {sweep[0]} sweep (tune.{sweep[0]})"
        s.blocks.append(table_or_missing(sweep_table(points, sweep), what, f"{fig}: {sweep[2]}"))
        if not points.empty:
            png = sweep_plot(points, sweep[2], log_x)
            s.blocks.append(Image(png, f"{fig}: EER against {sweep[2].lower()}", ""))
