"""Clustering scorers on segment embeddings (Lehmann & Stadelmann 2020, Tables 3-4): EER of the
base model per scorer and trial list, and the verdict on AHC-average against Mean-CosSim."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from voxray.report.html import Section
from voxray.report.metrics import empty_table, verification_rows
from voxray.report.names import order_lists, scorer_name, scorer_order
from voxray.report.sections.base import ReportContext, section, table_or_missing
from voxray.report.verdicts import Verdict, overall

TITLE = "Clustering scorers on segment embeddings (Tables 3-4 of Lehmann & Stadelmann 2020)"
INTRO = (
    "EER (%) of the base model on clean data when each utterance is embedded as "
    "50%-overlapping segments and trials are scored by the mean cosine / dot product of the "
    "segment embeddings, by agglomerative clustering (AHC, score = distance of the last merge) "
    "per linkage, or by dominant sets (DS); whole-utterance cosine scoring is the first row."
)


def _clean_eers(metrics: pd.DataFrame | None, base: str) -> pd.DataFrame:
    """The EER rows of the base model on clean data."""
    rows = verification_rows(metrics)
    return rows[(rows["model"] == base) & (rows["condition"] == "none") & (rows["metric"] == "eer")]


def clustering_table(
    metrics: pd.DataFrame | None, base: str, preferred_lists: Sequence[str] = ()
) -> pd.DataFrame:
    """Tables 3-4 of Lehmann & Stadelmann 2020: EER (%) of the base model on clean data per
    scorer (rows: cosine, Mean-DotProduct, Mean-CosSim, AHC-*, DS-*) and trial list (columns)."""
    rows = _clean_eers(metrics, base)
    if rows.empty:
        return empty_table()
    lists = order_lists(rows["list"].astype(str), preferred_lists)
    wide = rows.pivot_table(index="scorer", columns="list", values="value", aggfunc="last")
    scorers = sorted(wide.index, key=scorer_order)
    data = [[100 * wide.loc[s].get(lst, np.nan) for lst in lists] for s in scorers]
    return pd.DataFrame(
        data,
        index=pd.Index([scorer_name(s) for s in scorers], name="Scorer"),
        columns=[f"{lst} EER (%)" for lst in lists],
    )


def ahc_verdict(
    metrics: pd.DataFrame | None, base: str, preferred_lists: Sequence[str] = ()
) -> Verdict:
    """Lehmann & Stadelmann 2020: per trial list, is the EER of AHC-average below Mean-CosSim's
    (base model, clean data)?"""
    claim = "Lehmann & Stadelmann 2020: AHC with average linkage beats Mean-CosSim"
    rows = _clean_eers(metrics, base)
    wide = rows.pivot_table(index="list", columns="scorer", values="value", aggfunc="last")
    if wide.empty or not {"ahc-average", "mean_cossim"} <= set(wide.columns):
        return Verdict(
            claim, "not computed", "needs AHC-average and Mean-CosSim EERs of the base model"
        )
    pairs = wide[["ahc-average", "mean_cossim"]].dropna()
    pairs = pairs.loc[order_lists(pairs.index.astype(str), preferred_lists)]
    if pairs.empty:
        return Verdict(claim, "not computed", "no trial list has both EERs")
    passed = int((pairs["ahc-average"] < pairs["mean_cossim"]).sum())
    parts = "; ".join(
        f"{lst}: {100 * r['ahc-average']:.2f}% vs {100 * r['mean_cossim']:.2f}%"
        for lst, r in pairs.iterrows()
    )
    return Verdict(
        claim,
        overall(passed, len(pairs)),
        f"lower EER on {passed} of {len(pairs)} trial lists (AHC-Average vs Mean-CosSim EER: "
        f"{parts})",
    )


@section("clustering", TITLE, INTRO, order=40)
def clustering(ctx: ReportContext, s: Section) -> None:
    lists = ctx.cfg.corpus.trial_lists
    t = clustering_table(ctx.out.metrics, ctx.base, lists)
    s.verdicts.append(ahc_verdict(ctx.out.metrics, ctx.base, lists))
    s.blocks.append(table_or_missing(t, "no clean-data EERs of the base model in metrics/"))
