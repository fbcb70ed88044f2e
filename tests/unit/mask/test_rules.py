"""Masking rules against hand-computed small examples (Zhang et al. 2023 product/threshold, Li et
al. 2022 saliency masking and tanh scaling, Sarvaš 2021 Moore-neighbourhood replacement)."""

from __future__ import annotations

import numpy as np
import pytest

from voxray import mask
from voxray.config import MaskCondition

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
    np.testing.assert_allclose(mask.normalise(A, how), expected, rtol=1e-12)


@pytest.mark.parametrize("how", ["abs_max", "minmax", "tanh"], ids=["abs_max", "minmax", "tanh"])
def test_normalise_flat_map_is_zero(how: str) -> None:
    flat = np.full((3, 4), 0.0 if how == "abs_max" else 2.5)
    np.testing.assert_array_equal(mask.normalise(flat, how), np.zeros((3, 4)))


def test_tanh_uses_gamma() -> None:
    expected = np.tanh(mask.normalise(A, "minmax"))
    np.testing.assert_allclose(mask.normalise(A, "tanh", gamma=1.0), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "how, expected",
    [("abs_max", [[0.5, -1.5], [0.0, 5.0]]), ("minmax", [[1.0, 0.0], [4 / 3, 5.0]])],
    ids=["abs_max-signed", "minmax"],
)
def test_attribution_x_input_hand_computed(how: str, expected: list[list[float]]) -> None:
    np.testing.assert_allclose(mask.attribution_x_input(X, A, how), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "reading, tau, expected",
    [
        ("magnitude", 0.3, [[0.0, -1.5], [0.0, 5.0]]),
        ("magnitude", 0.25, [[0.0, -1.5], [0.0, 5.0]]),
        ("magnitude", 0.2, [[0.5, -1.5], [0.0, 5.0]]),
        # signed: A / max A = [[0.25, -0.5], [0, 1]]; the negative bin is below every tau
        ("signed", 0.3, [[0.0, 0.0], [0.0, 5.0]]),
        ("signed", 0.25, [[0.0, 0.0], [0.0, 5.0]]),
        ("signed", 0.2, [[0.5, 0.0], [0.0, 5.0]]),
    ],
    ids=[
        "magnitude-between",
        "magnitude-equal-is-not-above",
        "magnitude-below-all",
        "signed-between",
        "signed-equal-is-not-above",
        "signed-drops-negative",
    ],
)
def test_threshold_hand_computed(reading: str, tau: float, expected: list[list[float]]) -> None:
    out = mask.threshold_mask(X, A, tau, "abs_max", reading)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_signed_is_the_default_reading() -> None:
    cond = MaskCondition(rule="threshold", threshold=0.3)
    assert cond.reading == "signed"
    np.testing.assert_array_equal(mask.apply_condition(X, A, cond), mask.threshold_mask(X, A, 0.3))
    np.testing.assert_array_equal(mask.threshold_mask(X, A, 0.3), [[0.0, 0.0], [0.0, 5.0]])


def test_signed_scores_ignore_a_larger_negative_peak() -> None:
    """A / max A, not A / max|A|: the strongest positive bin scores 1 whatever the negatives."""
    a = np.array([[-10.0, 1.0], [0.5, 0.05]])
    np.testing.assert_allclose(mask.threshold_scores(a, "signed"), [[-10.0, 1.0], [0.5, 0.05]])
    np.testing.assert_allclose(mask.threshold_scores(a, "magnitude"), [[1.0, 0.1], [0.05, 0.005]])
    assert (
        mask.kept_bins(-np.ones((2, 2)), 0.0, "signed").sum() == 0
    )  # nothing positive: nothing kept


@pytest.mark.parametrize("how", ["abs_max", "minmax", "tanh"], ids=["abs_max", "minmax", "tanh"])
def test_threshold_extremes(how: str, rng: np.random.Generator) -> None:
    x = rng.standard_normal((7, 5))
    a = rng.standard_normal((7, 5))
    a[2, 3] = 0.0
    product = mask.attribution_x_input(x, a, how)
    # tau = 0 drops only the bins of score 0, which the product zeroes too: the bin A = 0 (|A|
    # read) or the minimum of A (min-max of A, where the product's factor is 0 as well)
    plain = "magnitude" if how == "abs_max" else "signed"
    np.testing.assert_array_equal(mask.threshold_mask(x, a, 0.0, how, plain), product)
    for reading in ("signed", "magnitude"):
        np.testing.assert_array_equal(
            mask.threshold_mask(x, a, 1.0, how, reading), np.zeros((7, 5))
        )
    if how == "abs_max":  # signed, tau = 0: the positive bins of the product
        np.testing.assert_array_equal(
            mask.threshold_mask(x, a, 0.0, how), np.where(a > 0, product, 0)
        )


def test_threshold_zeroes_exactly_the_weak_bins(rng: np.random.Generator) -> None:
    x = rng.standard_normal((20, 8)) + 3.0  # no zero inputs
    a = rng.standard_normal((20, 8))
    for reading, score in (("magnitude", np.abs(a) / np.abs(a).max()), ("signed", a / a.max())):
        out = mask.threshold_mask(x, a, 0.1, "abs_max", reading)
        weak = score <= 0.1
        assert weak.any() and (~weak).any()
        assert (out[weak] == 0).all() and (out[~weak] != 0).all()
    signed, magnitude = (mask.kept_bins(a, 0.1, r).sum() for r in ("signed", "magnitude"))
    assert 0 < signed < magnitude  # the signed reading keeps a subset


def test_condition_names_carry_reading_pathway_and_control() -> None:
    thr = MaskCondition("integrated_gradients", rule="threshold", threshold=0.1)
    assert thr.name == "integrated_gradients/traversal/threshold:signed@0.1"  # the default
    seen = MaskCondition("integrated_gradients", "classification", "threshold", 0.1)
    assert seen.name == "integrated_gradients/seen-classification/threshold:signed@0.1"
    mag = MaskCondition("saliency", "traversal", "threshold", 0.2, reading="magnitude")
    assert mag.name == "saliency/traversal/threshold:magnitude@0.2"
    ctl = MaskCondition("gradient_shap", "classification", maps="shuffled")
    assert ctl.name == "gradient_shap/seen-classification/product/shuffled"


def test_shuffled_threshold_keeps_the_own_count_of_the_donor_best_bins(
    rng: np.random.Generator,
) -> None:
    x = rng.standard_normal((12, 6)) + 3.0
    own = rng.standard_normal((12, 6))
    donor = rng.standard_normal((5, 6))  # shorter: repeated cyclically to 12 frames
    cond = MaskCondition(rule="threshold", threshold=0.1)
    out = mask.shuffled_condition(x, own, donor, cond)
    k = int(mask.kept_bins(own, 0.1).sum())
    fitted = np.resize(donor, (12, 6))
    np.testing.assert_array_equal(fitted[5:10], donor)
    assert np.count_nonzero(out) == k
    best = np.argsort(-fitted.ravel(), kind="stable")[:k]
    expected = np.zeros(x.size)
    expected[best] = (x * fitted / np.abs(fitted).max()).ravel()[best]
    np.testing.assert_allclose(out.ravel(), expected, rtol=1e-6)


def test_shuffled_product_and_moore_use_the_donor_map(rng: np.random.Generator) -> None:
    x = rng.standard_normal((9, 4))
    own = rng.standard_normal((9, 4))
    donor = rng.standard_normal((20, 4))  # longer: cut to 9 frames
    product = mask.shuffled_condition(x, own, donor, MaskCondition())
    np.testing.assert_allclose(product, mask.attribution_x_input(x, donor[:9]), rtol=1e-6)
    moore = MaskCondition(rule="moore", top_fraction=0.1)
    np.testing.assert_allclose(
        mask.shuffled_condition(x, own, donor, moore),
        mask.moore_replace(x, donor[:9], 0.1),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="donor map has 3 bins"):
        mask.shuffled_condition(x, own, donor[:, :3], MaskCondition())


def test_kept_fraction_per_rule() -> None:
    a = np.array([[1.0, -2.0], [0.0, 4.0]])
    assert mask.kept_fraction(a, MaskCondition(rule="threshold", threshold=0.2)) == 0.5
    magnitude = MaskCondition(rule="threshold", threshold=0.2, reading="magnitude")
    assert mask.kept_fraction(a, magnitude) == 0.75
    assert mask.kept_fraction(a, MaskCondition()) == 0.75  # the zero bin is zeroed by the product
    assert (
        mask.kept_fraction(np.ones((10, 20)), MaskCondition(rule="moore", top_fraction=0.01))
        == 0.99
    )


def test_saliency_x_input_and_layer_average() -> None:
    s3 = np.array([[0.0, 1.0], [0.5, 0.5]])
    s4 = np.array([[1.0, 1.0], [0.0, 0.25]])
    avg = mask.layer_average([s4, s3])
    np.testing.assert_allclose(avg, [[0.5, 1.0], [0.25, 0.375]])
    np.testing.assert_allclose(mask.saliency_x_input(X, avg), [[1.0, 3.0], [1.0, 1.875]])


#: Moore-neighbourhood means of arange(9).reshape(3, 3), worked out bin by bin.
MOORE_3X3 = [[8 / 3, 14 / 5, 10 / 3], [18 / 5, 4.0, 22 / 5], [14 / 3, 26 / 5, 16 / 3]]


def test_moore_means_3x3_corners_edges_centre() -> None:
    np.testing.assert_allclose(
        mask.moore_means(np.arange(9.0).reshape(3, 3)), MOORE_3X3, rtol=1e-12
    )


def test_moore_replace_uses_original_values_of_replaced_neighbours() -> None:
    x = np.arange(9.0).reshape(3, 3)
    a = np.zeros((3, 3))
    a[0, 0], a[0, 1] = 2.0, 1.0  # two adjacent bins, both replaced
    out = mask.moore_replace(x, a, top_fraction=2 / 9)
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
    out = mask.moore_replace(x, a, top_fraction=5 / 20)
    expected = x.copy()
    for pos, value in picks.items():
        expected[pos] = value
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # only 2 of the top 25% have positive relevance: only those are replaced
    a2 = -np.ones((4, 5))
    a2[3, 4], a2[2, 1] = 3.0, 1.0
    out2 = mask.moore_replace(x, a2, top_fraction=0.25)
    expected2 = x.copy()
    expected2[3, 4], expected2[2, 1] = picks[(3, 4)], picks[(2, 1)]
    np.testing.assert_allclose(out2, expected2, rtol=1e-12)


def test_moore_replace_counts_top_half_percent() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 64))
    a = rng.random((200, 64))
    changed = mask.moore_replace(x, a) != x
    assert changed.sum() == 64  # 0.5% of 12800 bins
    top = np.argsort(-a.ravel())[:64]
    assert set(np.flatnonzero(changed)) == set(top)


def test_moore_single_bin_keeps_value() -> None:
    np.testing.assert_array_equal(
        mask.moore_replace(np.array([[3.0]]), np.array([[1.0]]), 1.0), [[3.0]]
    )


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
        "product": lambda: mask.attribution_x_input(x, a, "minmax"),
        "threshold": lambda: mask.threshold_mask(x, a, 0.3, "minmax"),
        "moore": lambda: mask.moore_replace(x, a, 0.1),
    }[cond.rule]()
    out = mask.apply_condition(x, a, cond, "minmax")
    assert out.dtype == np.float32 and out.shape == (10, 6)
    np.testing.assert_array_equal(out, direct)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: mask.apply_condition(X, A, BOGUS, "abs_max"), "unknown rule 'bogus'"),
        (lambda: mask.threshold_mask(X, A[:1], 0.1), "shape"),
        (lambda: mask.threshold_mask(X, A, 1.5), "in \\[0, 1\\]"),
        (lambda: mask.attribution_x_input(X, np.array([[np.nan, 1.0], [0.0, 1.0]])), "non-finite"),
        (lambda: mask.normalise(A, "l2"), "unknown 'l2'"),  # type: ignore[arg-type]
        (lambda: mask.moore_replace(X[0], A[0]), "\\(T, F\\)"),
        (lambda: mask.layer_average([A, A[:1]]), "different shapes"),
    ],
    ids=["rule", "shape", "tau", "nan", "how", "ndim", "layer-shapes"],
)
def test_bad_input_is_named(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
