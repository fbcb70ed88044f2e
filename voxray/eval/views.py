"""Corpus-level views of embeddings and attributions: 2-D projections (PCA, t-SNE; Lehmann &
Stadelmann 2020, Tai et al. 2020) and where on the frequency axis the importance falls (Zhang et al.
2023 claims the F0 and formant regions
dominate; ``band_importance`` shows whether that holds, against the share a uniform map
would give each band).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

#: (label, low Hz, high Hz): the fundamental, the first two formants, and everything above.
VOICE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("F0", 70.0, 400.0),
    ("F1", 300.0, 1000.0),
    ("F2", 1000.0, 3000.0),
    ("above", 3000.0, float("inf")),
)
#: t-SNE's default perplexity, used when there are enough points.
TSNE_PERPLEXITY = 30.0


def _points(X: npt.ArrayLike, what: str) -> Array:
    x = np.asarray(X, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"{what}: expected (N, D) points with N >= 2, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: non-finite values in the points")
    return x


def pca_2d(X: npt.ArrayLike) -> Array:
    """``(N, D) -> (N, 2)``: projection on the first two principal axes (SVD of the centred
    points). Each axis's sign makes its largest-magnitude loading positive, so the picture is
    reproducible; an axis beyond the data's rank is zeros."""
    x = _points(X, "pca_2d")
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    out = np.zeros((x.shape[0], 2))
    for k in range(min(2, vt.shape[0])):
        axis = vt[k]
        axis = axis if axis[np.argmax(np.abs(axis))] >= 0 else -axis
        out[:, k] = centred @ axis
    return out


def tsne_perplexity(n: int) -> float:
    """Perplexity for ``n`` points: 30, or ``(n - 1) / 3`` (at least 1) for small sets, since
    t-SNE needs perplexity < n and ~3 perplexities of neighbours to be meaningful."""
    return float(min(TSNE_PERPLEXITY, max(1.0, (n - 1) / 3.0)))


def tsne_2d(X: npt.ArrayLike, seed: int = 0) -> Array:
    """``(N, D) -> (N, 2)`` t-SNE embedding (scikit-learn, PCA initialisation, seeded)."""
    from sklearn.manifold import TSNE

    x = _points(X, "tsne_2d")
    tsne = TSNE(n_components=2, perplexity=tsne_perplexity(len(x)), init="pca", random_state=seed)
    return np.asarray(tsne.fit_transform(x), dtype=np.float64)


def mean_freq_profiles(profiles: Mapping[str, Sequence[npt.ArrayLike]]) -> dict[str, Array]:
    """Per method, the mean frequency profile ``(F,)`` of its utterances' profiles.

    Each profile (importance per bin, summed over frames) is taken as |profile| scaled to sum
    1, so every utterance weighs the same whatever its length or the method's units; all-zero
    profiles carry no importance and are skipped. A method with none left is left out.
    """
    out: dict[str, Array] = {}
    for method, rows in profiles.items():
        arrays = [np.abs(np.asarray(p, dtype=np.float64)) for p in rows]
        sizes = {a.shape for a in arrays}
        if len(sizes) > 1 or any(len(s) != 1 for s in sizes):
            raise ValueError(
                f"mean_freq_profiles: {method}: profiles must all be (F,) of one size, "
                f"got {sorted(sizes)}"
            )
        kept = [a / a.sum() for a in arrays if np.isfinite(a).all() and a.sum() > 0]
        if kept:
            out[method] = np.mean(kept, axis=0)
    return out


@dataclass(frozen=True)
class BandImportance:
    """Share of a profile's importance in one band, against the band's share of the bins."""

    band: str
    low_hz: float
    high_hz: float
    share: float
    uniform_share: float

    @property
    def ratio(self) -> float:
        """``share / uniform_share``: > 1 when the band holds more than its bins' worth."""
        return self.share / self.uniform_share if self.uniform_share > 0 else float("nan")


def band_importance(
    profile: npt.ArrayLike,
    hz: npt.ArrayLike,
    bands: Sequence[tuple[str, float, float]] = VOICE_BANDS,
) -> list[BandImportance]:
    """How much of ``profile`` ``(F,)`` (|importance| per bin, at centre frequencies ``hz``
    ``(F,)``) falls in each band ``[low, high)``. Bands may overlap (F0 and F1 do), so the
    shares need not sum to 1; ``uniform_share`` is the share a flat profile would give."""
    p = np.abs(np.asarray(profile, dtype=np.float64))
    f = np.asarray(hz, dtype=np.float64)
    if p.ndim != 1 or p.shape != f.shape:
        raise ValueError(
            f"band_importance: profile {p.shape} and frequencies {f.shape} must be one (F,) shape"
        )
    total = p.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError("band_importance: the profile has no (finite) importance")
    out = []
    for label, lo, hi in bands:
        inside = (f >= lo) & (f < hi)
        share = float(p[inside].sum() / total)
        out.append(BandImportance(label, lo, hi, share, float(inside.mean())))
    return out
