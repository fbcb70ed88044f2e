"""95% intervals for every reported figure: a two-stage bootstrap by speaker.

Trials and utterances of one speaker are not independent (one voice, one channel, one
enrolment), so resampling rows alone understates the spread. Each bootstrap replicate
draws speakers with replacement, then, within each drawn speaker, that speaker's rows
with replacement (the "subsets bootstrap" of Bolle, Ratha & Pankanti, 2004, used for
verification error rates), recomputes the statistic on the drawn rows, and the interval
is the percentile range of the replicates (as ``scipy.stats.bootstrap(method="percentile")``).

A verification trial belongs to its *enrolment* speaker: every trial has exactly one, so
the speakers partition the trial list and both stages of the resampling are well defined.
(Keeping only the trials whose two sides were both drawn would make a replicate's trial
count, and its target/non-target balance, vary with the draw, and leaves few non-target
trials on small demo lists.) The test side's dependence is ignored, so the interval may be
slightly narrow where many non-target trials share one test speaker.

A paired effect (condition A against condition B on the same trial list) is one statistic
of the row indices that computes both metrics on the same draw, so the speakers' shared
difficulty cancels; see :func:`verification_interval`'s ``versus``. Where each system was
trained several times (seeds), :func:`seed_pooled_interval` resamples the seeds as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from voxray.eval.verification import compute_eer, compute_min_dcf

#: A statistic of the rows at the given (repeated) indices, ``(R,) int -> float``.
Statistic = Callable[[NDArray[np.intp]], float]

METHOD = "speaker bootstrap"


@dataclass(frozen=True)
class Interval:
    """A figure with its interval: ``value`` on all rows, ``[ci_low, ci_high]`` at the level.

    ``n`` counts the rows (trials or utterances) the value is computed from; ``method``
    says how the interval was made (resamples, speakers, level), for the report.
    """

    value: float
    ci_low: float
    ci_high: float
    n: int
    method: str

    def excludes(self, threshold: float) -> int:
        """+1 when the whole interval lies above ``threshold``, -1 below, 0 when it straddles."""
        if self.ci_low > threshold:
            return 1
        if self.ci_high < threshold:
            return -1
        return 0


def _speaker_rows(speakers: ArrayLike) -> tuple[NDArray[np.intp], NDArray[np.intp], int]:
    """Row order grouped by speaker, each speaker's first position in it, and row counts.

    Returns ``(order (N,), starts (S,), counts (S,))``: speaker ``k``'s rows are
    ``order[starts[k]:starts[k] + counts[k]]``.
    """
    codes = np.unique(np.asarray(speakers), return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    return order, starts, counts


def bootstrap_indices(
    speakers: ArrayLike, n_resamples: int, rng: np.random.Generator
) -> list[NDArray[np.intp]]:
    """``n_resamples`` two-stage draws of row indices: speakers, then each one's rows.

    Every draw has as many speakers as the data, so its row count varies with the speakers
    drawn, as the number of trials would in a new sample of speakers.
    """
    order, starts, counts = _speaker_rows(speakers)
    draws = []
    for _ in range(n_resamples):
        picked = rng.integers(0, counts.size, counts.size)
        sizes = counts[picked]
        first = np.repeat(starts[picked], sizes)
        within = np.floor(rng.random(sizes.sum()) * np.repeat(sizes, sizes)).astype(np.intp)
        draws.append(order[first + within])
    return draws


#: why a figure of one speaker's rows has no interval: a verdict on it is inconclusive.
ONE_SPEAKER = "one speaker, no interval over speakers"


def speaker_bootstrap(
    statistic: Statistic,
    speakers: ArrayLike,
    *,
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
    resampled: Statistic | None = None,
) -> Interval:
    """The statistic on all rows with its percentile interval over speaker-level resamples.

    Args:
        statistic: the figure computed from row indices (e.g. an EER of those trials); it
            may return NaN (or raise ``ValueError``) on a draw where it is undefined, such
            as a trial list without targets; such draws are dropped.
        speakers: ``(N,)`` the speaker each row belongs to.
        confidence: the interval's level, in (0, 1).
        n_resamples: bootstrap replicates.
        seed: the generator's seed; the same seed gives the same interval.
        resampled: the statistic of each resample where it is not ``statistic`` (one that
            also draws something besides the rows, e.g. seeds); ``statistic`` gives the value.

    With one speaker the bounds are NaN (``ONE_SPEAKER``): its rows resampled would give an
    interval for that speaker alone, and a verdict on it would pass for one over speakers.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"interval confidence must lie in (0, 1); got {confidence}")
    if n_resamples < 2:
        raise ValueError(f"interval n_resamples must be at least 2; got {n_resamples}")
    spk = np.asarray(speakers)
    if spk.ndim != 1 or spk.size == 0:
        raise ValueError(f"speaker bootstrap needs a non-empty 1-D speaker column; got {spk.shape}")
    value = float(statistic(np.arange(spk.size)))
    n_spk = np.unique(spk).size
    if n_spk < 2:  # resampling one speaker's rows says nothing of other speakers
        return Interval(value, math.nan, math.nan, int(spk.size), f"{METHOD}: {ONE_SPEAKER}")
    replicates = np.array(
        [
            _safe(resampled or statistic, idx)
            for idx in bootstrap_indices(spk, n_resamples, np.random.default_rng(seed))
        ]
    )
    kept = replicates[np.isfinite(replicates)]
    if kept.size < n_resamples // 2:
        raise ValueError(
            f"speaker bootstrap: the statistic is undefined on {n_resamples - kept.size} of "
            f"{n_resamples} resamples; too few rows or speakers for an interval"
        )
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(kept, [alpha, 1.0 - alpha])
    method = f"{METHOD}, {confidence:.0%} percentile, {kept.size} resamples of {n_spk} speakers"
    return Interval(value, float(low), float(high), int(spk.size), method)


def _safe(statistic: Statistic, idx: NDArray[np.intp]) -> float:
    """The statistic on one draw, NaN where it is undefined there (one class of trials)."""
    try:
        return float(statistic(idx))
    except ValueError:
        return float("nan")


def mean_interval(values: ArrayLike, speakers: ArrayLike, **kwargs: Any) -> Interval:
    """The mean of per-row values (Top-1 hits, per-utterance AUCs, metric scores) by speaker."""
    v = np.asarray(values, dtype=np.float64)
    return speaker_bootstrap(lambda idx: float(v[idx].mean()), speakers, **kwargs)


def verification_interval(
    scores: ArrayLike,
    labels: ArrayLike,
    enrol_speakers: ArrayLike,
    metric: str = "eer",
    *,
    versus: ArrayLike | None = None,
    effect: str = "ratio",
    **kwargs: Any,
) -> Interval:
    """EER or minDCF of a trial list, resampled by enrolment speaker.

    Args:
        scores, labels: ``(N,)`` trial scores and 1/0 target flags.
        enrol_speakers: ``(N,)`` each trial's enrolment speaker (the module docstring says why).
        metric: ``"eer"`` or ``"mindcf_p<prior>"`` (the metrics/ table's names).
        versus: ``(N,)`` a second system's scores on the same trials; the interval is then
            of the paired effect: ``metric(scores) / metric(versus)`` (``effect="ratio"``)
            or ``metric(scores) - metric(versus)`` (``effect="difference"``).
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels)
    measure = _verification_metric(metric)
    if versus is None:
        return speaker_bootstrap(lambda idx: measure(s[idx], y[idx]), enrol_speakers, **kwargs)
    if effect not in ("ratio", "difference"):
        raise ValueError(f"verification effect must be 'ratio' or 'difference'; got {effect!r}")
    b = np.asarray(versus, dtype=np.float64)
    if b.shape != s.shape:
        raise ValueError(f"paired effect needs scores on the same trials; got {s.shape}, {b.shape}")

    def paired(idx: NDArray[np.intp]) -> float:
        return _effect(measure(s[idx], y[idx]), measure(b[idx], y[idx]), effect)

    return speaker_bootstrap(paired, enrol_speakers, **kwargs)


def _effect(one: float, other: float, effect: str) -> float:
    if effect == "difference":
        return one - other
    return one / other if other > 0 else float("nan")


def seed_pooled_interval(
    scores: ArrayLike,
    labels: ArrayLike,
    enrol_speakers: ArrayLike,
    versus: ArrayLike,
    metric: str = "eer",
    *,
    effect: str = "ratio",
    seed: int = 0,
    **kwargs: Any,
) -> Interval:
    """The paired effect of two systems each trained several times (seeds) on one trial list,
    pooled over the seeds by a bootstrap over speakers AND seeds (not per-seed intervals
    combined): the effect is the seeds' mean ``metric`` of one system against the other's
    (ratio or difference); each replicate draws the speakers (two stages, as
    :func:`speaker_bootstrap`) and, independently, each system's seeds with replacement. So the
    interval holds the seed-to-seed spread too: seeds that agree narrow it (their mean is less
    noisy than one seed), seeds on both sides of a bound make it straddle the bound.

    Args:
        scores, versus: ``(K, N)`` / ``(L, N)`` the K (L) seeds' scores of the same N trials.
        labels, enrol_speakers: ``(N,)`` as in :func:`verification_interval`.
    """
    s, b = (
        np.atleast_2d(np.asarray(scores, np.float64)),
        np.atleast_2d(np.asarray(versus, np.float64)),
    )
    if s.shape[1] != b.shape[1]:
        raise ValueError(f"pooled effect needs scores on the same trials; got {s.shape}, {b.shape}")
    y, measure = np.asarray(labels), _verification_metric(metric)
    if effect not in ("ratio", "difference"):
        raise ValueError(f"verification effect must be 'ratio' or 'difference'; got {effect!r}")

    def pooled(idx: NDArray[np.intp], ones: NDArray[np.intp], others: NDArray[np.intp]) -> float:
        one = np.mean([measure(s[k, idx], y[idx]) for k in ones])
        other = np.mean([measure(b[k, idx], y[idx]) for k in others])
        return _effect(float(one), float(other), effect)

    draws = np.random.default_rng([seed, 1])
    k, m = len(s), len(b)
    interval = speaker_bootstrap(
        lambda idx: pooled(idx, np.arange(k), np.arange(m)),
        enrol_speakers,
        seed=seed,
        resampled=lambda idx: pooled(idx, draws.integers(0, k, k), draws.integers(0, m, m)),
        **kwargs,
    )
    return replace(interval, method=f"{interval.method} and of {k} vs {m} seeds")


def _verification_metric(metric: str) -> Callable[[NDArray[np.float64], ArrayLike], float]:
    """The metrics/ table's verification metric name as a function of (scores, labels)."""
    if metric == "eer":
        return compute_eer
    if metric.startswith("mindcf_p"):
        prior = float(metric.removeprefix("mindcf_p"))
        return lambda s, y: compute_min_dcf(s, y, prior)
    raise ValueError(f"no interval for verification metric {metric!r}; use 'eer' or 'mindcf_p<p>'")
