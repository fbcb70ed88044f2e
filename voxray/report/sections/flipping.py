"""Pixel flipping and the gender experiment (Sarvaš 2021): accuracy as the most relevant bins
are flipped, the gender classifiers' Table 1, and the verdict on LRP against random flipping."""

from __future__ import annotations

import numpy as np
import pandas as pd

from voxray.attribution.base import Pathway, methods_with_pathway
from voxray.report.html import Image, Section
from voxray.report.metrics import (
    condition_label,
    empty_table,
    interval_of,
    rows_as_curves,
    select_rows,
)
from voxray.report.names import REFERENCES, fraction_label, method_name
from voxray.report.plots import curves_plot
from voxray.report.sections.base import ReportContext, panels, section, table_or_missing
from voxray.report.verdicts import Verdict, between, verdict

TITLE = "Pixel flipping and the gender experiment (Sarvaš 2021)"
INTRO = (
    "The most relevant bins (by each method) are set to zero and the accuracy is measured as "
    "the flipped fraction grows; random flipping is the reference. A faithful relevance map "
    "makes the accuracy drop faster than random. The gender table reproduces Sarvaš 2021's "
    "Table 1 (accuracy before and after flipping 0.5% of the bins, for the classifier and the "
    "one retrained with Moore-neighbourhood augmentation)."
)

#: Table 1 of Sarvaš 2021 (AlexNet gender classifier on AudioMNIST): model -> (acc % at 0%, at
#: 0.5% flipped).
SEED_002_GENDER = {"alexnet-gender": (97.8, 12.3), "alexnet-gender-augmented": (98.7, 28.4)}
LRP_METHODS = methods_with_pathway(Pathway.LRP)


def _fraction(metric: str) -> float:
    try:
        return float(metric.split("@", 1)[1])
    except (IndexError, ValueError):
        return float("nan")


def _accuracy_by_fraction(rows: pd.DataFrame, index: list[str]) -> pd.DataFrame:
    rows = rows[rows["metric"].astype(str).str.startswith("acc@")]
    if rows.empty:
        return empty_table()
    rows = rows.assign(fraction=[_fraction(m) for m in rows["metric"]])
    rows = rows[~rows["fraction"].isna()]
    return rows.pivot_table(index=index, columns="fraction", values="value", aggfunc="last")


def _model_then_reference_last(keys: pd.Index) -> list[tuple[str, str]]:
    """(model, condition) keys by model, random flipping after the methods."""
    return sorted(keys, key=lambda k: (k[0], k[1] in REFERENCES, k[1]))


def pixel_flipping_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Accuracy (%) after flipping the most relevant fraction of bins, per model and method
    (rows; random flipping last) and fraction (columns)."""
    wide = _accuracy_by_fraction(
        select_rows(metrics, list="pixel_flipping"), ["model", "condition"]
    )
    if wide.empty:
        return empty_table()
    keys = _model_then_reference_last(wide.index)
    data = [[100 * v for v in wide.loc[k]] for k in keys]
    index = pd.MultiIndex.from_tuples(
        [(k[0], condition_label(k[1])) for k in keys], names=["Model", "Flipped by"]
    )
    return pd.DataFrame(
        data, index=index, columns=[f"Acc. (%) at {fraction_label(f)}" for f in wide.columns]
    )


def gender_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Table 1 of Sarvaš 2021: accuracy (%) of the gender classifiers before and after flipping
    the most relevant 0.5% of bins (rows: model x flipping method, random flipping last), with
    the seed's AudioMNIST figures beside."""
    wide = _accuracy_by_fraction(select_rows(metrics, list="gender"), ["model", "condition"])
    if wide.empty:
        return empty_table()
    keys = _model_then_reference_last(wide.index)
    data = []
    for model, cond in keys:
        seed = SEED_002_GENDER.get(model) if cond not in REFERENCES else None
        data.append(
            [100 * v for v in wide.loc[(model, cond)]]
            + [seed[0] if seed else np.nan, seed[1] if seed else np.nan]
        )
    columns = pd.MultiIndex.from_tuples(
        [("This run", f"Acc. (%) at {fraction_label(f)}") for f in wide.columns]
        + [
            ("Sarvaš 2021 (AudioMNIST)", "Acc. (%) at 0%"),
            ("Sarvaš 2021 (AudioMNIST)", "Acc. (%) at 0.5%"),
        ]
    )
    index = pd.MultiIndex.from_tuples(
        [(m, condition_label(c) if c != "none" else "relevance") for m, c in keys],
        names=["Model", "Flipped by"],
    )
    return pd.DataFrame(data, index=index, columns=columns)


def lrp_flipping_verdict(metrics: pd.DataFrame | None) -> Verdict:
    """Sarvaš 2021: per model and LRP method, at each flipped fraction (> 0) it shares with
    random flipping, the accuracy lies below random's (accuracy falls faster), judged by the two
    accuracies' intervals."""
    claim = "Sarvaš 2021: flipping the LRP-relevant bins drops accuracy faster than random flipping"
    rows = select_rows(metrics)
    rows = rows[
        rows["list"].isin(["pixel_flipping", "gender"])
        & rows["metric"].astype(str).str.startswith("acc@")
    ]
    if rows.empty:
        return Verdict(claim, "not computed", "no pixel-flipping accuracies in metrics/")
    rows = rows.assign(
        fraction=pd.to_numeric(rows["metric"].str.partition("@")[2], errors="coerce")
    )
    rows = rows[rows["fraction"] > 0]
    checks = []
    for (lst, model), group in rows.groupby(["list", "model"], sort=True):
        conditions = set(group["condition"].astype(str))
        if "random" not in conditions:
            continue
        for cond in sorted(
            c
            for c in conditions
            if c.partition("/")[0] in LRP_METHODS or (lst == "gender" and c != "random")
        ):
            label = method_name(cond) if cond != "none" else "LRP"
            ours = group[group["condition"] == cond]
            rand = group[group["condition"] == "random"]
            for metric in sorted(set(ours["metric"]) & set(rand["metric"])):
                at = fraction_label(float(metric.partition("@")[2]))
                checks.append(
                    between(
                        f"{model} {label} vs random at {at}",
                        interval_of(ours, metric=metric),
                        interval_of(rand, metric=metric),
                        "below",
                        100,
                        "%",
                    )
                )
    return verdict(claim, checks, "needs LRP and random flipping accuracies for one model")


@section("flipping", TITLE, INTRO, order=110)
def flipping(ctx: ReportContext, s: Section) -> None:
    s.verdicts.append(lrp_flipping_verdict(ctx.out.metrics))
    ctx.skips(s, "gender")
    t = pixel_flipping_table(ctx.out.metrics)
    s.blocks.append(
        table_or_missing(t, "no pixel-flipping accuracies in metrics/", "Pixel flipping")
    )
    rows = select_rows(ctx.out.metrics)
    c = rows_as_curves(rows[rows["list"].isin(["pixel_flipping", "gender"])], "acc")
    if not c.empty:
        png = curves_plot(
            panels(c, "Pixel flipping"),
            "Bins flipped (%)",
            "Accuracy (%)",
            x_percent=True,
            y_percent=True,
        )
        s.blocks.append(
            Image(
                png,
                "pixel-flipping curves per method",
                "Bars: each accuracy's 95% interval (speaker bootstrap).",
            )
        )
    g = gender_table(ctx.out.metrics)
    s.blocks.append(
        table_or_missing(
            g,
            "no gender-experiment accuracies in metrics/",
            "Gender classifier (Sarvaš 2021, Table 1)",
        )
    )
