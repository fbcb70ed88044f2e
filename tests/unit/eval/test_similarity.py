"""Spearman against scipy.stats.spearmanr; SSIM against a direct windowed implementation of
Wang et al. (2004) and its known properties."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from voxray.eval.similarity import average_ranks, spearman, ssim


def test_average_ranks_match_scipy(rng: np.random.Generator) -> None:
    v = rng.integers(0, 5, size=40).astype(float)  # many ties
    np.testing.assert_allclose(average_ranks(v), rankdata(v, method="average"))


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
def test_spearman_matches_scipy(ties: bool, rng: np.random.Generator) -> None:
    a = rng.standard_normal((12, 9))
    b = a + rng.standard_normal((12, 9))
    if ties:
        a, b = np.round(a), np.round(b)
    expected = spearmanr(a.ravel(), b.ravel()).statistic
    assert spearman(a, b) == pytest.approx(expected, abs=1e-12)


def test_spearman_monotone_and_reversed(rng: np.random.Generator) -> None:
    a = rng.standard_normal((6, 5))
    assert spearman(a, np.exp(a)) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert np.isnan(spearman(a, np.ones_like(a)))


def _ssim_direct(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al. (2004), window by window over the positions where the 11x11 window fits."""
    x = (a - a.min()) / (a.max() - a.min())
    y = (b - b.min()) / (b.max() - b.min())
    k = np.arange(-5, 6)
    g = np.exp(-(k**2) / (2 * 1.5**2))
    w = np.outer(g, g)
    w /= w.sum()
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for i in range(5, x.shape[0] - 5):
        for j in range(5, x.shape[1] - 5):
            px, py = x[i - 5 : i + 6, j - 5 : j + 6], y[i - 5 : i + 6, j - 5 : j + 6]
            mx, my = (w * px).sum(), (w * py).sum()
            vx = (w * (px - mx) ** 2).sum()
            vy = (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            num = (2 * mx * my + c1) * (2 * cxy + c2)
            values.append(num / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_direct_implementation(rng: np.random.Generator) -> None:
    a = rng.standard_normal((20, 16))
    b = 0.6 * a + rng.standard_normal((20, 16))
    assert ssim(a, b) == pytest.approx(_ssim_direct(a, b), abs=1e-10)


def test_ssim_properties(rng: np.random.Generator) -> None:
    a = rng.standard_normal((24, 18))
    b = rng.standard_normal((24, 18))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, 3 * a + 7) == pytest.approx(1.0)  # min-max scaling removes affine changes
    assert ssim(a, b) == pytest.approx(ssim(b, a))
    assert abs(ssim(a, b)) < 0.2  # independent noise has little structure in common
    assert ssim(a, -a) < 0  # inverted structure


def test_ssim_small_maps_and_errors() -> None:
    a = np.arange(12.0).reshape(3, 4)
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different shapes"):
        ssim(a, a[:2])
    with pytest.raises(ValueError, match="\\(T, F\\)"):
        ssim(a.ravel(), a.ravel())
