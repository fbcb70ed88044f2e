"""Masking rules against hand-computed small examples (000 product/threshold, 001 saliency
masking and tanh scaling, 002 Moore-neighbourhood replacement)."""

from __future__ import annotations

import numpy as np
import pytest

from voxray.config import MaskCondition
from voxray.mask import (
    apply_condition,
    attribution_x_input,
    layer_average,
    moore_means,
    moore_replace,
    normalise,
    saliency_x_input,
    threshold_mask,
)

X = np.array([[2.0, 3.0], [4.0, 5.0]])
#: a rule outside the Literal: the dataclass does not check it, apply_condition must.
BOGUS = MaskCondition(rule="bogus")  # type: ignore[arg-type]
A = np.array([[1.0, -2.0], [0.0, 4.0]])


@pytest.mark.parametrize(
    "how, expected",
    [
        ("abs_max", [[0.25, 0.5], [0.0, 1.0]]),
        ("minmax", [[0.5, 0.0], [1 / 3, 1.0]]),
        ("tanh", [[np.tanh(2.5), 0.0], [np.tanh(5 / 3), np.tanh(5.0)]]),
    ],
    ids=["abs_max", "minmax", "tanh"],
)
def test_normalise_hand_computed(how: str, expected: list[list[float]]) -> None:
    np.testing.assert_allclose(normalise(A, how), expected, rtol=1e-12)


@pytest.mark.parametrize("how", ["abs_max", "minmax", "tanh"], ids=["abs_max", "minmax", "tanh"])
def test_normalise_flat_map_is_zero(how: str) -> None:
    flat = np.full((3, 4), 0.0 if how == "abs_max" else 2.5)
    np.testing.assert_array_equal(normalise(flat, how), np.zeros((3, 4)))


def test_tanh_uses_gamma() -> None:
    expected = np.tanh(normalise(A, "minmax"))
    np.testing.assert_allclose(normalise(A, "tanh", gamma=1.0), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "how, expected",
    [("abs_max", [[0.5, -1.5], [0.0, 5.0]]), ("minmax", [[1.0, 0.0], [4 / 3, 5.0]])],
    ids=["abs_max-signed", "minmax"],
)
def test_attribution_x_input_hand_computed(how: str, expected: list[list[float]]) -> None:
    np.testing.assert_allclose(attribution_x_input(X, A, how), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "tau, expected",
    [
        (0.3, [[0.0, -1.5], [0.0, 5.0]]),
        (0.25, [[0.0, -1.5], [0.0, 5.0]]),
        (0.2, [[0.5, -1.5], [0.0, 5.0]]),
    ],
    ids=["between", "equal-is-not-above", "below-all"],
)
def test_threshold_hand_computed(tau: float, expected: list[list[float]]) -> None:
    np.testing.assert_allclose(threshold_mask(X, A, tau, "abs_max"), expected, rtol=1e-12)


@pytest.mark.parametrize("how", ["abs_max", "minmax", "tanh"], ids=["abs_max", "minmax", "tanh"])
def test_threshold_extremes(how: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((7, 5))
    a = rng.standard_normal((7, 5))
    a[2, 3] = 0.0
    np.testing.assert_array_equal(threshold_mask(x, a, 0.0, how), attribution_x_input(x, a, how))
    np.testing.assert_array_equal(threshold_mask(x, a, 1.0, how), np.zeros((7, 5)))


def test_threshold_zeroes_exactly_the_weak_bins(rng: np.random.Generator) -> None:
    x = rng.standard_normal((20, 8)) + 3.0  # no zero inputs
    a = rng.standard_normal((20, 8))
    out = threshold_mask(x, a, 0.1, "abs_max")
    weak = np.abs(a) / np.abs(a).max() <= 0.1
    assert weak.any() and (~weak).any()
    assert (out[weak] == 0).all() and (out[~weak] != 0).all()


def test_saliency_x_input_and_layer_average() -> None:
    s3 = np.array([[0.0, 1.0], [0.5, 0.5]])
    s4 = np.array([[1.0, 1.0], [0.0, 0.25]])
    avg = layer_average([s4, s3])
    np.testing.assert_allclose(avg, [[0.5, 1.0], [0.25, 0.375]])
    np.testing.assert_allclose(saliency_x_input(X, avg), [[1.0, 3.0], [1.0, 1.875]])


#: Moore-neighbourhood means of arange(9).reshape(3, 3), worked out bin by bin.
MOORE_3X3 = [[8 / 3, 14 / 5, 10 / 3], [18 / 5, 4.0, 22 / 5], [14 / 3, 26 / 5, 16 / 3]]


def test_moore_means_3x3_corners_edges_centre() -> None:
    np.testing.assert_allclose(moore_means(np.arange(9.0).reshape(3, 3)), MOORE_3X3, rtol=1e-12)


def test_moore_replace_uses_original_values_of_replaced_neighbours() -> None:
    x = np.arange(9.0).reshape(3, 3)
    a = np.zeros((3, 3))
    a[0, 0], a[0, 1] = 2.0, 1.0  # two adjacent bins, both replaced
    out = moore_replace(x, a, top_fraction=2 / 9)
    expected = x.copy()
    expected[0, 0] = (1 + 3 + 4) / 3  # (0,1) enters with its original value 1
    expected[0, 1] = (0 + 2 + 3 + 4 + 5) / 5  # (0,0) enters with its original value 0
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_moore_replace_4x5_corners_and_edges() -> None:
    x = (np.arange(20.0) ** 2).reshape(4, 5)
    a = -np.ones((4, 5))
    picks = {(3, 4): 689 / 3, (0, 2): 159 / 5, (2, 1): 1124 / 8, (3, 0): 477 / 3, (1, 4): 454 / 5}
    for rank, pos in enumerate(picks):
        a[pos] = 10.0 - rank
    out = moore_replace(x, a, top_fraction=5 / 20)
    expected = x.copy()
    for pos, value in picks.items():
        expected[pos] = value
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # only 2 of the top 25% have positive relevance: only those are replaced
    a2 = -np.ones((4, 5))
    a2[3, 4], a2[2, 1] = 3.0, 1.0
    out2 = moore_replace(x, a2, top_fraction=0.25)
    expected2 = x.copy()
    expected2[3, 4], expected2[2, 1] = picks[(3, 4)], picks[(2, 1)]
    np.testing.assert_allclose(out2, expected2, rtol=1e-12)


def test_moore_replace_counts_top_half_percent() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 64))
    a = rng.random((200, 64))
    changed = moore_replace(x, a) != x
    assert changed.sum() == 64  # 0.5% of 12800 bins
    top = np.argsort(-a.ravel())[:64]
    assert set(np.flatnonzero(changed)) == set(top)


def test_moore_single_bin_keeps_value() -> None:
    np.testing.assert_array_equal(moore_replace(np.array([[3.0]]), np.array([[1.0]]), 1.0), [[3.0]])


@pytest.mark.parametrize(
    "cond",
    [
        MaskCondition(rule="product"),
        MaskCondition(rule="threshold", threshold=0.3),
        MaskCondition(rule="moore", top_fraction=0.1),
    ],
    ids=["product", "threshold", "moore"],
)
def test_apply_condition_dispatches(cond: MaskCondition, rng: np.random.Generator) -> None:
    x = rng.standard_normal((10, 6)).astype(np.float32)
    a = rng.standard_normal((10, 6)).astype(np.float32)
    direct = {
        "product": lambda: attribution_x_input(x, a, "minmax"),
        "threshold": lambda: threshold_mask(x, a, 0.3, "minmax"),
        "moore": lambda: moore_replace(x, a, 0.1),
    }[cond.rule]()
    out = apply_condition(x, a, cond, "minmax")
    assert out.dtype == np.float32 and out.shape == (10, 6)
    np.testing.assert_array_equal(out, direct)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: apply_condition(X, A, BOGUS, "abs_max"), "unknown rule 'bogus'"),
        (lambda: threshold_mask(X, A[:1], 0.1), "shape"),
        (lambda: threshold_mask(X, A, 1.5), "in \\[0, 1\\]"),
        (lambda: attribution_x_input(X, np.array([[np.nan, 1.0], [0.0, 1.0]])), "non-finite"),
        (lambda: normalise(A, "l2"), "unknown 'l2'"),  # type: ignore[arg-type]
        (lambda: moore_replace(X[0], A[0]), "\\(T, F\\)"),
        (lambda: layer_average([A, A[:1]]), "different shapes"),
    ],
    ids=["rule", "shape", "tau", "nan", "how", "ndim", "layer-shapes"],
)
def test_bad_input_is_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
