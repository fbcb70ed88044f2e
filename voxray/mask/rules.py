"""How an attribution map turns features into masked or augmented features.

Features ``x`` and maps ``A`` are numpy ``(T, F)`` arrays (frames x bins), one utterance at a
time, as the mask stage passes them. The rules:

- ``product`` (000 §3.3): attribution x input, the map scaled per utterance first;
- ``threshold`` (000, tau = 0.1): the product with the bins whose normalised attribution is
  not above tau set to zero;
- ``moore`` (002 §4.3): the top p% most relevant bins replaced by the mean of their Moore
  neighbourhood (the augmentation that makes a model rely on fewer single bins);
- ``saliency_x_input`` / ``layer_average`` (001 §4.4): CAM saliency maps mask the input by
  element-wise multiplication, and maps of several layers combine by element-wise average.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import numpy.typing as npt

from voxray.config import MaskCondition
from voxray.mask.ranking import top_positive

Array = npt.NDArray[np.floating]
Normalisation = Literal["abs_max", "minmax", "tanh"]
NORMALISATIONS: tuple[str, ...] = ("abs_max", "minmax", "tanh")
#: the tanh scale coefficient of 001, eq. (9).
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
    ``minmax``: ``(A - min A) / (max A - min A)`` (001 eq. 8); ``tanh``: min-max, then
    ``tanh(gamma * S / max S)`` (001 eq. 9, gamma = 5), which lifts mid-range saliency.
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
    """000's reliability input: ``x * A / max|A|`` (``(T, F)``), or ``x * normalise(A, how)``
    for ``minmax`` / ``tanh``. Scaling by the per-utterance peak keeps the sign and pattern of
    the raw attribution while putting every utterance on one scale, whatever the method's
    units, so a model retrained on the products sees comparable inputs."""
    xm, am, dtype = _pair(x, A, "product")
    return (xm * scaled_attribution(am, how)).astype(dtype)


def threshold_mask(
    x: npt.ArrayLike, A: npt.ArrayLike, tau: float, how: Normalisation = "abs_max"
) -> Array:
    """Attribution x input with every bin whose ``normalise(A, how)`` is not above ``tau`` set
    to zero (000's mask, tau = 0.1): tau = 0 leaves the product as it is (bins at 0 are 0
    already), tau = 1 zeroes everything."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"mask threshold must be in [0, 1], got {tau:g}")
    xm, am, dtype = _pair(x, A, "threshold")
    keep = normalise(am, how) > tau
    return np.where(keep, xm * scaled_attribution(am, how), 0.0).astype(dtype)


def saliency_x_input(x: npt.ArrayLike, S: npt.ArrayLike) -> Array:
    """001 §4.4: the input masked by element-wise multiplication with a saliency map ``(T, F)``
    (normalise it to [0, 1] first, e.g. ``normalise(S, "tanh")``)."""
    xm, sm, dtype = _pair(x, S, "saliency")
    return (xm * sm).astype(dtype)


def layer_average(maps: Sequence[npt.ArrayLike]) -> Array:
    """Element-wise average of saliency maps of several layers (001's 'S4+S3'), all ``(T, F)``."""
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
    """002 §4.3: the ``top_fraction`` of bins with the highest positive relevance in ``A``
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
    """Apply one configured mask condition to features ``x`` ``(T, F)`` with attribution ``A``."""
    if cond.rule == "product":
        return attribution_x_input(x, A, how)
    if cond.rule == "threshold":
        return threshold_mask(x, A, cond.threshold, how)
    if cond.rule == "moore":
        return moore_replace(x, A, cond.top_fraction)
    raise ValueError(
        f"mask condition {cond.name}: unknown rule {cond.rule!r} (product, threshold, moore)"
    )
