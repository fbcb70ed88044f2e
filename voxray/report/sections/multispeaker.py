"""Multi-speaker localisation (Li et al. 2022, Table 2): Top-1 of the target speaker in
concatenated utterances masked by each CAM, and the verdict on Layer-CAM."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from voxray.report.html import Image, Section, Table
from voxray.report.metrics import empty_table, interval_of, select_rows
from voxray.report.names import MULTISPEAKER_LIST, method_name, short_method_name
from voxray.report.plots import draw_curves, figure, legend, styled, to_png
from voxray.report.sections.base import ReportContext, missing, section
from voxray.report.verdicts import Verdict, between, verdict

TITLE = "Multi-speaker localisation (Table 2 of Li et al. 2022)"
INTRO = (
    "An utterance of the target speaker A is concatenated with interfering speakers B and C; "
    "the input is masked by each CAM's saliency map from the given layers ('+': maps averaged) "
    "and the Top-1 accuracy (%) of recognising A is reported. 'Original' is the unmasked "
    "concatenation."
)

#: the localisation tables shown below the Top-1 table: metric -> caption.
LOCALISATION_CAPTIONS = {
    "precision": "Localisation precision (%): share of the frames the mask keeps that belong to A",
    "recall": "Localisation recall (%): share of A's frames the mask keeps",
}


def _layer_order(spec: str) -> tuple[int, str]:
    return (spec.count("+"), spec)


def multispeaker_table(
    metrics: pd.DataFrame | None, cases: Sequence[str] = (), metric: str = "top1"
) -> pd.DataFrame:
    """Table 2 of Li et al. 2022: Top-1 (%) of the target speaker in concatenated utterances,
    masked by each method's saliency at each layer setting (rows: Original, then layer specs;
    column groups: case, columns: method). ``metric`` may also be precision or recall."""
    rows = select_rows(metrics, list=MULTISPEAKER_LIST, metric=metric)
    if rows.empty:
        return empty_table()
    found = list(dict.fromkeys(rows["case"]))
    case_list = [c for c in cases if c in found] + sorted(c for c in found if c not in cases)
    parsed = [(str(c).partition("@")[0], str(c).partition("@")[2]) for c in rows["condition"]]
    rows = rows.assign(method=[p[0] for p in parsed], layers=[p[1] for p in parsed])
    methods = sorted({m for m, layers in parsed if m != "original"})
    specs = sorted({layers for m, layers in parsed if m != "original"}, key=_layer_order)
    index = (["Original"] if (rows["method"] == "original").any() else []) + specs
    columns = pd.MultiIndex.from_tuples(
        [(c, short_method_name(m)) for c in case_list for m in methods]
    )
    out = pd.DataFrame(np.nan, index=pd.Index(index, name="Setting"), columns=columns)
    for r in rows.itertuples(index=False):
        if r.method == "original":
            for m in methods:
                out.loc["Original", (r.case, short_method_name(m))] = 100 * r.value
        else:
            out.loc[r.layers, (r.case, short_method_name(r.method))] = 100 * r.value
    return out


def layer_cam_verdict(metrics: pd.DataFrame | None) -> Verdict:
    """Li et al. 2022: in each multi-speaker case, Layer-CAM's best Top-1 (over layer settings)
    lies above the best other CAM's, judged by the two Top-1s' intervals."""
    claim = "Li et al. 2022: Layer-CAM localises the target speaker best in the multi-speaker test"
    rows = select_rows(metrics, list=MULTISPEAKER_LIST, metric="top1")
    rows = rows[rows["condition"] != "original"]
    if rows.empty:
        return Verdict(claim, "not computed", "no multi-speaker Top-1 in metrics/")
    rows = rows.assign(method=rows["condition"].astype(str).str.partition("@")[0])
    checks = []
    for case in dict.fromkeys(rows["case"]):
        mine = rows[rows["case"] == case]
        # each method's best layer setting (its row with the highest Top-1)
        best = mine.sort_values("value").groupby("method").tail(1).set_index("method")
        if "layer_cam" not in best.index or len(best) < 2:
            continue
        other = best.drop("layer_cam")["value"].idxmax()
        checks.append(
            between(
                f"{case}: Layer-CAM vs {method_name(str(other))} Top-1",
                interval_of(mine, condition=best.loc["layer_cam", "condition"]),
                interval_of(mine, condition=best.loc[other, "condition"]),
                "above",
                100,
                "%",
            )
        )
    return verdict(claim, checks, "Layer-CAM and at least one other CAM are needed in a case")


def top1_points(metrics: pd.DataFrame | None, case: str) -> tuple[pd.DataFrame, list[str]]:
    """One case's Top-1 rows as points: x the layer setting's position, method the CAM, with
    the intervals; Original drawn at every setting (the reference). Returns the points and
    the settings in x order."""
    rows = select_rows(metrics, list=MULTISPEAKER_LIST, metric="top1")
    rows = rows[rows["case"] == case] if "case" in rows else rows.iloc[:0]
    parsed = [str(c).partition("@") for c in rows["condition"]]
    specs = sorted({p[2] for p in parsed if p[0] != "original"}, key=_layer_order)
    points = []
    for (method, _, spec), (_, r) in zip(parsed, rows.iterrows(), strict=True):
        ci = [r.get("ci_low", np.nan), r.get("ci_high", np.nan)]
        for x in range(len(specs)) if method == "original" else [specs.index(spec)]:
            points.append(
                {"method": method, "x": x, "y": r["value"], "ci_low": ci[0], "ci_high": ci[1]}
            )
    return pd.DataFrame(points, columns=["method", "x", "y", "ci_low", "ci_high"]), specs


@styled
def top1_plot(metrics: pd.DataFrame | None, cases: Sequence[str]) -> bytes:
    """Table 2 as a figure: per case, each CAM's Top-1 (%) at each layer setting with its 95%
    interval as a bar, Original dash-dotted."""
    cols = min(2, len(cases))
    fig, axes = figure(-(-len(cases) // cols), cols, height_in=3.0)
    for ax in axes.flat[len(cases) :]:
        ax.set_visible(False)
    for ax, case in zip(axes.flat, cases, strict=False):
        points, specs = top1_points(metrics, case)
        draw_curves(ax, points, y_scale=100)
        ax.set_xticks(range(len(specs)), specs, rotation=30, ha="right")
        ax.set_title(case)
        ax.set_ylabel("Top-1 of A (%)")
        legend(ax)
    return to_png(fig)


@section("multispeaker", TITLE, INTRO, order=100)
def multispeaker(ctx: ReportContext, s: Section) -> None:
    if ctx.skips(s, "multispeaker"):
        return
    s.verdicts.append(layer_cam_verdict(ctx.out.metrics))
    cases = ctx.cfg.eval.multispeaker.cases
    t = multispeaker_table(ctx.out.metrics, cases)
    if t.empty:
        s.blocks.append(missing("no multi-speaker results in metrics/"))
        return
    s.blocks.append(
        Table(
            t,
            "Top-1 accuracy (%); G-CAM: Grad-CAM++, S-CAM: Score-CAM, L-CAM: Layer-CAM",
            decimals=2,
        )
    )
    shown = list(t.columns.get_level_values(0).unique())
    s.blocks.append(
        Image(
            top1_plot(ctx.out.metrics, shown),
            "Top-1 per case and layer setting with intervals",
            "Bars: 95% intervals (speaker bootstrap over the target speakers).",
        )
    )
    for metric, caption in LOCALISATION_CAPTIONS.items():
        extra = multispeaker_table(ctx.out.metrics, cases, metric)
        if not extra.empty:
            s.blocks.append(
                Table(extra.drop(index="Original", errors="ignore"), caption, decimals=2)
            )
