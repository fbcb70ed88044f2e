"""Closed-set speaker identification accuracy (Top-1 / Top-k, as in Li et al. 2022 and Sarvaš 2021).

Ties are resolved in the label's favour and deterministically: an example counts as
correct when fewer than ``k`` classes score *strictly* higher than its true class.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, k: int) -> float:
    """Fraction of examples whose true class is among their ``k`` highest-scoring classes.

    Args:
        scores: ``(N, C)`` logits, posteriors or similarity scores (higher = more likely).
        labels: ``(N,)`` integer class indices in ``[0, C)``.
        k: ``1 <= k <= C``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    if s.ndim != 2 or y.ndim != 1 or s.shape[0] != y.shape[0]:
        raise ValueError(
            f"top-k accuracy needs (N, C) scores and (N,) labels; got {s.shape} and {y.shape}"
        )
    if s.shape[0] == 0:
        raise ValueError("top-k accuracy needs at least one example; got none")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"top-k accuracy: labels must be integer class indices; got {y.dtype}")
    n_classes = s.shape[1]
    outside = np.flatnonzero((y < 0) | (y >= n_classes))
    if outside.size:
        raise ValueError(
            f"top-k accuracy: label {y[outside[0]]} of example {outside[0]} is outside "
            f"[0, {n_classes})"
        )
    if not 1 <= k <= n_classes:
        raise ValueError(f"top-k accuracy: k must lie in [1, {n_classes}]; got {k}")
    nan_rows = np.flatnonzero(np.isnan(s).any(axis=1))
    if nan_rows.size:
        raise ValueError(f"top-k accuracy: scores of example {nan_rows[0]} contain NaN")
    true_scores = s[np.arange(s.shape[0]), y]
    rank = (s > true_scores[:, None]).sum(axis=1)
    return float((rank < k).mean())


def top1_accuracy(scores: ArrayLike, labels: ArrayLike) -> float:
    """Top-1 accuracy of ``(N, C)`` scores against ``(N,)`` class indices."""
    return topk_accuracy(scores, labels, 1)
