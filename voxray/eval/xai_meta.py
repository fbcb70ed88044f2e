"""Can each Quantus metric fail here? The three-map meta-evaluation of ``xai_metrics``' scores.

MetaQuantus (Hedström et al. 2023) asks of a metric that it react to a disruption that should
matter and resist one that should not. voxray does not depend on its package; this is its
minimal test, written out: each metric scores, per utterance, the method's real map, a
random map (the real map's values permuted over its bins) and the inverted map (its order
reversed, ``max + min - A``). A
metric is informative on this model and data when it ranks the real map above the random one:
the speaker-level bootstrap interval (``voxray.eval.intervals``) of the mean paired gain
``sign * (real - random)``, oriented by ``HIGHER_IS_BETTER``, lies above 0. Otherwise it is
flagged ``UNINFORMATIVE`` and left out of the method ranking. A metric blind to where the
values sit (Completeness, Sparseness, Complexity: functions of the values alone) cannot pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from voxray.eval.intervals import Interval, speaker_bootstrap
from voxray.eval.xai_metrics import HIGHER_IS_BETTER

#: the report's flag for a metric that cannot tell the real map from a random one.
UNINFORMATIVE = "uninformative here"


def nanmean_interval(values: ArrayLike, speakers: ArrayLike, seed: int = 0) -> Interval | None:
    """The NaN-aware mean of per-utterance ``values`` with its speaker-bootstrap interval, or
    None where no value is defined (or too few for an interval)."""
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).any():
        return None

    def mean(idx: np.ndarray) -> float:
        kept = v[idx][np.isfinite(v[idx])]
        return float(kept.mean()) if kept.size else float("nan")

    try:
        return speaker_bootstrap(mean, speakers, seed=seed)
    except ValueError:
        return None


@dataclass(frozen=True)
class MetaVerdict:
    """One metric's three maps and whether it ranked the real map above the random one."""

    metric: str
    #: the mean score of each map kind with its interval (None: undefined).
    real: Interval | None
    random: Interval | None
    inverted: Interval | None
    #: the paired gain of the real map over the random one, oriented (> 0: real better).
    gain: Interval | None

    @property
    def informative(self) -> bool:
        return self.gain is not None and self.gain.ci_low > 0.0


def meta_verdict(
    metric: str,
    real: ArrayLike,
    random: ArrayLike,
    inverted: ArrayLike,
    speakers: ArrayLike,
    seed: int = 0,
) -> MetaVerdict:
    """The verdict of ``metric`` from its per-utterance scores of the three maps (aligned with
    ``speakers``)."""
    sign = 1.0 if HIGHER_IS_BETTER.get(metric, True) else -1.0
    gain = sign * (np.asarray(real, dtype=np.float64) - np.asarray(random, dtype=np.float64))
    return MetaVerdict(
        metric,
        nanmean_interval(real, speakers, seed),
        nanmean_interval(random, speakers, seed),
        nanmean_interval(inverted, speakers, seed),
        nanmean_interval(gain, speakers, seed),
    )
