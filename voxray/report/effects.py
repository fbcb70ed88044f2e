"""Paired effects between two systems scored on one trial list, with their interval: what the
verification verdicts are judged by (voxray.report.verdicts).

Two systems' EERs on the same trials are resampled together (one speaker draw for both), so
the speakers' shared difficulty cancels and a 0.7-point effect can be told from noise where
two separate intervals would overlap. A system retrained with several seeds is pooled over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pandas as pd

from voxray.config.evaluation import IntervalConfig
from voxray.eval.intervals import Interval, seed_pooled_interval, verification_interval
from voxray.report.load import speakers as speakers_of

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
    return pooled_eer_effect(scores, manifest, [one], [other], list_name, intervals, effect)


def pooled_eer_effect(
    scores: pd.DataFrame | None,
    manifest: pd.DataFrame | None,
    ones: Sequence[System],
    others: Sequence[System],
    list_name: str,
    intervals: IntervalConfig,
    effect: Literal["ratio", "difference"] = "ratio",
) -> Interval | None:
    """``paired_eer_effect`` where each side is one or several systems (a retraining's seeds):
    the seeds' mean EER of ``ones`` against that of ``others`` on the trials all of them
    scored, bootstrapped over speakers and seeds (``seed_pooled_interval``) when a side has
    more than one; None as ``paired_eer_effect``."""
    if scores is None or scores.empty or not ones or not others:
        return None
    systems = [*ones, *others]
    joined = _system_scores(scores, systems[0], list_name).rename(columns={"score": "s0"})
    for k, system in enumerate(systems[1:], start=1):
        frame = _system_scores(scores, system, list_name).rename(columns={"score": f"s{k}"})
        joined = joined.merge(frame, on=["utt_a", "utt_b", "label"])
    if joined.empty or joined["label"].nunique() < 2:
        return None
    enrol = joined["utt_a"].astype(str)
    speaker_of = speakers_of(manifest)
    enrol = enrol.map(lambda u: speaker_of.get(u, u))
    columns = [joined[f"s{k}"].to_numpy() for k in range(len(systems))]
    one, other = columns[: len(ones)], columns[len(ones) :]
    options = {
        "effect": effect,
        "confidence": intervals.confidence,
        "n_resamples": intervals.resamples,
        "seed": intervals.seed,
    }
    labels, speakers = joined["label"].to_numpy(), enrol.to_numpy()
    if len(one) == len(other) == 1:
        return verification_interval(one[0], labels, speakers, "eer", versus=other[0], **options)
    return seed_pooled_interval(one, labels, speakers, other, "eer", **options)
