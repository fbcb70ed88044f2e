"""The metrics/ rows the report sections select from, and the row labels several share.

metrics/ has columns model, condition, list, scorer, metric, value (EER and rates as
fractions), and beside the value its interval ci_low, ci_high and the count n it is computed
from (absent in the outputs of older versions: their intervals read as NaN). A section's table
is a display frame: row labels in the index, columns labelled with their unit (``EER (%)``
holds percentages), NaN where a value was not computed; an empty frame means "nothing of this
kind in the run".
"""

from __future__ import annotations

import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from voxray.eval.intervals import Interval
from voxray.report.names import (
    ANALYSIS_LISTS,
    REFERENCES,
    method_name,
    method_pathway_name,
    order_lists,
)

EER = "EER (%)"
VERIFICATION_METRIC = re.compile(r"^(eer|trials|mindcf_p.+)$")


def empty_table() -> pd.DataFrame:
    return pd.DataFrame()


def select_rows(metrics: pd.DataFrame | None, **equal: Any) -> pd.DataFrame:
    """The metrics rows whose columns equal the given values (an empty frame for None)."""
    if metrics is None or metrics.empty:
        return pd.DataFrame(columns=["model", "condition", "list", "scorer", "metric", "value"])
    mask = np.ones(len(metrics), dtype=bool)
    for column, value in equal.items():
        mask &= (metrics[column] == value).to_numpy()
    return metrics[mask]


def last_value(metrics: pd.DataFrame, **equal: Any) -> float:
    """The last value of the rows matching ``equal``; NaN when there is none."""
    found = select_rows(metrics, **equal)
    return float(found["value"].iloc[-1]) if len(found) else float("nan")


def interval_of(metrics: pd.DataFrame, **equal: Any) -> Interval:
    """The last matching row's value with its interval (NaN bounds where it has none)."""
    found = select_rows(metrics, **equal)
    if not len(found):
        nan = float("nan")
        return Interval(nan, nan, nan, 0, "")
    row = found.iloc[-1]

    def number(column: str) -> float:
        v = row.get(column)
        return float(v) if v is not None and pd.notna(v) else float("nan")

    n = number("n")
    method = "speaker bootstrap" if np.isfinite(number("ci_low")) else "no interval"
    return Interval(
        float(row["value"]),
        number("ci_low"),
        number("ci_high"),
        int(n) if np.isfinite(n) else 0,
        method,
    )


def interval_text(ci: Interval, scale: float = 1.0) -> str:
    """``[low, high]`` of a table cell beside the value; empty where there is no interval."""
    if not (np.isfinite(ci.ci_low) and np.isfinite(ci.ci_high)):
        return ""
    return f"[{scale * ci.ci_low:.3g}, {scale * ci.ci_high:.3g}]"


def rows_as_curves(rows: pd.DataFrame, prefix: str, variant: str = "list") -> pd.DataFrame:
    """The rows of a curve stored point by point, metric ``<prefix>@<x>`` (pixel-flipping
    accuracies ``acc@0.01``, the mixtures' deletion Top-1 ``deletion@0.1``), as the points
    ``plots.curves_plot`` draws: columns model, method (the condition), variant (the
    ``variant`` column's value), x, y, ci_low, ci_high (NaN where a row has no interval)."""
    columns = ["model", "method", "variant", "x", "y", "ci_low", "ci_high"]
    found = rows[rows["metric"].astype(str).str.startswith(f"{prefix}@")]
    if found.empty:
        return pd.DataFrame(columns=columns)
    x = pd.to_numeric(found["metric"].astype(str).str.partition("@")[2], errors="coerce")

    def column(name: str) -> pd.Series:
        return found[name].astype(float) if name in found else pd.Series(np.nan, found.index)

    out = pd.DataFrame(
        {
            "model": found["model"].astype(str),
            "method": found["condition"].astype(str),
            "variant": found[variant].astype(str),
            "x": x,
            "y": found["value"].astype(float),
            "ci_low": column("ci_low"),
            "ci_high": column("ci_high"),
        }
    )
    return out[out["x"].notna()].reset_index(drop=True)


def verification_rows(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """The rows that are verification results (trial lists, not the analyses' lists)."""
    found = select_rows(metrics)
    keep = found["metric"].astype(str).str.match(VERIFICATION_METRIC) & ~found["list"].isin(
        ANALYSIS_LISTS
    )
    return found[keep]


def trial_lists(metrics: pd.DataFrame | None, preferred: Sequence[str] = ()) -> list[str]:
    return order_lists(verification_rows(metrics)["list"].astype(str), preferred)


def mindcf_name(metric: str) -> str:
    return f"minDCF (p={metric[len('mindcf_p') :]})"


def mindcf_metrics(found: pd.DataFrame) -> list[str]:
    """The minDCF metrics among ``found``'s rows, by target prior."""
    names = {m for m in found["metric"] if str(m).startswith("mindcf_p")}

    def p(name: str) -> float:
        try:
            return float(name[len("mindcf_p") :])
        except ValueError:
            return float("inf")

    return sorted(names, key=lambda n: (p(n), n))


def condition_label(condition: str) -> str:
    """A method's row label, or a reference's (random, time-aligned) marked as such."""
    if condition in REFERENCES:
        return f"{method_name(condition)} (reference)"
    return method_pathway_name(condition)
