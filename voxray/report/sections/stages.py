"""The run's section: each stage's marker (counts and timings), what was left out and why,
and the output tables that could not be read."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from voxray.report.html import Note, Section, Table
from voxray.report.metrics import empty_table
from voxray.report.sections.base import ReportContext, section, table_or_missing

TITLE = "Run: stages, timings and counts"
INTRO = (
    "Each stage's marker in _stages/: how many items it read, wrote, quarantined or found "
    "already done, and how long it took (parts of a stage are listed as stage.part)."
)


def stage_table(stages: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per stage marker (``_stages/<stage>.json``) in the order the stages finished."""
    if not stages:
        return empty_table()
    records = sorted(stages.items(), key=lambda kv: (str(kv[1].get("finished_at", "")), kv[0]))

    def number(record: dict[str, Any], key: str) -> float:
        value = record.get(key)
        return (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else np.nan
        )

    columns = {
        label: [number(d, key) for _, d in records]
        for label, key in (
            ("Inputs", "inputs"),
            ("Outputs", "outputs"),
            ("Quarantined", "quarantined"),
            ("Skipped", "skipped"),
            ("Seconds", "seconds"),
        )
    }
    columns["Finished at"] = [str(d.get("finished_at", "")) for _, d in records]
    return pd.DataFrame(columns, index=pd.Index([name for name, _ in records], name="Stage"))


def skipped_table(stages: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """What stage parts did not compute and why: a row per part marked ``skipped`` (all of it)
    and per piece a part lists in ``partly_skipped`` (a scorer, a method, a check)."""
    rows: list[tuple[str, str, str]] = []
    for part, record in sorted(stages.items()):
        if record.get("skipped"):
            rows.append((part, "all of it", str(record["skipped"])))
        partly = record.get("partly_skipped")
        if isinstance(partly, dict):
            rows += [(part, str(what), str(why)) for what, why in sorted(partly.items())]
    if not rows:
        return empty_table()
    return pd.DataFrame(
        {"Left out": [r[1] for r in rows], "Why": [r[2] for r in rows]},
        index=pd.Index([r[0] for r in rows], name="Part"),
    )


def split_table(stages: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Each actor-pool stage's time split (``pipeline.time_split``): a row per stage marker
    that has one, a column per part, in percent of the pool's slot time."""
    splits = {
        name: record["time_split"]
        for name, record in sorted(stages.items())
        if isinstance(record.get("time_split"), dict)
    }
    if not splits:
        return empty_table()
    parts = sorted({p for split in splits.values() for p in split}, key=lambda p: (p == "idle", p))
    return pd.DataFrame(
        {p: [100.0 * float(split.get(p, 0.0)) for split in splits.values()] for p in parts},
        index=pd.Index(list(splits), name="Stage"),
    )


@section("stages", TITLE, INTRO, order=10)
def stages(ctx: ReportContext, s: Section) -> None:
    t = stage_table(ctx.out.stages)
    s.blocks.append(table_or_missing(t, "no stage markers in _stages/"))
    split = split_table(ctx.out.stages)
    if not split.empty:
        caption = (
            "Where each actor pool's time went, % of its slot time (wall time x actors); "
            "idle: no part running (waiting for input, scheduling, the pool's start and tail)"
        )
        s.blocks.append(Table(split, caption))
    skipped = skipped_table(ctx.out.stages)
    if not skipped.empty:
        s.blocks.append(Table(skipped, "Left out of this run, and why"))
    for name, record in sorted(ctx.out.stages.items()):
        if record.get("kept_stale"):
            reasons = "; ".join(str(r) for r in record["kept_stale"])
            text = f"Stage {name}: outputs reused although they may be stale: {reasons}"
            s.blocks.append(Note(text, "problem"))
    for rel, why in sorted(ctx.out.problems.items()):
        s.blocks.append(Note(f"Could not read {rel}: {why}", "problem"))
