"""Which method to trust here: Quantus metric families per method and pathway, ranked, with
the seeds' own tests (deletion / insertion AUC, sanity-check correlation) beside them.

A method's rank is its mean rank over the Quantus metrics, each oriented so that rank 1 is the
better explanation (``voxray.eval.xai_metrics.HIGHER_IS_BETTER``); a metric not defined for a
pathway (NaN) is left out of that pathway's ranking.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxray.attribution import ATTRIBUTORS, method_pathways
from voxray.eval.xai_metrics import FAMILIES, rank_methods
from voxray.report.html import Section, Table
from voxray.report.names import method_pathway_name
from voxray.report.sections.base import ReportContext, missing, section

TITLE = "Which method to trust here: Quantus metric families"
INTRO = (
    "Every method and pathway measured with the Quantus package on a sample of test crops: "
    "faithfulness (FaithfulnessCorrelation, ROAD, IROF, Monotonicity), robustness "
    "(Max/AvgSensitivity, RelativeInputStability), complexity (Sparseness, Complexity), "
    "randomisation (MPRT, RandomLogit) and axiomatic (Completeness, InputInvariance). Rows are "
    "ranked by the mean rank over the metrics, each oriented so that rank 1 is the better "
    "explanation (lower is better for ROAD, the sensitivities, the stability, Complexity, MPRT "
    "and RandomLogit); the seeds' own tests (deletion / insertion AUC, the sanity check's final "
    "Spearman correlation) stand beside them. Blank: not defined for the pathway."
)

RANK = "Mean rank"


def xai_rows(metrics: pd.DataFrame | None, model: str) -> pd.DataFrame:
    """The Quantus rows of ``model`` (those with a family)."""
    if metrics is None or "family" not in metrics.columns:
        return pd.DataFrame(columns=["method", "family", "metric", "value"])
    rows = metrics[metrics["family"].notna() & (metrics["model"] == model)]
    return rows[["method", "family", "metric", "value"]]


def _seed_tests(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per ``method/pathway`` label: the deletion and insertion AUC (Top-1) of the faithfulness
    analysis and the sanity check's final Spearman correlation."""
    out: dict[str, dict[str, float]] = {}
    f = metrics[(metrics["list"] == "faithfulness") & (metrics["scorer"] == "top1")]
    for label, metric, value in zip(f["condition"], f["metric"], f["value"], strict=True):
        name = {"deletion_auc": "Deletion AUC", "insertion_auc": "Insertion AUC"}.get(metric)
        if name and "/" in str(label):
            out.setdefault(str(label), {})[name] = float(value)
    s = metrics[(metrics["list"] == "sanity") & (metrics["metric"] == "spearman_final")]
    for method, value in zip(s["condition"], s["value"], strict=True):
        if str(method) in ATTRIBUTORS:  # the sanity check explains the classification output
            label = f"{method}/{method_pathways(str(method), ('classification',))[0]}"
            out.setdefault(label, {})["Sanity Spearman"] = float(value)
    return pd.DataFrame.from_dict(out, orient="index")


def methods_table(metrics: pd.DataFrame | None, model: str) -> pd.DataFrame:
    """Methods x metrics for ``model``, best mean rank first; columns grouped by family, then
    the seeds' tests where the run has them."""
    rows = xai_rows(metrics, model)
    if rows.empty:
        return pd.DataFrame()
    wide = rows.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
    order = [m for m in FAMILIES if m in wide.columns]
    wide = wide[order]
    ranks = rank_methods({m: dict(r.dropna()) for m, r in wide.iterrows()})
    wide.insert(0, RANK, pd.Series(ranks))
    seeds = _seed_tests(metrics)
    if not seeds.empty:
        wide = wide.join(seeds, how="left")
    wide = wide.sort_values(RANK)
    wide.index = [method_pathway_name(str(m)) for m in wide.index]
    wide.columns = [f"{FAMILIES[c]}: {c}" if c in FAMILIES else c for c in wide.columns]
    return wide.reset_index(names="Method").dropna(axis=1, how="all")


def family_leaders(metrics: pd.DataFrame | None, model: str) -> pd.DataFrame:
    """Per family: the method with the best mean rank over that family's metrics."""
    rows = xai_rows(metrics, model)
    out = []
    for family, group in rows.groupby("family", sort=False):
        table: dict[str, dict[str, float]] = {}
        for method, metric, value in zip(
            group["method"], group["metric"], group["value"], strict=True
        ):
            table.setdefault(str(method), {})[str(metric)] = float(value)
        ranks = {m: r for m, r in rank_methods(table).items() if np.isfinite(r)}
        if ranks:
            best = min(ranks, key=ranks.get)
            out.append({"Family": family, "First": method_pathway_name(best), RANK: ranks[best]})
    order = list(dict.fromkeys(FAMILIES.values()))
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    return frame.sort_values("Family", key=lambda s: s.map(order.index)).reset_index(drop=True)


@section("xai", TITLE, INTRO, order=130)
def xai(ctx: ReportContext, s: Section) -> None:
    t = methods_table(ctx.out.metrics, ctx.base)
    if t.empty:
        s.blocks.append(missing("no Quantus metrics in metrics/ (evaluate.xai)"))
        return
    s.blocks.append(Table(t, f"Methods x metrics, {ctx.base}", decimals=3))
    leaders = family_leaders(ctx.out.metrics, ctx.base)
    if not leaders.empty:
        s.blocks.append(Table(leaders, "First method per family", decimals=2))
