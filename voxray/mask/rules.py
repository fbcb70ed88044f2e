"""How an attribution map turns features into masked or augmented features.

Features ``x`` and maps ``A`` are numpy ``(T, F)`` arrays (frames x bins), one utterance at a
time, as the mask stage passes them. The rules:

- ``product`` (Zhang et al. 2023 §3.3): attribution x input, the map scaled per utterance first;
- ``threshold`` (Zhang et al. 2023, tau = 0.1): the product with the bins whose normalised
  attribution is not above tau set to zero, under one of two readings of "attribution values less
  than 0.1" (``signed``, the default, or ``magnitude``; see ``threshold_scores``);
- ``moore`` (Sarvaš 2021 §4.3): the top p% most relevant bins replaced by the mean of their Moore
  neighbourhood (the augmentation that makes a model rely on fewer single bins);
- ``saliency_x_input`` / ``layer_average`` (Li et al. 2022 §4.4): CAM saliency maps mask the input
  by element-wise multiplication, and maps of several layers combine by element-wise average.

``shuffled_condition`` is the control of every rule: the same rule with ANOTHER utterance's map
(cut or repeated to this utterance's frames), keeping as many bins as the utterance's own map
keeps. A model retrained on it that does as well as on the own maps shows that the own maps
carry nothing specific to the utterance.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import numpy.typing as npt

from voxray.config import MaskCondition
from voxray.mask.ranking import count_for_fraction, descending_order, top_positive

Array = npt.NDArray[np.floating]
Normalisation = Literal["abs_max", "minmax", "tanh"]
NORMALISATIONS: tuple[str, ...] = ("abs_max", "minmax", "tanh")
Reading = Literal["signed", "magnitude"]
READINGS: tuple[str, ...] = ("signed", "magnitude")
#: the tanh scale coefficient of Li et al. 2022, eq. (9).
TANH_GAMMA = 5.0


def _matrix(a: npt.ArrayLike, what: str) -> npt.NDArray[np.float64]:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"{what}: expected a (T, F) map, got shape {m.shape}")
    if not np.isfinite(m).all():
        bad = int((~np.isfinite(m)).sum())
        raise ValueError(f"{what}: {bad} non-finite values in a {m.shape} map")
    return m


def _pair(
    x: npt.ArrayLike, a: npt.ArrayLike, rule: str
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], np.dtype]:
    """Both maps as float64 ``(T, F)`` of one shape, and the dtype the result takes."""
    xa = np.asarray(x)
    out_dtype = np.result_type(xa.dtype, np.float32)
    xm = _matrix(xa, f"mask rule {rule!r}: features")
    am = _matrix(a, f"mask rule {rule!r}: attribution")
    if xm.shape != am.shape:
        raise ValueError(
            f"mask rule {rule!r}: features have shape {xm.shape} but the attribution {am.shape}"
        )
    return xm, am, out_dtype


def normalise(A: npt.ArrayLike, how: Normalisation = "abs_max", gamma: float = TANH_GAMMA) -> Array:
    """A map ``(T, F)`` scaled to [0, 1] per utterance.

    ``abs_max``: ``|A| / max|A|`` (sign dropped: strong negative evidence counts as relevant);
    ``minmax``: ``(A - min A) / (max A - min A)`` (Li et al. 2022 eq. 8); ``tanh``: min-max, then
    ``tanh(gamma * S / max S)`` (Li et al. 2022 eq. 9, gamma = 5), which lifts mid-range saliency.
    A map with no spread (all zero, or constant for minmax/tanh) normalises to zeros.
    """
    if how not in NORMALISATIONS:
        raise ValueError(f"mask.normalise: unknown {how!r} (one of {', '.join(NORMALISATIONS)})")
    a = _matrix(A, f"normalise({how})")
    if how == "abs_max":
        peak = np.abs(a).max(initial=0.0)
        return np.abs(a) / peak if peak > 0 else np.zeros_like(a)
    if a.size == 0:
        return a
    lo, hi = a.min(), a.max()
    s = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if how == "minmax":
        return s
    top = s.max(initial=0.0)
    return np.tanh(gamma * s / top) if top > 0 else s


def scaled_attribution(A: npt.ArrayLike, how: Normalisation = "abs_max") -> Array:
    """The factor attribution x input multiplies by: ``A / max|A|`` (signed, in [-1, 1]) for
    ``abs_max``; the [0, 1] map of ``normalise`` for ``minmax`` and ``tanh``."""
    if how == "abs_max":
        a = _matrix(A, "attribution")
        peak = np.abs(a).max(initial=0.0)
        return a / peak if peak > 0 else np.zeros_like(a)
    return normalise(A, how)


def attribution_x_input(
    x: npt.ArrayLike, A: npt.ArrayLike, how: Normalisation = "abs_max"
) -> Array:
    """Zhang et al. 2023's reliability input: ``x * A / max|A|`` (``(T, F)``), or ``x * normalise(A,
    how)``
    for ``minmax`` / ``tanh``. Scaling by the per-utterance peak keeps the sign and pattern of
    the raw attribution while putting every utterance on one scale, whatever the method's
    units, so a model retrained on the products sees comparable inputs."""
    xm, am, dtype = _pair(x, A, "product")
    return (xm * scaled_attribution(am, how)).astype(dtype)


def threshold_scores(
    A: npt.ArrayLike, reading: Reading = "signed", how: Normalisation = "abs_max"
) -> Array:
    """The per-bin score ``(T, F)`` that Zhang et al. 2023's threshold compares with tau.

    Zhang et al. 2023 §4 masks by "filtering out attribution values less than 0.1". Read literally
    that is
    the ``signed`` reading, the default: a negative attribution is a value less than 0.1, so
    bins that speak AGAINST the explained output go with the weak ones and only evidence for
    it is kept. For ``abs_max`` the score is ``A / max A`` (all zeros when no bin is positive);
    for ``minmax`` / ``tanh`` it is ``normalise(A, how)``, which is ordered like ``A``.
    The ``magnitude`` reading scores ``|A|`` instead (``|A| / max|A|`` for ``abs_max``): strong
    negative evidence counts as relevant and is kept, its negative factor with it (issue 14
    measured 16.7% of bins kept against 10.5% signed, 36% of them negative, on the demo).
    """
    if reading not in READINGS:
        raise ValueError(f"mask threshold reading must be one of {READINGS}, got {reading!r}")
    a = _matrix(A, f"threshold_scores({reading}, {how})")
    if reading == "magnitude":
        return normalise(np.abs(a), how)
    if how != "abs_max":
        return normalise(a, how)
    peak = a.max(initial=0.0)
    return a / peak if peak > 0 else np.zeros_like(a)


def kept_bins(
    A: npt.ArrayLike, tau: float, reading: Reading = "signed", how: Normalisation = "abs_max"
) -> npt.NDArray[np.bool_]:
    """Which bins ``(T, F)`` Zhang et al. 2023's mask keeps: those whose ``threshold_scores`` exceed
    tau."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"mask threshold must be in [0, 1], got {tau:g}")
    return threshold_scores(A, reading, how) > tau


def threshold_mask(
    x: npt.ArrayLike,
    A: npt.ArrayLike,
    tau: float,
    how: Normalisation = "abs_max",
    reading: Reading = "signed",
) -> Array:
    """Attribution x input with every bin that ``kept_bins`` drops set to zero (Zhang et al. 2023's
    mask,
    tau = 0.1). tau = 1 zeroes everything; tau = 0 keeps the bins of positive score (under the
    magnitude reading every non-zero bin: the plain product)."""
    xm, am, dtype = _pair(x, A, "threshold")
    keep = kept_bins(am, tau, reading, how)
    return np.where(keep, xm * scaled_attribution(am, how), 0.0).astype(dtype)


def saliency_x_input(x: npt.ArrayLike, S: npt.ArrayLike) -> Array:
    """Li et al. 2022 §4.4: the input masked by element-wise multiplication with a saliency map
    ``(T, F)``
    (normalise it to [0, 1] first, e.g. ``normalise(S, "tanh")``)."""
    xm, sm, dtype = _pair(x, S, "saliency")
    return (xm * sm).astype(dtype)


def layer_average(maps: Sequence[npt.ArrayLike]) -> Array:
    """Element-wise average of saliency maps of several layers (Li et al. 2022's 'S4+S3'), all ``(T,
    F)``."""
    if not maps:
        raise ValueError("layer_average: no maps given")
    ms = [_matrix(m, f"layer_average: map {i}") for i, m in enumerate(maps)]
    shapes = {m.shape for m in ms}
    if len(shapes) != 1:
        raise ValueError(f"layer_average: maps of different shapes {sorted(shapes)}")
    return np.mean(ms, axis=0)


def moore_means_at(x: npt.ArrayLike, idx: npt.ArrayLike) -> Array:
    """Mean of the Moore neighbourhood of the bins at flat (row-major) indices ``idx`` of ``x``
    ``(T, F)``: the up-to-8 surrounding bins that exist (5 on an edge, 3 in a corner). A bin
    without neighbours (in a 1 x 1 map) keeps its value. Only the requested bins are touched."""
    xm = _matrix(x, "moore_means")
    flat = np.asarray(idx, dtype=np.intp)
    rows, cols = np.divmod(flat, xm.shape[1])
    total = np.zeros(flat.shape, dtype=xm.dtype)
    count = np.zeros(flat.shape, dtype=np.intp)
    for dt in (-1, 0, 1):
        for df in (-1, 0, 1):
            if dt == 0 and df == 0:
                continue
            r, c = rows + dt, cols + df
            ok = (r >= 0) & (r < xm.shape[0]) & (c >= 0) & (c < xm.shape[1])
            total[ok] += xm[r[ok], c[ok]]
            count += ok
    return np.divide(total, count, out=xm.ravel()[flat].copy(), where=count > 0)


def moore_means(x: npt.ArrayLike) -> Array:
    """``moore_means_at`` for every bin: ``(T, F)``."""
    xm = _matrix(x, "moore_means")
    return moore_means_at(xm, np.arange(xm.size)).reshape(xm.shape)


def moore_replace(x: npt.ArrayLike, A: npt.ArrayLike, top_fraction: float = 0.005) -> Array:
    """Sarvaš 2021 §4.3: the ``top_fraction`` of bins with the highest positive relevance in ``A``
    replaced by the mean of their Moore neighbourhood in ``x`` ``(T, F)``.

    The means are taken over the ORIGINAL values, neighbours that are replaced themselves
    included, so the result does not depend on the order bins are visited in. Fewer bins
    change when fewer than ``top_fraction`` of them have positive relevance.
    """
    xm, am, dtype = _pair(x, A, "moore")
    idx = top_positive(am, top_fraction)
    out = xm.copy()
    out.flat[idx] = moore_means_at(xm, idx)
    return out.astype(dtype)


def apply_condition(
    x: npt.ArrayLike, A: npt.ArrayLike, cond: MaskCondition, how: Normalisation = "abs_max"
) -> Array:
    """Apply one configured mask condition to features ``x`` ``(T, F)`` with attribution ``A``
    (the utterance's own map; ``shuffled_condition`` applies the control)."""
    if cond.rule == "product":
        return attribution_x_input(x, A, how)
    if cond.rule == "threshold":
        return threshold_mask(x, A, cond.threshold, how, cond.reading)
    if cond.rule == "moore":
        return moore_replace(x, A, cond.top_fraction)
    raise ValueError(
        f"mask condition {cond.name}: unknown rule {cond.rule!r} (product, threshold, moore)"
    )


def fit_frames(A: npt.ArrayLike, frames: int) -> Array:
    """Another utterance's map ``(T', F)`` cut or cyclically repeated to ``frames`` frames:
    its own values and frequency pattern, none of this utterance's timing."""
    a = _matrix(A, "shuffled map")
    if a.shape[0] == 0:
        raise ValueError("shuffled map: the donor map has no frames")
    return np.resize(a, (frames, a.shape[1]))


def top_k_mask(scores: npt.ArrayLike, k: int) -> npt.NDArray[np.bool_]:
    """The ``k`` bins of highest score ``(T, F)``, ties broken row-major (``descending_order``)."""
    s = _matrix(scores, "top_k_mask")
    keep = np.zeros(s.size, dtype=bool)
    keep[descending_order(s)[:k]] = True
    return keep.reshape(s.shape)


def shuffled_condition(
    x: npt.ArrayLike,
    own: npt.ArrayLike,
    donor: npt.ArrayLike,
    cond: MaskCondition,
    how: Normalisation = "abs_max",
) -> Array:
    """The control of ``cond``: its rule applied with ``donor``, another utterance's map
    ``(T', F)``, keeping as many bins as ``own`` (this utterance's map ``(T, F)``) keeps.

    ``product`` keeps every bin either way; ``threshold`` keeps the donor's ``k`` best-scored
    bins, ``k`` the count ``kept_bins`` keeps of ``own``; ``moore`` replaces the top
    ``top_fraction`` of the donor's positive bins, as it would of the own map's.
    """
    xm, om, dtype = _pair(x, own, "shuffled")
    dm = fit_frames(donor, xm.shape[0])
    if dm.shape != om.shape:
        raise ValueError(
            f"mask condition {cond.name}: the donor map has {dm.shape[1]} bins, "
            f"the utterance {om.shape[1]}"
        )
    if cond.rule == "threshold":
        k = int(kept_bins(om, cond.threshold, cond.reading, how).sum())
        keep = top_k_mask(threshold_scores(dm, cond.reading, how), k)
        return np.where(keep, xm * scaled_attribution(dm, how), 0.0).astype(dtype)
    return apply_condition(xm, dm, cond, how).astype(dtype)


def kept_fraction(A: npt.ArrayLike, cond: MaskCondition, how: Normalisation = "abs_max") -> float:
    """The fraction of the bins of a map ``(T, F)`` that ``cond`` keeps: ``kept_bins`` for
    ``threshold``, the bins not replaced for ``moore``, the non-zero ones for ``product``."""
    am = _matrix(A, "kept_fraction")
    if am.size == 0:
        return 0.0
    if cond.rule == "threshold":
        return float(kept_bins(am, cond.threshold, cond.reading, how).mean())
    if cond.rule == "moore":
        return 1.0 - count_for_fraction(cond.top_fraction, am.size) / am.size
    return float((am != 0).mean())
