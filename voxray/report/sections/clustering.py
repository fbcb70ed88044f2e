"""Clustering scorers on segment embeddings (Lehmann & Stadelmann 2020, Tables 3-4): EER of the
base model per scorer and trial list, and the verdict on AHC-average against Mean-CosSim."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from voxray.config.evaluation import IntervalConfig
from voxray.report.effects import paired_eer_effect
from voxray.report.html import Section
from voxray.report.metrics import (
    EER,
    empty_table,
    interval_of,
    interval_text,
    verification_rows,
)
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


@dataclass(frozen=True)
class ScorerClaim:
    """A claim that scorer ``better``'s EER is below scorer ``worse``'s on every trial list
    (base model, clean data); calling it gives the verdict. One class for the section's claims,
    which differ only in the two scorers compared."""

    claim: str
    better: str
    worse: str

    def __call__(
        self,
        metrics: pd.DataFrame | None,
        scores: pd.DataFrame | None,
        manifest: pd.DataFrame | None,
        base: str,
        intervals: IntervalConfig,
        preferred_lists: Sequence[str] = (),
    ) -> Verdict:
        """Per trial list, the paired difference's interval lies below 0 (from the two
        metrics/ intervals where scores/ lacks the trials)."""
        better, worse = self.better, self.worse
        rows = _clean_eers(metrics, base)
        lists = [
            lst
            for lst in order_lists(rows["list"].astype(str), preferred_lists)
            if {better, worse} <= set(rows.loc[rows["list"] == lst, "scorer"])
        ]
        names = f"{scorer_name(better)} EER - {scorer_name(worse)} EER"
        checks, method = [], ""
        for lst in lists:
            gap = paired_eer_effect(
                scores,
                manifest,
                (base, "none", better),
                (base, "none", worse),
                lst,
                intervals,
                effect="difference",
            )
            if gap is not None:
                checks.append(against_bound(f"{lst}: {names}", gap, 0.0, "below", 100, " pt"))
                method = f"paired difference, {gap.method}"
                continue
            a = interval_of(rows, list=lst, scorer=better)
            b = interval_of(rows, list=lst, scorer=worse)
            label = f"{lst}: {scorer_name(better)} vs {scorer_name(worse)} EER"
            checks.append(between(label, a, b, "below", 100, "%"))
        missing = f"needs {scorer_name(better)} and {scorer_name(worse)} EERs of the base model"
        return verdict(self.claim, checks, missing, method)


#: Lehmann & Stadelmann 2020: AHC-average's EER is below Mean-CosSim's on every list.
ahc_verdict = ScorerClaim(
    "Lehmann & Stadelmann 2020: AHC with average linkage beats Mean-CosSim",
    "ahc-average",
    "mean_cossim",
)
#: Lehmann & Stadelmann 2020 section 4.4: AHC-average (5.54%) beats one random segment per
#: utterance (7.52%), i.e. scoring all segments pays.
baseline_verdict = ScorerClaim(
    "Lehmann & Stadelmann 2020 (4.4): AHC-Average beats a single random segment",
    "ahc-average",
    "single_segment",
)


#: the scorers the single-segment baseline is shown beside (section 4.4's comparison).
BASELINE_SCORERS = ("single_segment", "mean_cossim", "ahc-average")


def baseline_table(
    metrics: pd.DataFrame | None, base: str, preferred_lists: Sequence[str] = ()
) -> pd.DataFrame:
    """Section 4.4's baseline beside the clustering scorers it is compared with: EER (%) and
    its interval per trial list and scorer; empty without single-segment rows."""
    rows = _clean_eers(metrics, base)
    if "single_segment" not in set(rows["scorer"]):
        return empty_table()
    out = []
    for lst in order_lists(rows["list"].astype(str), preferred_lists):
        for scorer in BASELINE_SCORERS:
            ci = interval_of(rows, list=lst, scorer=scorer)
            if np.isfinite(ci.value):
                out.append([lst, scorer_name(scorer), 100 * ci.value, interval_text(ci, 100)])
    return pd.DataFrame(out, columns=["List", "Scorer", EER, "95% CI"])


@section("clustering", TITLE, INTRO, order=40)
def clustering(ctx: ReportContext, s: Section) -> None:
    lists = ctx.cfg.corpus.trial_lists
    args = (ctx.out.metrics, ctx.out.scores, ctx.out.manifest, ctx.base, ctx.cfg.eval.intervals)
    s.verdicts.append(ahc_verdict(*args, lists))
    t = clustering_table(ctx.out.metrics, ctx.base, lists)
    s.blocks.append(table_or_missing(t, "no clean-data EERs of the base model in metrics/"))
    baseline = baseline_table(ctx.out.metrics, ctx.base, lists)
    if baseline.empty:  # the profile did not ask for it (eval.scorers: single_segment)
        return
    s.verdicts.append(baseline_verdict(*args, lists))
    caption = (
        "One random segment per utterance (Lehmann & Stadelmann 2020, 4.4) beside the scorers "
        "that use all of them"
    )
    s.blocks.append(table_or_missing(baseline, "", caption))
