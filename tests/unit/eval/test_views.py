"""PCA against scikit-learn, t-SNE on separated clusters, mean profiles and band shares on
hand-made profiles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from threadpoolctl import threadpool_limits

from voxray.eval.views import (
    BandImportance,
    band_importance,
    mean_freq_profiles,
    pca_2d,
    tsne_2d,
    tsne_perplexity,
)


def test_pca_matches_sklearn_up_to_sign(rng: np.random.Generator) -> None:
    x = rng.standard_normal((40, 6)) @ np.diag([5.0, 3.0, 1.0, 0.5, 0.2, 0.1])
    ours = pca_2d(x)
    ref = PCA(n_components=2).fit_transform(x)
    for k in range(2):
        sign = np.sign(ours[:, k] @ ref[:, k])
        np.testing.assert_allclose(ours[:, k], sign * ref[:, k], atol=1e-9)


def test_pca_sign_convention_and_rank_one() -> None:
    x = np.array([[0.0, 0.0], [1.0, -3.0], [2.0, -6.0]])  # all on one line, loading (1, -3)/|.|
    out = pca_2d(x)
    np.testing.assert_allclose(out[:, 1], 0.0, atol=1e-12)
    # the largest loading (-3) is made positive: points with larger second coordinate score higher
    assert out[0, 0] > out[1, 0] > out[2, 0]
    np.testing.assert_allclose(pca_2d(np.array([[1.0], [3.0]])), [[-1.0, 0.0], [1.0, 0.0]])


def test_tsne_separates_clusters_and_is_seeded(rng: np.random.Generator) -> None:
    centres = np.array([np.zeros(10), np.full(10, 8.0)])
    labels = np.repeat([0, 1], 12)
    x = centres[labels] + rng.standard_normal((24, 10))
    # one OpenMP thread: on a busy 2-core machine spinning threads make this 20x slower
    with threadpool_limits(1):
        a = tsne_2d(x, seed=1)
        np.testing.assert_array_equal(a, tsne_2d(x, seed=1))
        assert tsne_2d(x[:5], seed=0).shape == (5, 2)  # small sets get a small perplexity
    d = np.linalg.norm(a[:, None] - a[None], axis=2)
    np.fill_diagonal(d, np.inf)
    assert (labels[d.argmin(axis=1)] == labels).all()


@pytest.mark.parametrize(
    "n, expected",
    [(1000, 30.0), (31, 10.0), (5, 4 / 3), (2, 1.0)],
    ids=["large", "medium", "small", "two"],
)
def test_tsne_perplexity(n: int, expected: float) -> None:
    assert tsne_perplexity(n) == pytest.approx(expected)


def test_mean_freq_profiles_weigh_utterances_equally() -> None:
    profiles = {"ig": [[1.0, 3.0], [-10.0, 10.0], [0.0, 0.0]], "empty": [[0.0, 0.0]]}
    out = mean_freq_profiles(profiles)
    assert set(out) == {"ig"}
    np.testing.assert_allclose(out["ig"], [(0.25 + 0.5) / 2, (0.75 + 0.5) / 2])
    with pytest.raises(ValueError, match="one size"):
        mean_freq_profiles({"x": [[1.0, 2.0], [1.0]]})


def test_band_importance_on_synthetic_profiles() -> None:
    hz = np.arange(50.0, 8000.0, 100.0)  # 80 bins: 50, 150, ... 7950 Hz
    flat = band_importance(np.ones(80), hz)
    by = {b.band: b for b in flat}
    assert by["F0"].uniform_share == pytest.approx(3 / 80)  # 150, 250, 350
    assert by["F1"].uniform_share == pytest.approx(7 / 80)  # 350 .. 950
    assert by["F2"].uniform_share == pytest.approx(20 / 80)
    assert by["above"].uniform_share == pytest.approx(50 / 80)
    for b in flat:
        assert b.share == pytest.approx(b.uniform_share) and b.ratio == pytest.approx(1.0)
    voiced = np.where((hz >= 70) & (hz < 400), 10.0, 0.0)
    voiced += np.where((hz >= 1000) & (hz < 3000), 1.0, 0.0)
    by = {b.band: b for b in band_importance(voiced, hz)}
    assert by["F0"].share == pytest.approx(30 / 50)
    assert by["F1"].share == pytest.approx(10 / 50)  # the 350 Hz bin is in F0 and F1
    assert by["F2"].share == pytest.approx(20 / 50)
    assert by["above"].share == 0.0
    assert by["F0"].ratio == pytest.approx((30 / 50) / (3 / 80))
    empty = BandImportance("x", 0.0, 1.0, 0.0, 0.0)
    assert np.isnan(empty.ratio)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: band_importance(np.ones(3), np.ones(4)), "one \\(F,\\) shape"),
        (lambda: band_importance(np.zeros(3), np.arange(3.0)), "no \\(finite\\) importance"),
        (lambda: pca_2d(np.ones((1, 3))), "N >= 2"),
        (lambda: tsne_2d(np.full((4, 2), np.nan)), "non-finite"),
    ],
    ids=["shape", "empty", "one-point", "nan"],
)
def test_bad_input_is_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
