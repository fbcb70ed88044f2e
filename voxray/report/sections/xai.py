"""Which method to trust here: Quantus metric families per method and pathway, ranked, with
the seeds' own tests (deletion / insertion AUC, sanity-check correlation) beside them, and the
meta-evaluation that says which metrics can fail (``voxray.eval.xai_meta``).

A method's rank is its mean rank over the informative Quantus metrics, each oriented so that
rank 1 is the better explanation (``voxray.eval.xai_metrics.HIGHER_IS_BETTER``); a metric not
defined for a pathway (NaN) is left out of that pathway's ranking, and a metric that does not
rank the real maps above random ones at its interval is left out of every ranking. Cells give
the mean over the sample with its speaker-bootstrap 95% interval where the rows name speakers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxray.attribution import ATTRIBUTORS, method_pathways
from voxray.attribution.captum_methods import DeepLiftAttributor
from voxray.eval.intervals import Interval
from voxray.eval.xai_meta import UNINFORMATIVE, MetaVerdict, meta_verdict, nanmean_interval
from voxray.eval.xai_metrics import FAMILIES, MAP_KINDS, rank_methods
from voxray.report.html import Note, Section, Table
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
    "Spearman correlation) stand beside them. Blank: not defined for the pathway. Completeness "
    "is the relative error |sum(A) - (f(x) - f(x'))| / |f(x) - f(x')| against "
    "attribution.baseline; no metric applies a softmax (no explained output is a probability). "
    "The meta-evaluation (after MetaQuantus, Hedstrom et al. 2023) scores each metric on the "
    "real maps, on random maps (the real values permuted over the bins) and on inverted maps "
    "(max + min - A, the order reversed): a metric whose gain of real over random has an "
    "interval that does not lie above 0 is flagged 'uninformative here' and left out of "
    "the ranking."
)

RANK = "Mean rank"


def xai_rows(metrics: pd.DataFrame | None, model: str, kind: str | None = "real") -> pd.DataFrame:
    """The Quantus rows of ``model`` (those with a family) for the map ``kind`` (None: every
    kind; rows written before the meta-evaluation, condition ``none``, are real maps), with the
    speaker of each row (the row itself where none is recorded)."""
    cols = ["method", "family", "metric", "value", "condition", "utt_id", "speaker"]
    if metrics is None or "family" not in metrics.columns:
        return pd.DataFrame(columns=cols)
    rows = metrics[metrics["family"].notna() & (metrics["model"] == model)].copy()
    rows["condition"] = rows["condition"].replace("none", "real")
    if kind is not None:
        rows = rows[rows["condition"] == kind]
    utt = rows["utt_id"] if "utt_id" in rows.columns else pd.Series(None, index=rows.index)
    rows["utt_id"] = utt.fillna(pd.Series(rows.index.astype(str), index=rows.index))
    spk = rows["speaker_id"] if "speaker_id" in rows.columns else pd.Series(None, index=rows.index)
    rows["speaker"] = spk.fillna(rows["utt_id"])
    return rows[cols]


def meta_verdicts(metrics: pd.DataFrame | None, model: str) -> dict[str, MetaVerdict]:
    """Per metric with the three maps: its verdict over every method's utterances (one row per
    method and utterance, resampled by speaker)."""
    rows = xai_rows(metrics, model, kind=None)
    out = {}
    for metric, group in rows.groupby("metric", sort=False):
        wide = group.pivot_table(
            index=["method", "utt_id", "speaker"], columns="condition", values="value"
        )
        if not set(MAP_KINDS) <= set(wide.columns):
            continue
        speakers = wide.index.get_level_values("speaker").to_numpy()
        kinds = [wide[k].to_numpy() for k in MAP_KINDS]
        out[str(metric)] = meta_verdict(str(metric), *kinds, speakers)
    return out


def _cell(iv: Interval | None) -> str:
    return "" if iv is None else f"{iv.value:.3f} [{iv.ci_low:.3f}, {iv.ci_high:.3f}]"


def meta_table(verdicts: dict[str, MetaVerdict]) -> pd.DataFrame:
    """Metric x (real, random, inverted, gain of real over random, verdict)."""
    order = [m for m in FAMILIES if m in verdicts]
    return pd.DataFrame(
        [
            {
                "Metric": m,
                "Family": FAMILIES[m],
                "Real": _cell(verdicts[m].real),
                "Random": _cell(verdicts[m].random),
                "Inverted": _cell(verdicts[m].inverted),
                "Gain real - random (oriented)": _cell(verdicts[m].gain),
                "Verdict": "informative" if verdicts[m].informative else UNINFORMATIVE,
                "flagged": not verdicts[m].informative,
            }
            for m in order
        ]
    )


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


def uninformative(metrics: pd.DataFrame | None, model: str) -> set[str]:
    """The metrics the meta-evaluation flags (left out of every ranking)."""
    return {m for m, v in meta_verdicts(metrics, model).items() if not v.informative}


def methods_table(metrics: pd.DataFrame | None, model: str) -> pd.DataFrame:
    """Methods x metrics for ``model``, best mean rank (over the informative metrics) first;
    columns grouped by family, a flagged metric's heading saying so, then the seeds' tests
    where the run has them. Cells are means over the sample."""
    rows = xai_rows(metrics, model)
    if rows.empty:
        return pd.DataFrame()
    wide = rows.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
    order = [m for m in FAMILIES if m in wide.columns]
    wide = wide[order]
    flagged = uninformative(metrics, model)
    ranked = wide.drop(columns=[m for m in order if m in flagged])
    ranks = rank_methods({m: dict(r.dropna()) for m, r in ranked.iterrows()})
    wide.columns = [f"{c} ({UNINFORMATIVE})" if c in flagged else c for c in wide.columns]
    wide.insert(0, RANK, pd.Series(ranks))
    seeds = _seed_tests(metrics)
    if not seeds.empty:
        wide = wide.join(seeds, how="left")
    wide = wide.sort_values(RANK)
    wide.index = [method_pathway_name(str(m)) for m in wide.index]
    wide.columns = [f"{_family(c)}: {c}" if _family(c) else c for c in wide.columns]
    return wide.reset_index(names="Method").dropna(axis=1, how="all")


def _family(column: str) -> str:
    """The family of a metric column (its heading may carry the flag), else ""."""
    return FAMILIES.get(column.split(" (")[0], "")


def intervals_table(metrics: pd.DataFrame | None, model: str) -> pd.DataFrame:
    """Methods x metrics: the mean of the real maps' scores with its speaker-bootstrap
    interval."""
    rows = xai_rows(metrics, model)
    out: dict[str, dict[str, str]] = {}
    for (method, metric), g in rows.groupby(["method", "metric"], sort=False):
        iv = nanmean_interval(g["value"].to_numpy(), g["speaker"].to_numpy())
        out.setdefault(method_pathway_name(str(method)), {})[str(metric)] = _cell(iv)
    frame = pd.DataFrame.from_dict(out, orient="index")
    return frame[[m for m in FAMILIES if m in frame.columns]].reset_index(names="Method")


def family_leaders(metrics: pd.DataFrame | None, model: str) -> pd.DataFrame:
    """Per family: the method with the best mean rank over that family's informative metrics."""
    flagged = uninformative(metrics, model)
    rows = xai_rows(metrics, model)
    rows = rows[~rows["metric"].isin(flagged)]
    rows = rows.groupby(["family", "method", "metric"], sort=False)["value"].mean().reset_index()
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


def deeplift_note(methods: pd.Series) -> Note | None:
    """DeepLift's stated completeness per model (its class), where the run measured it."""
    if not methods.astype(str).str.startswith("deeplift/").any():
        return None
    stated = DeepLiftAttributor.completeness_error_median
    parts = [f"{arch}: {lo:g}-{hi:g}" for arch, (lo, hi) in stated.items()]
    return Note(
        "DeepLift is not complete on the speaker models: the median relative completeness "
        f"error on narrow untrained models is {'; '.join(parts)} (IG: about 0.01). It is "
        "computed one utterance at a time through a softmax, so its maps do not depend on "
        "their batch."
    )


@section("xai", TITLE, INTRO, order=130)
def xai(ctx: ReportContext, s: Section) -> None:
    t = methods_table(ctx.out.metrics, ctx.base)
    if t.empty:
        s.blocks.append(missing("no Quantus metrics in metrics/ (evaluate.xai)"))
        return
    s.blocks.append(Table(t, f"Methods x metrics, {ctx.base}", decimals=3))
    s.blocks.append(
        Table(intervals_table(ctx.out.metrics, ctx.base), "Means with 95% speaker intervals")
    )
    meta = meta_table(meta_verdicts(ctx.out.metrics, ctx.base))
    if not meta.empty:
        s.blocks.append(
            Table(meta, "Meta-evaluation: real vs random vs inverted maps", highlight="flagged")
        )
    note = deeplift_note(xai_rows(ctx.out.metrics, ctx.base)["method"])
    if note is not None:
        s.blocks.append(note)
    leaders = family_leaders(ctx.out.metrics, ctx.base)
    if not leaders.empty:
        s.blocks.append(Table(leaders, "First method per family", decimals=2))
