"""Clustering scorers for utterances with many segment embeddings (Lehmann & Stadelmann 2020,
section 4.4).

With 50%-overlapping segments an utterance yields ``S`` embeddings ``(S, D)``. A trial is
scored by clustering both utterances' segments together:

* ``ahc_score``: agglomerative clustering (scipy ``linkage``) and the *negated* distance of
  the last merge, "the distance between the last two clusters that are combined" (Lehmann &
  Stadelmann 2020);
  negated so that, as for every scorer, higher means same speaker. For the monotone
  linkages this is the dendrogram height; centroid and median linkage can produce
  inversions, and then the last merge is what Lehmann & Stadelmann 2020 scores, not the maximum
  height.
  Metric: cosine distance for single / complete / average / weighted; Euclidean distance
  between L2-normalised embeddings for centroid / median / ward, whose Lance-Williams
  updates assume Euclidean geometry (on unit vectors ``||a - b||^2 = 2 * cosine distance``,
  so both see the same angles).
* ``ds_score``: each utterance is first reduced to its dominant sets (Pavan & Pelillo 2007;
  Hibraj et al. 2018), one x-weighted mean embedding per set, then ``ahc_score``.
* ``mean_cossim`` / ``mean_dot``: the Lehmann & Stadelmann 2020 baselines, cosine or dot product of
  the two utterances' mean segment embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.cluster.hierarchy import linkage as scipy_linkage

from voxray.config import LINKAGES

#: float64 arrays (embeddings, scores) and int64 row indices, as the eval modules pass them.
Floats = NDArray[np.float64]
Indices = NDArray[np.int64]

#: Linkages whose update rule is only valid for Euclidean distances.
EUCLIDEAN_LINKAGES = frozenset({"centroid", "median", "ward"})


def l2_normalise(x: Floats, what: str = "embeddings") -> Floats:
    """Rows of ``x`` (``(..., D)``) scaled to unit L2 norm; zero or non-finite rows raise."""
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    bad = np.flatnonzero(~(np.isfinite(norms) & (norms > 0)))
    if bad.size:
        raise ValueError(
            f"{what}: row {bad[0]} has a zero or non-finite norm and cannot be normalised"
        )
    return x / norms


def _check_linkage(linkage: str) -> None:
    if linkage not in LINKAGES:
        raise ValueError(f"unknown linkage {linkage!r}; valid: {', '.join(LINKAGES)}")


def last_merge_distance(points: ArrayLike, linkage: str) -> float:
    """Distance at which agglomerative clustering of ``points`` makes its last merge.

    Args:
        points: ``(N, D)`` embeddings, ``N >= 2`` (normalised here). With two points this
            is their distance (cosine, or Euclidean for centroid / median / ward).
        linkage: one of ``LINKAGES``.
    """
    _check_linkage(linkage)
    x = l2_normalise(np.asarray(points, dtype=np.float64), "clustering points")
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"clustering needs an (N, D) array with N >= 2 points; got {x.shape}")
    if linkage in EUCLIDEAN_LINKAGES:
        merges = scipy_linkage(x, method=linkage, metric="euclidean")
    else:
        upper = np.triu_indices(x.shape[0], k=1)
        # Rounding can push 1 - cos a hair below 0 for identical points; scipy wants >= 0.
        condensed = np.clip(1.0 - (x @ x.T)[upper], 0.0, 2.0)
        merges = scipy_linkage(condensed, method=linkage)
    return float(merges[-1, 2])


def ahc_score(seg_a: ArrayLike, seg_b: ArrayLike, linkage: str) -> float:
    """Negated last-merge distance of clustering ``(Sa, D)`` and ``(Sb, D)`` segments together."""
    points = np.concatenate([np.atleast_2d(seg_a), np.atleast_2d(seg_b)], axis=0)
    return -last_merge_distance(points, linkage)


@dataclass(frozen=True)
class DominantSet:
    """One dominant set: ``members`` ``(K,)`` row indices and their weights ``(K,)`` (sum 1)."""

    members: Indices
    weights: Floats


def similarity_matrix(points: ArrayLike) -> Floats:
    """Dominant-set affinities ``(N, N)``: ``(1 + cos) / 2`` in [0, 1], zero diagonal.

    Replicator dynamics need non-negative affinities; the zero diagonal stops a point
    from supporting itself.
    """
    x = l2_normalise(np.asarray(points, dtype=np.float64), "dominant-set points")
    a = np.clip(0.5 * (1.0 + x @ x.T), 0.0, 1.0)
    np.fill_diagonal(a, 0.0)
    return a


def replicator_dynamics(affinity: Floats, max_iter: int = 1000, tol: float = 1e-8) -> Floats:
    """Iterate ``x <- x * (A x) / (x^T A x)`` from the barycentre of the simplex.

    Converges to a local maximiser of ``x^T A x`` on the simplex, whose support is a
    dominant set. Returns ``x`` ``(N,)``; stops when the L1 change is below ``tol`` or when
    ``x^T A x = 0`` (no positive affinity left: ``x`` is returned unchanged).
    """
    n = affinity.shape[0]
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        ax = affinity @ x
        value = float(x @ ax)
        if value <= 0.0:
            break
        x_next = x * ax / value
        change = float(np.abs(x_next - x).sum())
        x = x_next
        if change < tol:
            break
    return x


def dominant_sets(
    points: ArrayLike, threshold: float = 1e-4, max_iter: int = 1000
) -> list[DominantSet]:
    """Peel dominant sets off ``(N, D)`` points until every point belongs to one.

    Each round runs replicator dynamics on the points not yet assigned and takes the
    support ``x > threshold`` as the next set (largest cohesion first). A round with no
    positive affinity (a last single point, or two antipodal points) peels its
    highest-weight point alone.
    """
    affinity = similarity_matrix(points)
    remaining = np.arange(affinity.shape[0])
    sets: list[DominantSet] = []
    while remaining.size:
        sub = affinity[np.ix_(remaining, remaining)]
        x = replicator_dynamics(sub, max_iter=max_iter)
        chosen = x > threshold
        if float(x @ sub @ x) <= 0.0 or not chosen.any():
            chosen = np.zeros(remaining.size, dtype=bool)
            chosen[int(np.argmax(x))] = True
        weights = x[chosen]
        sets.append(DominantSet(members=remaining[chosen], weights=weights / weights.sum()))
        remaining = remaining[~chosen]
    return sets


def dominant_set_embeddings(
    segments: ArrayLike, threshold: float = 1e-4, max_iter: int = 1000
) -> Floats:
    """Reduce ``(S, D)`` segment embeddings to ``(K, D)``, one x-weighted mean per dominant set.

    The means are taken over the L2-normalised segments (the geometry the sets were found in).
    """
    x = l2_normalise(np.atleast_2d(np.asarray(segments, dtype=np.float64)), "segments")
    sets = dominant_sets(x, threshold=threshold, max_iter=max_iter)
    return np.stack([ds.weights @ x[ds.members] for ds in sets])


def ds_score(seg_a: ArrayLike, seg_b: ArrayLike, linkage: str) -> float:
    """``ahc_score`` over the two utterances' dominant-set embeddings (Lehmann & Stadelmann 2020's
    ``DS-<linkage>``)."""
    return ahc_score(dominant_set_embeddings(seg_a), dominant_set_embeddings(seg_b), linkage)


def mean_cossim(seg_a: ArrayLike, seg_b: ArrayLike) -> float:
    """Cosine similarity of the mean segment embeddings (Lehmann & Stadelmann 2020's
    Mean-CosSim)."""
    mean_a = np.atleast_2d(np.asarray(seg_a, dtype=np.float64)).mean(axis=0)
    mean_b = np.atleast_2d(np.asarray(seg_b, dtype=np.float64)).mean(axis=0)
    return float(l2_normalise(mean_a, "mean of seg_a") @ l2_normalise(mean_b, "mean of seg_b"))


def mean_dot(seg_a: ArrayLike, seg_b: ArrayLike) -> float:
    """Dot product of the raw (unnormalised) mean segment embeddings (Lehmann & Stadelmann 2020's
    Mean-DotProduct).

    Unnormalised on purpose: the embedding norm is what distinguishes it from Mean-CosSim.
    """
    mean_a = np.atleast_2d(np.asarray(seg_a, dtype=np.float64)).mean(axis=0)
    mean_b = np.atleast_2d(np.asarray(seg_b, dtype=np.float64)).mean(axis=0)
    return float(mean_a @ mean_b)
