"""Faithfulness by deletion and insertion (Li et al. 2022): AUC per method and scorer, the
curves, and the verdict on the CAMs against random masking."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from voxray.report.html import Image, Section
from voxray.report.metrics import condition_label, empty_table, interval_of, select_rows
from voxray.report.names import CAM_METHODS, REFERENCES, method_pathway_name
from voxray.report.plots import curves_plot
from voxray.report.sections.base import ReportContext, panels, section, table_or_missing
from voxray.report.verdicts import Side, Verdict, between, verdict

TITLE = "Faithfulness: deletion and insertion (Li et al. 2022)"
INTRO = (
    "Deletion removes the most relevant bins first and tracks the model's output (a faithful "
    "map makes it fall fast: low AUC); insertion reveals them first on a blank input (a "
    "faithful map makes it rise fast: high AUC). Random and left-to-right time-aligned masking "
    "are the references."
)

AUC_NAMES = {"deletion_auc": "Deletion AUC", "insertion_auc": "Insertion AUC"}
#: where a faithful map puts each AUC against random masking's.
SIDES: tuple[tuple[str, Side], ...] = (("deletion_auc", "below"), ("insertion_auc", "above"))


def _reference_last(conditions: Sequence[str]) -> list[str]:
    refs = [r for r in REFERENCES if r in conditions]
    return sorted(c for c in conditions if c not in REFERENCES) + refs


def faithfulness_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Deletion / insertion AUC per method (rows, references last) and scorer (column groups).
    Deletion: lower is better; insertion: higher is better."""
    rows = select_rows(metrics, list="faithfulness")
    rows = rows[rows["metric"].isin(list(AUC_NAMES))]
    if rows.empty:
        return empty_table()
    wide = rows.pivot_table(
        index="condition", columns=["scorer", "metric"], values="value", aggfunc="last"
    )
    conditions = _reference_last(list(wide.index))
    scorers = sorted({s for s, _ in wide.columns})
    cols = [(s, m) for s in scorers for m in AUC_NAMES if (s, m) in wide.columns]
    data = [[wide.loc[c, col] for col in cols] for c in conditions]
    columns = pd.MultiIndex.from_tuples([(f"scorer: {s}", AUC_NAMES[m]) for s, m in cols])
    return pd.DataFrame(
        data,
        index=pd.Index([condition_label(c) for c in conditions], name="Method"),
        columns=columns,
    )


def cam_random_verdict(metrics: pd.DataFrame | None) -> Verdict:
    """Li et al. 2022: per CAM and scorer, the deletion AUC lies below random's and the
    insertion AUC above it: each judged by the two AUCs' intervals (disjoint on the claim's
    side: holds; on the other side: fails)."""
    claim = "Li et al. 2022: the CAMs beat random masking in deletion and insertion"
    rows = select_rows(metrics, list="faithfulness")
    if rows.empty:
        return Verdict(claim, "not computed", "no faithfulness AUCs in metrics/")
    checks = []
    for scorer in sorted(set(rows["scorer"].astype(str))):
        mine = rows[rows["scorer"] == scorer]
        cams = sorted(
            c for c in set(mine["condition"].astype(str)) if c.partition("/")[0] in CAM_METHODS
        )
        if "random" not in set(mine["condition"]):
            continue
        for cond in cams:
            for metric, side in SIDES:
                ours = interval_of(mine, condition=cond, metric=metric)
                ref = interval_of(mine, condition="random", metric=metric)
                if np.isnan(ours.value) or np.isnan(ref.value):
                    continue
                label = f"{scorer} {method_pathway_name(cond)} {AUC_NAMES[metric]} vs random"
                checks.append(between(label, ours, ref, side))
    return verdict(claim, checks, "needs CAM and random deletion/insertion AUCs for one scorer")


@section("faithfulness", TITLE, INTRO, order=90)
def faithfulness(ctx: ReportContext, s: Section) -> None:
    if ctx.skips(s, "faithfulness"):
        return
    s.verdicts.append(cam_random_verdict(ctx.out.metrics))
    t = faithfulness_table(ctx.out.metrics)
    s.blocks.append(table_or_missing(t, "no deletion / insertion AUCs in metrics/"))
    deletion = panels(ctx.curves("deletion"), "Deletion")
    insertion = panels(ctx.curves("insertion"), "Insertion")
    labelled = [(p, "Bins masked (%)") for p in deletion] + [
        (p, "Bins revealed (%)") for p in insertion
    ]
    if len(deletion) == len(insertion):  # each deletion panel beside its insertion panel
        labelled = [
            x for i in range(len(deletion)) for x in (labelled[i], labelled[len(deletion) + i])
        ]
    if labelled:
        png = curves_plot(
            [p for p, _ in labelled], [x for _, x in labelled], "Model output", x_percent=True
        )
        s.blocks.append(
            Image(
                png,
                "deletion and insertion curves per method",
                "Left: deletion (lower is better); right: insertion (higher is better).",
            )
        )
