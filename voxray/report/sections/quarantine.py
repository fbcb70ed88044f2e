"""Quarantine: the inputs the run rejected and went on without, per stage and reason."""

from __future__ import annotations

import pandas as pd

from voxray.report.html import Note, Section, Table
from voxray.report.metrics import empty_table
from voxray.report.sections.base import ReportContext, section

TITLE = "Quarantine"
INTRO = (
    "Inputs the run rejected and went on without, counted per stage and reason, and the first rows."
)


def quarantine_summary(quarantine: pd.DataFrame | None) -> pd.DataFrame:
    """Rejected inputs counted per stage and reason (the path cut out of the reason, so one
    reason for many files is one row)."""
    if quarantine is None or quarantine.empty:
        return empty_table()
    reasons = [
        str(r).replace(str(p), "<path>") if p else str(r)
        for p, r in zip(quarantine["path"], quarantine["reason"], strict=True)
    ]
    counts = (
        pd.DataFrame({"Stage": quarantine["stage"].astype(str), "Reason": reasons})
        .groupby(["Stage", "Reason"])
        .size()
        .rename("Count")
        .reset_index()
    )
    counts = counts.sort_values(["Count", "Stage", "Reason"], ascending=[False, True, True])
    return counts.set_index("Stage")


def quarantine_first(quarantine: pd.DataFrame | None, n: int = 20) -> pd.DataFrame:
    """The first ``n`` quarantine rows, sorted by stage and path."""
    if quarantine is None or quarantine.empty:
        return empty_table()
    rows = quarantine.sort_values(["stage", "path"]).head(n)
    return pd.DataFrame(
        {"Path": list(rows["path"]), "Reason": list(rows["reason"])},
        index=pd.Index(list(rows["stage"]), name="Stage"),
    )


@section("quarantine", TITLE, INTRO, order=170)
def quarantine(ctx: ReportContext, s: Section) -> None:
    summary = quarantine_summary(ctx.out.quarantine)
    if summary.empty:
        s.blocks.append(Note("Nothing was quarantined in this run."))
        return
    n = len(ctx.out.quarantine) if ctx.out.quarantine is not None else 0
    s.blocks.append(Table(summary, f"{n} row{'s' if n != 1 else ''} in quarantine.parquet"))
    s.blocks.append(Table(quarantine_first(ctx.out.quarantine), "First rows"))
