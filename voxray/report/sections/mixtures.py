"""Deletion and insertion on multi-speaker mixtures (Li et al. 2022 §4.3, Fig. 4): Top-1 of
the target speaker A as each CAM's most salient bins of B-A-B mixtures are deleted or
revealed first, against random (un)masking, with the AUCs and the verdict on Layer-CAM."""

from __future__ import annotations

import pandas as pd

from voxray.eval.multispeaker import CURVE_CASE, RANDOM
from voxray.report.html import Image, Section
from voxray.report.metrics import (
    empty_table,
    interval_of,
    interval_text,
    rows_as_curves,
    select_rows,
)
from voxray.report.names import MULTISPEAKER_LIST, method_name
from voxray.report.plots import curves_plot
from voxray.report.sections.base import ReportContext, section, table_or_missing
from voxray.report.sections.faithfulness import AUC_NAMES, SIDES
from voxray.report.verdicts import Verdict, between, verdict

TITLE = f"Deletion and insertion on {CURVE_CASE} mixtures (Fig. 4 of Li et al. 2022)"
INTRO = (
    "Mixtures of the multi-speaker test in the B-A-B form (A: the target speaker between two "
    "utterances of B): each CAM's map (all layers averaged) deletes, or reveals on a blank "
    "input, the most salient bins first, and the Top-1 accuracy of A is tracked; random "
    "(un)masking is the reference. A map that finds A makes deletion fall fast (low AUC) and "
    "insertion rise fast (high AUC). Bars and brackets: 95% intervals (speaker bootstrap over "
    "the target speakers)."
)
MODES = ("deletion", "insertion")


def mixture_rows(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """The multi-speaker rows of the B-A-B curves (none in outputs without a case column)."""
    rows = select_rows(metrics, list=MULTISPEAKER_LIST)
    if "case" not in rows:
        return rows.iloc[:0]
    rows = rows[rows["case"] == CURVE_CASE]
    return rows[rows["metric"].astype(str).str.match(r"^(deletion|insertion)[@_]")]


def _method(condition: str) -> str:
    return condition.partition("@")[0]


def mixture_auc_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Deletion and insertion AUC per method (random last), each beside its interval."""
    aucs = rows[rows["metric"].isin(list(AUC_NAMES))]
    if aucs.empty:
        return empty_table()
    conditions = sorted(set(aucs["condition"].astype(str)), key=lambda c: (c == RANDOM, c))
    data = []
    for cond in conditions:
        cells: list[object] = []
        for metric in AUC_NAMES:
            ci = interval_of(aucs, condition=cond, metric=metric)
            cells += [ci.value, interval_text(ci)]
        data.append(cells)
    columns = [x for name in AUC_NAMES.values() for x in (name, f"{name} 95% CI")]
    index = pd.Index([method_name(_method(c)) for c in conditions], name="Method")
    return pd.DataFrame(data, index=index, columns=columns)


def layer_cam_mixture_verdict(rows: pd.DataFrame) -> Verdict:
    """Li et al. 2022 §4.3: Layer-CAM's deletion AUC below each other CAM's and its insertion
    AUC above, judged by the two AUCs' intervals."""
    claim = (
        f"Li et al. 2022: on {CURVE_CASE} mixtures Layer-CAM gains better AUCs than the other CAMs"
    )
    aucs = rows[rows["metric"].isin(list(AUC_NAMES))]
    by_method = {_method(str(c)): str(c) for c in aucs["condition"]}
    checks = [
        between(
            f"Layer-CAM vs {method_name(other)} {AUC_NAMES[metric]}",
            interval_of(aucs, condition=by_method["layer_cam"], metric=metric),
            interval_of(aucs, condition=cond, metric=metric),
            side,
        )
        for other, cond in sorted(by_method.items())
        if "layer_cam" in by_method and other not in ("layer_cam", RANDOM)
        for metric, side in SIDES
    ]
    return verdict(claim, checks, "needs Layer-CAM's and another CAM's mixture AUCs")


def mixture_panels(rows: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """A deletion and an insertion panel: one line per method, with its intervals."""
    out = []
    for mode in MODES:
        points = rows_as_curves(rows, mode, variant="case")
        if points.empty:
            continue
        specs = sorted({c.partition("@")[2] for c in points["method"]} - {""})
        title = f"{mode.capitalize()} ({', '.join(specs)})" if specs else mode.capitalize()
        out.append((title, points.assign(method=[_method(m) for m in points["method"]])))
    return out


@section("mixtures", TITLE, INTRO, order=105)
def mixtures(ctx: ReportContext, s: Section) -> None:
    rows = mixture_rows(ctx.out.metrics)
    if ctx.skips(s, "multispeaker"):
        return
    s.verdicts.append(layer_cam_mixture_verdict(rows))
    t = mixture_auc_table(rows)
    s.blocks.append(
        table_or_missing(t, f"no {CURVE_CASE} deletion / insertion rows in metrics/", decimals=3)
    )
    panels = mixture_panels(rows)
    if panels:
        xlabels = [
            "Bins masked (%)" if title.startswith("Deletion") else "Bins revealed (%)"
            for title, _ in panels
        ]
        png = curves_plot(panels, xlabels, "Top-1 of A (%)", x_percent=True, y_percent=True)
        s.blocks.append(
            Image(
                png,
                "deletion and insertion curves on mixtures per method",
                "Left: deletion (lower is better); right: insertion (higher is better).",
            )
        )
