"""Sanity checks (model and label randomisation): how similar each method's maps stay when the
model is destroyed, and the curves of the cascading and label randomisation."""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxray.report.html import Image, Section
from voxray.report.metrics import empty_table, select_rows
from voxray.report.names import method_name
from voxray.report.plots import curves_plot
from voxray.report.sections.base import ReportContext, panels, section, table_or_missing

TITLE = "Sanity checks: model and label randomisation"
INTRO = (
    "Maps computed after randomising the model's layers from the top (cascading) and after "
    "training on shuffled labels are compared with the trained model's maps (Spearman rank "
    "correlation, SSIM). A method whose maps stay similar when the model is destroyed explains "
    "the input, not the model: such methods are flagged (highlighted rows)."
)

#: the similarity columns of the sanity table: metric -> heading.
SIMILARITY_NAMES = {
    "spearman_final": "Spearman, all layers randomised",
    "ssim_final": "SSIM, all layers randomised",
    "label_spearman": "Spearman, labels randomised",
}


def sanity_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Sanity checks per method: similarity of the maps to the trained model's after full
    cascading randomisation (Spearman, SSIM), after label randomisation, and the flag
    (maps that barely change when the model is destroyed)."""
    rows = select_rows(metrics, list="sanity")
    if rows.empty:
        return empty_table()
    wide = rows.pivot_table(index="condition", columns="metric", values="value", aggfunc="last")
    out = pd.DataFrame(
        {
            label: wide.get(m, pd.Series(np.nan, index=wide.index))
            for m, label in SIMILARITY_NAMES.items()
        }
    )
    out["Flagged"] = [
        bool(v >= 0.5) if not np.isnan(v) else False
        for v in wide.get("flagged", pd.Series(np.nan, index=wide.index))
    ]
    out.index = pd.Index([method_name(str(c)) for c in wide.index], name="Method")
    return out


@section("sanity", TITLE, INTRO, order=120)
def sanity(ctx: ReportContext, s: Section) -> None:
    if ctx.skips(s, "sanity"):
        return
    t = sanity_table(ctx.out.metrics)
    s.blocks.append(
        table_or_missing(t, "no sanity-check results in metrics/", highlight="Flagged", decimals=3)
    )
    for experiment, title in (
        ("sanity_cascading", "Cascading randomisation"),
        ("sanity_label", "Label randomisation"),
    ):
        c = ctx.curves(experiment)
        if not c.empty:
            png = curves_plot(
                panels(c, title),
                "Layers randomised" if experiment == "sanity_cascading" else "Step",
                "Similarity to the trained model's maps",
            )
            s.blocks.append(Image(png, f"{title.lower()} curves per method"))
