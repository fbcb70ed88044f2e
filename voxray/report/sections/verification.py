"""Speaker verification: EER and minDCF of every model, condition, trial list and scorer,
and the DET curves."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy.stats import norm

from voxray.report.html import Image, Section, Table
from voxray.report.metrics import (
    EER,
    empty_table,
    interval_of,
    interval_text,
    mindcf_metrics,
    mindcf_name,
    verification_rows,
)
from voxray.report.names import condition_name, order_lists, scorer_name, scorer_order
from voxray.report.plots import figure, legend, styled, to_png
from voxray.report.sections.base import ReportContext, missing, section

TITLE = "Speaker verification: EER and minDCF"
INTRO = (
    "Equal error rate (in %) and minimum detection cost of every model, data condition, trial "
    "list and scorer; 'None (clean)' is unmasked test data. Lower is better for both. The EER's "
    "95% interval resamples enrolment speakers, then their trials (a speaker bootstrap)."
)

#: the EER's 95% interval beside it (speaker bootstrap by enrolment speaker).
EER_CI = "EER 95% CI (%)"

DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)


def verification_table(
    metrics: pd.DataFrame | None, base: str, preferred_lists: Sequence[str] = ()
) -> pd.DataFrame:
    """EER (%) and minDCF per model x condition x trial list x scorer (base model and clean data
    first)."""
    rows = verification_rows(metrics)
    if rows.empty:
        return empty_table()
    dcfs = mindcf_metrics(rows)
    lists = order_lists(rows["list"].astype(str), preferred_lists)
    wide = rows.pivot_table(
        index=["model", "condition", "list", "scorer"],
        columns="metric",
        values="value",
        aggfunc="last",
    )
    keyed = rows.set_index(["model", "condition", "list", "scorer"])
    keys = sorted(
        wide.index,
        key=lambda k: (
            k[0] != base,
            k[0],
            k[1] != "none",
            k[1],
            lists.index(k[2]),
            scorer_order(k[3]),
        ),
    )
    out = pd.DataFrame(
        {
            "Model": [k[0] for k in keys],
            "Condition": [condition_name(k[1]) for k in keys],
            "Trial list": [k[2] for k in keys],
            "Scorer": [scorer_name(k[3]) for k in keys],
            EER: [100 * wide.loc[k].get("eer", np.nan) for k in keys],
            EER_CI: [interval_text(interval_of(keyed.loc[[k]], metric="eer"), 100) for k in keys],
            **{mindcf_name(d): [wide.loc[k].get(d, np.nan) for k in keys] for d in dcfs},
            "Trials": [wide.loc[k].get("trials", np.nan) for k in keys],
        }
    )
    return out.set_index("Model")


@styled
def det_plot(det: pd.DataFrame, list_order: Sequence[str] = ()) -> bytes:
    """DET curves on normal-deviate (probit) axes, one panel per trial list.

    ``det`` has columns model, method (the trial list), variant (the condition), x (false
    alarm rate) and y (miss rate), both fractions; panels follow ``list_order``, then the
    other lists sorted.
    """
    found = set(det["method"])
    lists = [x for x in list_order if x in found] + sorted(found - set(list_order))
    cols = min(2, len(lists))
    fig, axes = figure(-(-len(lists) // cols), cols, height_in=3.6)
    for ax in axes.flat[len(lists) :]:
        ax.set_visible(False)
    lo, hi = DET_TICKS[0], DET_TICKS[-1]
    for ax, lst in zip(axes.flat, lists, strict=False):
        sub = det[det["method"] == lst]
        for i, ((model, cond), pts) in enumerate(
            sorted(sub.groupby(["model", "variant"]), key=lambda kv: kv[0])
        ):
            fpr = np.clip(pts["x"].to_numpy(), lo / 2, 1 - 1e-6)
            fnr = np.clip(pts["y"].to_numpy(), lo / 2, 1 - 1e-6)
            ax.plot(
                norm.ppf(fpr),
                norm.ppf(fnr),
                color=f"C{i % 10}",
                linewidth=1.5,
                label=f"{model}, {condition_name(cond)}",
            )
        ticks = norm.ppf(DET_TICKS)
        labels = [f"{100 * t:g}" for t in DET_TICKS]
        ax.set_xticks(ticks, labels)
        ax.set_yticks(ticks, labels)
        ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
        ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
        ax.plot(
            [norm.ppf(lo), norm.ppf(hi)], [norm.ppf(lo), norm.ppf(hi)], color="0.8", linewidth=0.8
        )
        ax.set_xlabel("False alarm rate (%)")
        ax.set_ylabel("Miss rate (%)")
        ax.set_title(f"DET: {lst}")
        legend(ax)
    return to_png(fig)


@section("verification", TITLE, INTRO, order=20)
def verification(ctx: ReportContext, s: Section) -> None:
    t = verification_table(ctx.out.metrics, ctx.base, ctx.cfg.corpus.trial_lists)
    if t.empty:
        s.blocks.append(missing("no verification metrics in metrics/"))
        return
    s.blocks.append(Table(t))
    det = ctx.curves("det")
    if not det.empty:
        s.blocks.append(
            Image(
                det_plot(det, ctx.lists),
                "DET curves per trial list",
                "DET curves (cosine scoring) on normal-deviate axes; closer to the origin is "
                "better.",
            )
        )
