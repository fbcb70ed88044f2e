"""Paired effects between two systems scored on one trial list, with their interval: what the
verification verdicts are judged by (voxray.report.verdicts).

Two systems' EERs on the same trials are resampled together (one speaker draw for both), so
the speakers' shared difficulty cancels and a 0.7-point effect can be told from noise where
two separate intervals would overlap.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from voxray.config.evaluation import IntervalConfig
from voxray.eval.intervals import Interval, verification_interval

#: (model, condition, scorer) of one scored system.
System = tuple[str, str, str]


def _system_scores(scores: pd.DataFrame, system: System, list_name: str) -> pd.DataFrame:
    model, condition, scorer = system
    keep = (
        (scores["model"] == model)
        & (scores["condition"] == condition)
        & (scores["list"] == list_name)
        & (scores["scorer"] == scorer)
    )
    return scores.loc[keep, ["utt_a", "utt_b", "label", "score"]].drop_duplicates(
        ["utt_a", "utt_b"]
    )


def paired_eer_effect(
    scores: pd.DataFrame | None,
    manifest: pd.DataFrame | None,
    one: System,
    other: System,
    list_name: str,
    intervals: IntervalConfig,
    effect: Literal["ratio", "difference"] = "ratio",
) -> Interval | None:
    """EER(one) / EER(other) (or the difference) on the trials both scored, resampled by
    enrolment speaker; None where scores/ lacks either system or the common trials hold one
    class only."""
    if scores is None or scores.empty:
        return None
    joined = _system_scores(scores, one, list_name).merge(
        _system_scores(scores, other, list_name),
        on=["utt_a", "utt_b", "label"],
        suffixes=("_one", "_other"),
    )
    if joined.empty or joined["label"].nunique() < 2:
        return None
    enrol = joined["utt_a"].astype(str)
    if manifest is not None and {"utt_id", "speaker_id"} <= set(manifest.columns):
        speaker_of = dict(zip(manifest["utt_id"], manifest["speaker_id"], strict=True))
        enrol = enrol.map(lambda u: speaker_of.get(u, u))
    return verification_interval(
        joined["score_one"].to_numpy(),
        joined["label"].to_numpy(),
        enrol.to_numpy(),
        "eer",
        versus=joined["score_other"].to_numpy(),
        effect=effect,
        confidence=intervals.confidence,
        n_resamples=intervals.resamples,
        seed=intervals.seed,
    )
