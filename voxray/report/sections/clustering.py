"""Clustering scorers on segment embeddings (Lehmann & Stadelmann 2020, Tables 3-4): EER of the
base model per scorer and trial list, and the verdict on AHC-average against Mean-CosSim."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from voxray.config.evaluation import IntervalConfig
from voxray.report.effects import paired_eer_effect
from voxray.report.html import Section
from voxray.report.metrics import empty_table, interval_of, verification_rows
from voxray.report.names import order_lists, scorer_name, scorer_order
from voxray.report.sections.base import ReportContext, section, table_or_missing
from voxray.report.verdicts import Verdict, against_bound, between, verdict

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
    metrics: pd.DataFrame | None,
    scores: pd.DataFrame | None,
    manifest: pd.DataFrame | None,
    base: str,
    intervals: IntervalConfig,
    preferred_lists: Sequence[str] = (),
) -> Verdict:
    """Lehmann & Stadelmann 2020: per trial list, the EER of AHC-average is below Mean-CosSim's
    (base model, clean data): the paired difference's interval lies below 0 (from the two
    metrics/ intervals where scores/ lacks the trials)."""
    claim = "Lehmann & Stadelmann 2020: AHC with average linkage beats Mean-CosSim"
    rows = _clean_eers(metrics, base)
    lists = [
        lst
        for lst in order_lists(rows["list"].astype(str), preferred_lists)
        if {"ahc-average", "mean_cossim"} <= set(rows.loc[rows["list"] == lst, "scorer"])
    ]
    checks, method = [], ""
    for lst in lists:
        label = f"{lst}: AHC-Average EER - Mean-CosSim EER"
        gap = paired_eer_effect(
            scores,
            manifest,
            (base, "none", "ahc-average"),
            (base, "none", "mean_cossim"),
            lst,
            intervals,
            effect="difference",
        )
        if gap is not None:
            checks.append(against_bound(label, gap, 0.0, "below", 100, " pt"))
            method = f"paired difference, {gap.method}"
            continue
        ahc = interval_of(rows, list=lst, scorer="ahc-average")
        mean = interval_of(rows, list=lst, scorer="mean_cossim")
        checks.append(
            between(f"{lst}: AHC-Average vs Mean-CosSim EER", ahc, mean, "below", 100, "%")
        )
    return verdict(
        claim, checks, "needs AHC-average and Mean-CosSim EERs of the base model", method
    )


@section("clustering", TITLE, INTRO, order=40)
def clustering(ctx: ReportContext, s: Section) -> None:
    lists = ctx.cfg.corpus.trial_lists
    t = clustering_table(ctx.out.metrics, ctx.base, lists)
    s.verdicts.append(
        ahc_verdict(
            ctx.out.metrics,
            ctx.out.scores,
            ctx.out.manifest,
            ctx.base,
            ctx.cfg.eval.intervals,
            lists,
        )
    )
    s.blocks.append(table_or_missing(t, "no clean-data EERs of the base model in metrics/"))
