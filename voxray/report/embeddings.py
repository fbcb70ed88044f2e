"""2-D projections of speaker embeddings for the PCA / t-SNE figures (as in Lehmann & Stadelmann
2020 and Tai et al. 2020)."""

from __future__ import annotations

from typing import Literal

import numpy as np


def project_2d(x: np.ndarray, method: Literal["pca", "tsne"], seed: int = 0) -> np.ndarray:
    """Project embeddings ``(N, D)`` to ``(N, 2)``.

    Embeddings are length-normalised first (the scorers compare angles). t-SNE uses a
    perplexity below N / 3 so that small runs (a few dozen utterances) still project, and
    starts from the PCA layout so the result is reproducible for a seed.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"need at least 3 embeddings of shape (N, D) to project; got {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        perplexity = float(min(30.0, max(1.0, (x.shape[0] - 1) / 3.0)))
        return TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(x)
    raise ValueError(f"unknown projection {method!r}: use 'pca' or 'tsne'")
