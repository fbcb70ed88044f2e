"""The hyper-parameter sweep (Ray Tune): the best trials with their sampled configuration, EER
against the kept fraction of bins per method, and the best configuration as an overlay."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from voxray.report.html import Image, Note, Preformatted, Section
from voxray.report.metrics import EER, empty_table
from voxray.report.names import method_name
from voxray.report.plots import WIDTH_IN, figure, legend, styled, to_png
from voxray.report.sections.base import ReportContext, section, table_or_missing

TITLE = "Hyper-parameter sweep (Ray Tune)"
#: what the reader is looking at (formatted with the run's config as ``cfg``).
INTRO = (
    "The ten best trials by the objective ({cfg.tune.objective}; lower is better) with their "
    "sampled mask threshold, method, pathway, LRP and CAM settings, and the best configuration "
    "as a config overlay. eer_gap and deletion_gap subtract the score of a random mask keeping "
    "as many bins, so a configuration cannot win by masking less."
)


def _trial_config(group: pd.DataFrame) -> dict[str, Any]:
    """A trial's sampled configuration (its rows' JSON config; empty when unreadable)."""
    try:
        return json.loads(group["config"].iloc[0])
    except (TypeError, ValueError):
        return {}


def tune_table(results: pd.DataFrame | None, top: int = 10, mode: str = "min") -> pd.DataFrame:
    """The ``top`` trials of the sweep by objective (``mode`` min or max), then every trial that
    failed (its status the error), with their sampled configuration as columns. The objective is
    the metric other than epoch/error."""
    if results is None or results.empty:
        return empty_table()
    objective = [m for m in dict.fromkeys(results["metric"]) if m not in ("epoch", "error")]
    if not objective:
        return empty_table()
    metric = objective[0]
    trials = []
    for trial_id, group in results.groupby("trial_id", sort=True):
        obj = group.loc[group["metric"] == metric, "value"]
        epochs = group.loc[group["metric"] == "epoch", "value"]
        config = _trial_config(group)
        trials.append(
            {
                "Trial": trial_id,
                metric: float(obj.iloc[-1]) if len(obj) else np.nan,
                "Epochs": float(epochs.iloc[-1]) if len(epochs) else np.nan,
                "Status": str(group["status"].iloc[-1]),
                **{
                    k: v if isinstance(v, (int, float, str)) else json.dumps(v)
                    for k, v in config.items()
                },
            }
        )
    out = pd.DataFrame(trials)
    failed = out["Status"].str.startswith("error")
    best = out[~failed].sort_values(metric, ascending=(mode == "min"), na_position="last")
    out = pd.concat([best.head(top), out[failed]])
    if metric == "eer":
        out = out.rename(columns={"eer": EER}).assign(**{EER: lambda d: 100 * d[EER]})
    return out.set_index("Trial")


def sweep_points(results: pd.DataFrame | None) -> pd.DataFrame:
    """One row per Tune trial that reported a kept fraction: method, tau, kept_fraction, eer,
    eer_random (the last reported value of each; fractions), for the sweep plot."""
    if results is None or results.empty or "kept_fraction" not in set(results["metric"]):
        return empty_table()
    rows = []
    for trial_id, group in results.groupby("trial_id", sort=True):
        last = group.groupby("metric")["value"].last()
        config = _trial_config(group)
        if "kept_fraction" not in last or "eer" not in last:
            continue
        rows.append(
            {
                "trial_id": trial_id,
                "method": str(config.get("method", "")),
                "tau": config.get("tau", np.nan),
                "kept_fraction": float(last["kept_fraction"]),
                "eer": float(last["eer"]),
                "eer_random": float(last.get("eer_random", np.nan)),
            }
        )
    return pd.DataFrame(rows) if rows else empty_table()


@styled
def sweep_plot(points: pd.DataFrame) -> bytes:
    """The Tune sweep: frozen-model EER (%) against the kept fraction of bins (%), one colour
    per method; filled markers for the method's own masks, hollow ones for its random
    reference (the same maps permuted over the bins, so the same kept fraction). Columns:
    method, kept_fraction, eer, eer_random (fractions)."""
    fig, axes = figure(1, 1, height_in=3.4, width_in=WIDTH_IN * 0.7)
    ax = axes[0, 0]
    for i, (method, g) in enumerate(sorted(points.groupby("method"), key=lambda kv: kv[0])):
        g = g.sort_values("kept_fraction")
        colour = f"C{i % 10}"
        kept = 100 * g["kept_fraction"]
        ax.plot(kept, 100 * g["eer"], "o-", color=colour, label=method_name(method))
        if "eer_random" in g and g["eer_random"].notna().any():
            ax.plot(kept, 100 * g["eer_random"], "o--", color=colour, mfc="none", alpha=0.7)
    ax.plot([], [], "o--", color="0.45", mfc="none", label="random mask, same kept fraction")
    ax.set_xlabel("Bins kept by the mask (%)")
    ax.set_ylabel("EER of the frozen model (%)")
    legend(ax, outside=True)
    return to_png(fig)


@section("tune", TITLE, INTRO, order=160)
def tune(ctx: ReportContext, s: Section) -> None:
    t = tune_table(ctx.out.tune_results, top=10)
    s.blocks.append(table_or_missing(t, "no tune/results.parquet"))
    failed = int(t["Status"].str.startswith("error").sum()) if "Status" in t else 0
    if failed:
        s.blocks.append(
            Note(
                f"{failed} trial(s) failed after tune.max_failures retries: listed last, each "
                "with its error (the stage marker counts them as quarantined).",
                "missing",
            )
        )
    points = sweep_points(ctx.out.tune_results)
    if not points.empty:
        s.blocks.append(
            Image(
                sweep_plot(points),
                "EER against kept fraction per method",
                "Each trial's frozen-model EER on its masked test subset against the share of "
                "bins its mask keeps; hollow markers: the same maps permuted over the bins. "
                "A method whose own masks sit below its random ones keeps the speaker in fewer "
                "bins than chance.",
            )
        )
    if ctx.out.tune_best:
        s.blocks.append(Preformatted(ctx.out.tune_best, "tune/best.yaml"))
