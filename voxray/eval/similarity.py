"""How alike two attribution maps are: Spearman rank correlation and SSIM, the two measures
of Adebayo et al. (2018) for the sanity checks (``voxray.eval.sanity``).

Maps are ``(T, F)`` arrays (frames x bins). Spearman compares the bins' orderings; SSIM
(Wang et al. 2004) compares local structure, after scaling each map to [0, 1].
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

Array = npt.NDArray[np.float64]

#: Wang et al. (2004): an 11 x 11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, L = 1.
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def average_ranks(values: npt.ArrayLike) -> Array:
    """Ranks 1..n of the flattened ``values``; tied values share the mean of their ranks."""
    v = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(v, kind="stable")
    sorted_v = v[order]
    # boundaries of runs of equal values in sorted order
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    ends = np.r_[starts[1:], v.size]
    mean_rank = (starts + ends + 1) / 2.0  # mean of positions start+1 .. end
    ranks = np.empty(v.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _pair(a: npt.ArrayLike, b: npt.ArrayLike, what: str) -> tuple[Array, Array]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"{what}: maps of different shapes {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"{what}: non-finite values in the maps")
    return x, y


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman rank correlation of two maps, flattened (ties by average rank).

    NaN when either map is constant: its ranks carry no order to correlate.
    """
    x, y = _pair(a, b, "spearman")
    if x.size < 2:
        return float("nan")
    rx = average_ranks(x) - (x.size + 1) / 2.0
    ry = average_ranks(y) - (y.size + 1) / 2.0
    denom = np.sqrt((rx @ rx) * (ry @ ry))
    if denom == 0:
        return float("nan")
    return float(np.clip((rx @ ry) / denom, -1.0, 1.0))


def minmax01(a: npt.ArrayLike) -> Array:
    """A map scaled to [0, 1]; a constant map becomes zeros."""
    x = np.asarray(a, dtype=np.float64)
    if x.size == 0:
        return x
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def ssim(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Mean structural similarity of two ``(T, F)`` maps, each min-max scaled to [0, 1].

    Local means, variances and covariance are Gaussian-weighted (11 x 11, sigma 1.5) as in
    Wang et al. (2004); the mean is taken over the positions where the window fits inside
    the map (5 bins from each border, fewer along an axis shorter than 11 bins, where the
    window is reflected at the border). 1 for identical maps.
    """
    x, y = _pair(a, b, "ssim")
    if x.ndim != 2:
        raise ValueError(f"ssim: expected (T, F) maps, got shape {x.shape}")
    if x.size == 0:
        raise ValueError("ssim: empty maps")
    x, y = minmax01(x), minmax01(y)

    def blur(m: Array) -> Array:
        return ndimage.gaussian_filter(
            m, SSIM_SIGMA, mode="reflect", truncate=SSIM_RADIUS / SSIM_SIGMA
        )

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    local = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    crop = tuple(slice(r, n - r) for n in x.shape for r in [min(SSIM_RADIUS, (n - 1) // 2)])
    return float(local[crop].mean())
