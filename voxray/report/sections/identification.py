"""Closed-set speaker identification: Top-1 per model, condition and list."""

from __future__ import annotations

import pandas as pd

from voxray.report.html import Section
from voxray.report.metrics import empty_table, select_rows
from voxray.report.names import ANALYSIS_LISTS, condition_name
from voxray.report.sections.base import ReportContext, section, table_or_missing

TITLE = "Speaker identification"
INTRO = "Closed-set identification accuracy (Top-1, %) on the identification split."


def identification_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Top-1 (%) of closed-set identification per model, condition and list."""
    rows = select_rows(metrics, metric="top1")
    rows = rows[~rows["list"].isin(ANALYSIS_LISTS)]
    if rows.empty:
        return empty_table()
    rows = rows.sort_values(["model", "condition", "list"])
    return pd.DataFrame(
        {
            "Condition": [condition_name(c) for c in rows["condition"]],
            "List": list(rows["list"]),
            "Top-1 (%)": list(100 * rows["value"]),
        },
        index=pd.Index(list(rows["model"]), name="Model"),
    )


@section("identification", TITLE, INTRO, order=50)
def identification(ctx: ReportContext, s: Section) -> None:
    if ctx.skips(s, "identification"):
        return
    t = identification_table(ctx.out.metrics)
    s.blocks.append(table_or_missing(t, "no identification Top-1 in metrics/"))
