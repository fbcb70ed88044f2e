"""EER recomputed from the scores/ rows with scikit-learn's ROC, to hold metrics/ to it."""

from __future__ import annotations

import pandas as pd

from voxray.check import sklearn_eer


def eer_from_scores(
    scores: pd.DataFrame, list_name: str, model: str, condition: str, scorer: str
) -> float:
    """The EER of one (list, model, condition, scorer) group of scores/ rows, by
    ``sklearn.metrics.roc_curve``; raises when the group is missing or has one class only."""
    g = scores[
        (scores["list"] == list_name)
        & (scores["model"] == model)
        & (scores["condition"] == condition)
        & (scores["scorer"] == scorer)
    ]
    labels = g["label"].to_numpy(int)
    if len(set(labels)) < 2:
        raise AssertionError(
            f"scores/ has no target and non-target trials for {list_name}/{model}/{condition}/"
            f"{scorer} ({len(g)} rows)"
        )
    return sklearn_eer(g["score"].to_numpy(float), labels)


def mismatched_eers(
    scores: pd.DataFrame, metrics: pd.DataFrame, tol: float = 1e-6
) -> tuple[int, list[str]]:
    """(how many metrics/ EER rows were recomputed, those that differ from scikit-learn's by
    more than ``tol``); rows without scores/ rows behind them (clustering scorers that score
    sets, the analyses' lists) are not counted."""
    eers = metrics[metrics["metric"] == "eer"]
    scored = set(
        zip(scores["list"], scores["model"], scores["condition"], scores["scorer"], strict=True)
    )
    checked, wrong = 0, []
    for row in eers.itertuples(index=False):
        key = (row.list, row.model, row.condition, row.scorer)
        if key not in scored:
            continue
        checked += 1
        mine = eer_from_scores(scores, *key)
        if abs(mine - row.value) > tol:
            wrong.append(f"{'/'.join(key)}: metrics/ {row.value:.6f}, scikit-learn {mine:.6f}")
    return checked, wrong
