"""Multi-speaker localisation (Li et al. 2022, Table 2): Top-1 of the target speaker in
concatenated utterances masked by each CAM, and the verdict on Layer-CAM."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from voxray.report.html import Section, Table
from voxray.report.metrics import empty_table, select_rows
from voxray.report.names import MULTISPEAKER_LIST, method_name, short_method_name
from voxray.report.sections.base import ReportContext, missing, section
from voxray.report.verdicts import Verdict, overall

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
    """Li et al. 2022: in each multi-speaker case, is Layer-CAM's best Top-1 (over layer
    settings) the highest?"""
    claim = "Li et al. 2022: Layer-CAM localises the target speaker best in the multi-speaker test"
    rows = select_rows(metrics, list=MULTISPEAKER_LIST, metric="top1")
    rows = rows[rows["condition"] != "original"]
    if rows.empty:
        return Verdict(claim, "not computed", "no multi-speaker Top-1 in metrics/")
    rows = rows.assign(method=rows["condition"].astype(str).str.partition("@")[0])
    best = rows.groupby(["case", "method"])["value"].max()
    cases = [
        c for c in dict.fromkeys(rows["case"]) if "layer_cam" in best[c].index and len(best[c]) > 1
    ]
    if not cases:
        return Verdict(
            claim, "not computed", "Layer-CAM and at least one other CAM are needed in a case"
        )
    passed = [c for c in cases if best[c]["layer_cam"] >= best[c].drop("layer_cam").max()]
    parts = "; ".join(
        f"{c}: Layer-CAM {100 * best[c]['layer_cam']:.2f}% vs best other "
        f"{method_name(str(best[c].drop('layer_cam').idxmax()))} "
        f"{100 * best[c].drop('layer_cam').max():.2f}%"
        for c in cases
    )
    return Verdict(
        claim,
        overall(len(passed), len(cases)),
        f"best in {len(passed)} of {len(cases)} cases ({parts})",
    )


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
    for metric, caption in LOCALISATION_CAPTIONS.items():
        extra = multispeaker_table(ctx.out.metrics, cases, metric)
        if not extra.empty:
            s.blocks.append(
                Table(extra.drop(index="Original", errors="ignore"), caption, decimals=2)
            )
