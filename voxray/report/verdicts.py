"""The seeds' claims checked against this run's numbers: one computed verdict each.

A verdict is never written by hand: each function reads the metrics (or the frequency
profiles) and says whether the claim holds on this run, with the numbers that decide it.
Claims checked:

- Zhang et al. 2023: the attributions concentrate on F0 and the formants (70-3000 Hz);
- Li et al. 2022: Layer-CAM localises the target speaker best in the multi-speaker test, and the
  CAMs beat random masking in deletion (lower AUC) and insertion (higher AUC);
- Sarvaš 2021: flipping the bins LRP marks relevant drops accuracy faster than random flipping;
- Lehmann & Stadelmann 2020: AHC with average linkage scores trials better (lower EER) than
  Mean-CosSim;
- Zhang et al. 2023: Table 2's EER order, and masking with the attributions beats the shuffled-map
  control.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from voxray.attribution.base import Pathway, methods_with_pathway
from voxray.report.frequency import VOICE_BAND, voice_band_concentration
from voxray.report.names import (
    CAM_METHODS,
    MULTISPEAKER_LIST,
    method_name,
    method_pathway_name,
    order_lists,
)
from voxray.report.tables import CONTROL, EER, verification_rows

LRP_METHODS = methods_with_pathway(Pathway.LRP)
Status = Literal["holds", "does not hold", "partly holds", "not computed"]


@dataclass(frozen=True)
class Verdict:
    """One seed claim and what this run says about it."""

    claim: str
    status: Status
    detail: str


def _overall(passed: int, total: int) -> Status:
    if total == 0:
        return "not computed"
    if passed == total:
        return "holds"
    return "does not hold" if passed == 0 else "partly holds"


def _metric_rows(metrics: pd.DataFrame | None) -> pd.DataFrame:
    if metrics is None:
        return pd.DataFrame(columns=["model", "condition", "list", "scorer", "metric", "value"])
    return metrics


def formant_verdict(profiles: dict[str, np.ndarray], hz: np.ndarray | None) -> Verdict:
    """Zhang et al. 2023: per method, is the mean importance per bin inside 70-3000 Hz above the
    mean outside?"""
    claim = "Zhang et al. 2023: F0 and the formants (70-3000 Hz) carry the most importance"
    if hz is None:
        return Verdict(
            claim, "not computed", "the attributions are not over mel filterbank bins (no Hz axis)"
        )
    found = [
        c for label, p in sorted(profiles.items()) if (c := voice_band_concentration(p, hz, label))
    ]
    if not found:
        return Verdict(claim, "not computed", "no frequency profiles in attributions/")
    passed = [c for c in found if c.ratio > 1.0]
    parts = ", ".join(f"{method_pathway_name(c.label)} {c.ratio:.2f}x" for c in found)
    detail = (
        f"{len(passed)} of {len(found)} methods put more importance per bin inside "
        f"{VOICE_BAND[0]:g}-"
        f"{VOICE_BAND[1]:g} Hz than outside (ratio inside/outside: {parts})"
    )
    return Verdict(claim, _overall(len(passed), len(found)), detail)


def layer_cam_verdict(metrics: pd.DataFrame | None) -> Verdict:
    """Li et al. 2022: in each multi-speaker case, is Layer-CAM's best Top-1 (over layer settings)
    the highest?"""
    claim = "Li et al. 2022: Layer-CAM localises the target speaker best in the multi-speaker test"
    rows = _metric_rows(metrics)
    rows = rows[(rows["list"] == MULTISPEAKER_LIST) & (rows["metric"] == "top1")]
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
        _overall(len(passed), len(cases)),
        f"best in {len(passed)} of {len(cases)} cases ({parts})",
    )


def cam_random_verdict(metrics: pd.DataFrame | None) -> Verdict:
    """Li et al. 2022: per CAM and scorer, deletion AUC below random's and insertion AUC above
    random's."""
    claim = "Li et al. 2022: the CAMs beat random masking in deletion and insertion"
    rows = _metric_rows(metrics)
    rows = rows[rows["list"] == "faithfulness"]
    if rows.empty:
        return Verdict(claim, "not computed", "no faithfulness AUCs in metrics/")
    wide = rows.pivot_table(
        index=["scorer", "condition"], columns="metric", values="value", aggfunc="last"
    )
    wide = wide.reindex(columns=["deletion_auc", "insertion_auc"])
    checks, passed, parts = 0, 0, []

    def auc_pair(row: pd.Series) -> str:
        return "/".join("n/a" if np.isnan(v) else f"{v:.3f}" for v in row)

    for scorer in sorted({s for s, _ in wide.index}):
        if (scorer, "random") not in wide.index:
            continue
        ref = wide.loc[(scorer, "random")]
        cams = sorted(
            c for s, c in wide.index if s == scorer and c.partition("/")[0] in CAM_METHODS
        )
        for cond in cams:
            row = wide.loc[(scorer, cond)]
            for metric, better in (("deletion_auc", np.less), ("insertion_auc", np.greater)):
                if not (np.isnan(row[metric]) or np.isnan(ref[metric])):
                    checks += 1
                    passed += bool(better(row[metric], ref[metric]))
        if cams:
            parts.append(
                f"{scorer}: random {auc_pair(ref)}, "
                + ", ".join(
                    f"{method_pathway_name(c)} {auc_pair(wide.loc[(scorer, c)])}" for c in cams
                )
            )
    if checks == 0:
        return Verdict(
            claim, "not computed", "needs CAM and random deletion/insertion AUCs for one scorer"
        )
    return Verdict(
        claim,
        _overall(passed, checks),
        f"{passed} of {checks} comparisons favour the CAM "
        "(deletion/insertion AUC; deletion lower and insertion higher is better): "
        + "; ".join(parts),
    )


def lrp_flipping_verdict(metrics: pd.DataFrame | None) -> Verdict:
    """Sarvaš 2021: per model and LRP method, mean accuracy over the flipped fractions (> 0) that it
    shares with random flipping is lower than random's (accuracy falls faster)."""
    claim = "Sarvaš 2021: flipping the LRP-relevant bins drops accuracy faster than random flipping"
    rows = _metric_rows(metrics)
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
    checks, passed, parts = 0, 0, []
    for (lst, model), group in rows.groupby(["list", "model"], sort=True):
        curves = {c: g.groupby("fraction")["value"].last() for c, g in group.groupby("condition")}
        if "random" not in curves:
            continue
        for cond in sorted(
            c
            for c in curves
            if c.partition("/")[0] in LRP_METHODS or (lst == "gender" and c != "random")
        ):
            common = curves[cond].index.intersection(curves["random"].index)
            if common.empty:
                continue
            ours, rand = float(curves[cond][common].mean()), float(curves["random"][common].mean())
            checks += 1
            passed += ours < rand
            label = method_name(cond) if cond != "none" else "LRP"
            parts.append(f"{model} {label} {100 * ours:.2f}% vs random {100 * rand:.2f}%")
    if checks == 0:
        return Verdict(
            claim, "not computed", "needs LRP and random flipping accuracies for one model"
        )
    return Verdict(
        claim,
        _overall(passed, checks),
        f"mean accuracy over the flipped fractions, {passed} of {checks} below random: "
        + "; ".join(parts),
    )


def ahc_verdict(
    metrics: pd.DataFrame | None, base: str, preferred_lists: Sequence[str] = ()
) -> Verdict:
    """Lehmann & Stadelmann 2020: per trial list, is the EER of AHC-average below Mean-CosSim's
    (base model, clean data)?"""
    claim = "Lehmann & Stadelmann 2020: AHC with average linkage beats Mean-CosSim"
    rows = verification_rows(metrics)
    rows = rows[(rows["model"] == base) & (rows["condition"] == "none") & (rows["metric"] == "eer")]
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
        _overall(passed, len(pairs)),
        f"lower EER on {passed} of {len(pairs)} trial lists (AHC-Average vs Mean-CosSim EER: "
        f"{parts})",
    )


#: Zhang et al. 2023 Table 2's rows in its EER order (None <= IG <= IG + mask(0.1) <= GradientShap),
#: as reliability_table labels them; the mask row is checked under each threshold reading.
TABLE2_ORDER = (
    "None (clean)",
    "Integrated Gradients",
    "Integrated Gradients + mask(0.1, {})",
    "GradientShap",
)


def reliability_verdict(table: pd.DataFrame) -> Verdict:
    """Zhang et al. 2023 Table 2 from ``tables.reliability_table``'s frame: is the retrained model's
    masked-test EER ordered None <= IG <= IG + mask(0.1) <= GradientShap (checked for each
    threshold reading in the table, which names the reading that reproduces it), and is each
    condition with a shuffled-map control well below it (under 90% of the control's EER)?"""
    claim = (
        "Zhang et al. 2023: masking with the attributions keeps the speaker (retrained EER None <= "
        "IG <= "
        "IG + mask(0.1) <= GradientShap, each well below its shuffled-map control)"
    )
    column = ("Retrained, masked test", EER)
    if table.empty or column not in table.columns:
        return Verdict(claim, "not computed", "no retrained masked-data EERs in metrics/")
    checks: list[bool] = []
    parts: list[str] = []
    for reading in ("signed", "magnitude"):
        rows = [r.format(reading) for r in TABLE2_ORDER]
        present = [r for r in rows if r in table.index and not np.isnan(table.loc[r, column])]
        if rows[2] not in present or len(present) < 2:
            continue
        eers = [float(table.loc[r, column]) for r in present]
        ordered = all(a <= b for a, b in zip(eers, eers[1:], strict=False))
        checks.append(ordered)
        # each pair with the relation it has, so an unordered pair shows where it breaks
        order = f"{eers[0]:.2f}%" + "".join(
            f" {'<=' if a <= b else '>'} {b:.2f}%" for a, b in zip(eers, eers[1:], strict=False)
        )
        parts.append(f"{reading} reading: {order} ({'ordered' if ordered else 'not ordered'})")
    control = (CONTROL, f"Retrained, masked test {EER}")
    for row in table.index:
        ctl = table.loc[row, control] if control in table.columns else float("nan")
        own = table.loc[row, column]
        if np.isnan(ctl) or np.isnan(own):
            continue
        checks.append(own < 0.9 * ctl)
        parts.append(f"{row} {own:.2f}% vs shuffled maps {ctl:.2f}%")
    if not checks:
        return Verdict(claim, "not computed", "needs Table 2's rows or a shuffled-map control")
    passed = sum(checks)
    return Verdict(
        claim,
        _overall(passed, len(checks)),
        f"{passed} of {len(checks)} checks: " + "; ".join(parts),
    )
