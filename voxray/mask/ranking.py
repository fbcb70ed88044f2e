"""Which bins come first: one ordering of maps by relevance, shared by the Moore-neighbourhood
augmentation (``voxray.mask.rules``) and the faithfulness evaluators (deletion / insertion,
pixel flipping), so that "the top p% of bins" names the same bins everywhere.

Order: by value, descending; ties broken by row-major position (earlier frame first, then
lower bin). Count: ``round(p * n)`` over all ``n`` bins, halves rounded up.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.intp]


def count_for_fraction(fraction: float, n: int) -> int:
    """How many of ``n`` bins a fraction in [0, 1] stands for: ``round(fraction * n)``."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction:g}")
    return min(n, int(math.floor(fraction * n + 0.5)))


def descending_order(values: npt.ArrayLike) -> Indices:
    """Flat (row-major) indices of ``values`` from the largest value to the smallest (stable)."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    return np.argsort(-flat, kind="stable")


def top_positive(values: npt.ArrayLike, fraction: float) -> Indices:
    """Flat indices of the ``fraction`` of all bins with the highest POSITIVE values (Sarvaš 2021's
    "bins with the highest positive relevance"): fewer when fewer bins are positive."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    k = count_for_fraction(fraction, flat.size)
    if k == 0:
        return np.zeros(0, dtype=np.intp)
    if k < flat.size:
        # the k-th largest value by partition, then a stable sort of the bins at or above it
        # (row-major order among equal values, as descending_order gives), not of all bins
        kth = np.partition(flat, flat.size - k)[flat.size - k]
        candidates = np.flatnonzero(flat >= kth)
        order = candidates[np.argsort(-flat[candidates], kind="stable")][:k]
    else:
        order = descending_order(flat)
    return order[flat[order] > 0]


def rank_positions(order: Indices, n: int) -> Indices:
    """Inverse of a (partial) ordering: the position of each of ``n`` bins in ``order``; bins
    that ``order`` leaves out get ``n``, so ``rank < k`` selects exactly ``order[:k]``."""
    ranks = np.full(n, n, dtype=np.intp)
    ranks[order] = np.arange(len(order), dtype=np.intp)
    return ranks
