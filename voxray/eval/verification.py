"""Speaker-verification metrics: EER, normalised minDCF and the DET curve (numpy only).

A trial is accepted when ``score >= threshold``. Every metric is computed from the same
operating points: trials sorted by descending score, one point per *distinct* score (a run of
equal scores is accepted or rejected together), plus the point that accepts nothing. This is
the definition the external checker recomputes EERs with, so it must not drift.
Rates are fractions, not percent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: float64 scores and rates; boolean target flags.
Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]


def _check_trials(scores: ArrayLike, labels: ArrayLike, what: str) -> tuple[Floats, Bools]:
    """Validate one trial list; returns ``(scores float64 (N,), labels bool (N,))``."""
    s = np.asarray(scores, dtype=np.float64)
    y_raw = np.asarray(labels)
    if s.ndim != 1 or y_raw.ndim != 1:
        raise ValueError(
            f"{what} needs 1-D scores and labels; got shapes {s.shape} and {y_raw.shape}"
        )
    if s.size != y_raw.size:
        raise ValueError(f"{what}: {s.size} scores but {y_raw.size} labels (lengths must match)")
    if s.size == 0:
        raise ValueError(f"{what} needs at least one target and one non-target trial; got none")
    bad = np.flatnonzero(~np.isfinite(s))
    if bad.size:
        raise ValueError(
            f"{what}: {bad.size} scores are NaN or infinite (first at trial index {bad[0]})"
        )
    if y_raw.dtype != np.bool_:
        invalid = np.flatnonzero((y_raw != 0) & (y_raw != 1))
        if invalid.size:
            raise ValueError(
                f"{what}: labels must be 0 (non-target) or 1 (target); trial index {invalid[0]} "
                f"has label {y_raw[invalid[0]].item()!r}"
            )
    y = y_raw.astype(bool)
    n_tar = int(y.sum())
    n_non = y.size - n_tar
    if n_tar == 0 or n_non == 0:
        raise ValueError(
            f"{what} needs both target (1) and non-target (0) trials; "
            f"got {n_tar} targets and {n_non} non-targets"
        )
    return s, y


def _operating_points(s: Floats, y: Bools) -> tuple[Floats, Floats, Floats]:
    """Miss and false-alarm rates at every distinct threshold, strictest first.

    Returns ``(fnr (P,), fpr (P,), thresholds (P,))`` with ``P = distinct scores + 1``;
    point 0 accepts nothing (threshold +inf, fnr 1, fpr 0), the last accepts everything.
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    # The last index of each run of equal scores: ties are accepted together.
    run_end = np.r_[np.diff(s_sorted) != 0, True]
    hits = np.r_[0, np.cumsum(y_sorted)[run_end]]
    false_alarms = np.r_[0, np.cumsum(~y_sorted)[run_end]]
    fnr = 1.0 - hits / hits[-1]
    fpr = false_alarms / false_alarms[-1]
    thresholds = np.r_[np.inf, s_sorted[run_end]]
    return fnr, fpr, thresholds


def _eer_crossing(fnr: Floats, fpr: Floats) -> tuple[int, float]:
    """Index ``k`` of the first point with ``fnr <= fpr`` and the interpolation weight ``t``.

    Point 0 always has ``fnr - fpr = 1`` and the last ``-1``, so ``1 <= k <= P - 1``; the
    crossing lies at fraction ``t`` of the segment from point ``k - 1`` to point ``k``.
    """
    gap = fnr - fpr
    k = int(np.argmax(gap <= 0))
    t = gap[k - 1] / (gap[k - 1] - gap[k])
    return k, float(t)


def det_curve(scores: ArrayLike, labels: ArrayLike) -> tuple[Floats, Floats, Floats]:
    """DET curve over every distinct threshold.

    Args:
        scores: ``(N,)`` trial scores, higher = more likely the same speaker.
        labels: ``(N,)`` 1 for target (same speaker), 0 for non-target trials.

    Returns:
        ``(fpr, fnr, thresholds)``, each ``(P,)`` with strictest threshold first;
        ``thresholds[0] = +inf`` (accept nothing), ``thresholds[i]`` accepts ``score >= it``.
    """
    fnr, fpr, thresholds = _operating_points(*_check_trials(scores, labels, "DET curve"))
    return fpr, fnr, thresholds


def compute_eer(scores: ArrayLike, labels: ArrayLike) -> float:
    """Equal error rate as a fraction: where the miss and false-alarm curves cross.

    The rates are linearly interpolated between the two operating points around the
    crossing, so the value lies between their rates.

    Args:
        scores: ``(N,)`` trial scores, higher = more likely the same speaker.
        labels: ``(N,)`` 1 for target, 0 for non-target trials.
    """
    fnr, fpr, _ = _operating_points(*_check_trials(scores, labels, "EER"))
    k, t = _eer_crossing(fnr, fpr)
    return float(fnr[k - 1] + t * (fnr[k] - fnr[k - 1]))


def eer_threshold(scores: ArrayLike, labels: ArrayLike) -> float:
    """The score threshold of the first operating point (strictest first) where FNR <= FPR.

    Accepting ``score >= eer_threshold`` gives a miss rate at most the EER's and a
    false-alarm rate at least the EER's; the next stricter threshold misses more than it
    falsely accepts.
    """
    fnr, fpr, thresholds = _operating_points(*_check_trials(scores, labels, "EER threshold"))
    k, _ = _eer_crossing(fnr, fpr)
    return float(thresholds[k])


def compute_min_dcf(
    scores: ArrayLike,
    labels: ArrayLike,
    p_target: float,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> float:
    """Normalised minimum detection cost (NIST SRE C_det, as reported in Tai et al. 2020).

    ``min over thresholds of (c_miss * P_miss * p_target + c_fa * P_fa * (1 - p_target))``
    divided by ``min(c_miss * p_target, c_fa * (1 - p_target))``, the cost of the better
    trivial system (accept all or reject all), so 1.0 means "no better than trivial".
    """
    if not 0.0 < p_target < 1.0:
        raise ValueError(f"minDCF: p_target must lie strictly between 0 and 1; got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"minDCF: costs must be positive; got c_miss={c_miss}, c_fa={c_fa}")
    fnr, fpr, _ = _operating_points(*_check_trials(scores, labels, "minDCF"))
    cost = c_miss * p_target * fnr + c_fa * (1.0 - p_target) * fpr
    return float(cost.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def verification_metrics(
    scores: ArrayLike, labels: ArrayLike, p_targets: Sequence[float]
) -> dict[str, float]:
    """EER and one minDCF per target prior, keyed by the metrics/ table's metric names.

    Returns ``{"eer": ..., "mindcf_p0.01": ..., ...}`` (``f"mindcf_p{p:g}"``).
    """
    metrics = {"eer": compute_eer(scores, labels)}
    for p in p_targets:
        metrics[f"mindcf_p{p:g}"] = compute_min_dcf(scores, labels, p)
    return metrics
