"""How much of the explained class a masked input carries on its own: the leak of Table 2's
seen-classification design.

A Classification map explains one training class; x * A of a training utterance can then carry
a code for that class which the test data (masked along Traversal) lacks, so a model retrained
on it learns the code instead of the voice. The measure: leave-one-out nearest-centroid
accuracy of recovering the class from each utterance's time-averaged input, on the masked
inputs against the same on the raw inputs (sklearn's ``NearestCentroid`` with one utterance
held out at a time).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def pooled(features: list[np.ndarray]) -> NDArray[np.float64]:
    """Each ``(T, F)`` input's mean over frames: ``(N, F)``."""
    return np.stack([np.asarray(f, dtype=np.float64).mean(axis=0) for f in features])


def nearest_centroid_hits(x: ArrayLike, labels: ArrayLike) -> NDArray[np.bool_]:
    """Per row of ``x`` ``(N, D)``: is its nearest class centroid (Euclidean, its own row left
    out of its class's centroid) the centroid of its own class? Rows alone in their class have
    no centroid to be recovered by and count as misses."""
    v = np.asarray(x, dtype=np.float64)
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    counts = np.bincount(y, minlength=classes.size).astype(np.float64)
    sums = np.zeros((classes.size, v.shape[1]))
    np.add.at(sums, y, v)
    centroids = sums / counts[:, None]
    dist = ((v[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)  # (N, C)
    own_n = counts[y] - 1
    rows = np.arange(v.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        own = (sums[y] - v) / own_n[:, None]
    dist[rows, y] = np.where(own_n > 0, ((v - own) ** 2).sum(axis=1), np.inf)
    return dist.argmin(axis=1) == y
