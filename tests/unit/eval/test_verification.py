"""EER / minDCF / DET: against the output checker's scikit-learn EER (the tests' one reference),
a brute-force minDCF, and hand-worked cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from voxray.check import sklearn_eer
from voxray.eval.verification import (
    compute_eer,
    compute_min_dcf,
    det_curve,
    eer_threshold,
    verification_metrics,
)

SIZES = [(5, 9), (60, 40), (300, 2700), (1000, 120)]
SIZE_IDS = [f"{t}tar-{n}non" for t, n in SIZES]


def _brute_min_dcf(scores, labels, p_target, c_miss, c_fa) -> float:
    """Loop over every candidate threshold (each distinct score, plus 'reject all')."""
    tar, non = scores[labels == 1], scores[labels == 0]
    best = np.inf
    for t in [*np.unique(scores), np.inf]:
        p_miss = np.mean(tar < t)
        p_fa = np.mean(non >= t)
        best = min(best, c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target))
    return best / min(c_miss * p_target, c_fa * (1 - p_target))


def _trials(rng, n_tar, n_non, decimals=None):
    scores = np.r_[rng.normal(1.0, 1.0, n_tar), rng.normal(-0.5, 1.2, n_non)]
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    labels = np.r_[np.ones(n_tar, int), np.zeros(n_non, int)]
    perm = rng.permutation(scores.size)
    return scores[perm], labels[perm]


@pytest.mark.parametrize("decimals", [None, 1], ids=["continuous", "ties"])
@pytest.mark.parametrize(("n_tar", "n_non"), SIZES, ids=SIZE_IDS)
def test_eer_equals_the_sklearn_reference(rng, n_tar, n_non, decimals):
    scores, labels = _trials(rng, n_tar, n_non, decimals)
    eer = compute_eer(scores, labels)
    assert eer == pytest.approx(sklearn_eer(scores, labels), abs=1e-12)
    assert 0.0 < eer < 0.5


@pytest.mark.parametrize(
    ("p_target", "c_miss", "c_fa"),
    [(0.01, 1, 1), (0.05, 1, 1), (0.5, 1, 1), (0.1, 10, 1)],
    ids=["p0.01", "p0.05", "p0.5", "p0.1-cmiss10"],
)
@pytest.mark.parametrize(("n_tar", "n_non"), SIZES, ids=SIZE_IDS)
def test_min_dcf_matches_brute_force(rng, n_tar, n_non, p_target, c_miss, c_fa):
    scores, labels = _trials(rng, n_tar, n_non, decimals=1)
    expected = _brute_min_dcf(scores, labels, p_target, c_miss, c_fa)
    got = compute_min_dcf(scores, labels, p_target, c_miss=c_miss, c_fa=c_fa)
    assert got == pytest.approx(expected, abs=1e-12)
    assert 0.0 <= got <= 1.0


@pytest.mark.parametrize(
    ("scores", "labels", "eer"),
    [
        ([0.8, 0.7, 0.3, 0.2], [1, 1, 0, 0], 0.0),
        ([0.8, 0.7, 0.3, 0.2], [0, 0, 1, 1], 1.0),
        ([0.4, 0.4, 0.4, 0.4, 0.4], [1, 0, 1, 0, 0], 0.5),
        # points (fnr, fpr): (1,0) (.5,0) (.5,.5) -> crossing exactly at the third point
        ([0.8, 0.6, 0.4, 0.2], [1, 0, 1, 0], 0.5),
        # the tie at 0.5 moves fnr .5 -> 0 and fpr 0 -> .5 together: crossing halfway, .25
        ([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0], 0.25),
        # points (1,0) (2/3,0) (1/3,0) (1/3,1/2): fnr is flat where fpr passes 1/3
        ([0.9, 0.8, 0.7, 0.6, 0.5], [1, 1, 0, 1, 0], 1 / 3),
    ],
    ids=["perfect", "inverted", "all-equal", "four-trials", "tie", "flat-miss"],
)
def test_eer_hand_cases(scores, labels, eer):
    for fn in (compute_eer, sklearn_eer):  # the reference too: it checks every output folder
        assert fn(np.array(scores), np.array(labels)) == pytest.approx(eer, abs=1e-12)


def test_eer_is_invariant_to_trial_order_and_monotone_transforms(rng):
    scores, labels = _trials(rng, 50, 70, decimals=1)
    perm = rng.permutation(scores.size)
    eer = compute_eer(scores, labels)
    assert compute_eer(scores[perm], labels[perm]) == pytest.approx(eer, abs=1e-12)
    assert compute_eer(np.exp(scores), labels) == pytest.approx(eer, abs=1e-12)


@pytest.mark.parametrize(
    ("p_target", "c_miss", "expected"),
    [(0.5, 1.0, 1 / 3), (0.1, 10.0, (1 / 3) / 0.9)],
    ids=["p0.5", "p0.1-cmiss10"],
)
def test_min_dcf_hand_case(p_target, c_miss, expected):
    # operating points (fnr, fpr): (1,0) (2/3,0) (1/3,0) (1/3,.5) (0,.5) (0,1); the best is
    # (1/3, 0): cost c_miss * p_target / 3, normalised by min(c_miss * p, 1 - p).
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = np.array([1, 1, 0, 1, 0])
    assert compute_min_dcf(scores, labels, p_target, c_miss=c_miss) == pytest.approx(expected)


def test_min_dcf_perfect_and_inverted():
    scores = np.array([0.9, 0.8, 0.2, 0.1])
    assert compute_min_dcf(scores, np.array([1, 1, 0, 0]), 0.01) == 0.0
    # inverted scores: no threshold beats the trivial systems
    assert compute_min_dcf(scores, np.array([0, 0, 1, 1]), 0.01) == pytest.approx(1.0)


def test_det_curve_matches_sklearn_roc(rng):
    scores, labels = _trials(rng, 40, 60, decimals=1)
    fpr, fnr, thresholds = det_curve(scores, labels)
    sk_fpr, sk_tpr, sk_thr = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(fnr, 1.0 - sk_tpr, atol=1e-12)
    np.testing.assert_array_equal(thresholds, sk_thr)
    assert thresholds[0] == np.inf and np.all(np.diff(thresholds) < 0)


def test_eer_threshold_sits_at_the_crossing(rng):
    scores, labels = _trials(rng, 80, 120, decimals=1)
    t = eer_threshold(scores, labels)
    tar, non = scores[labels == 1], scores[labels == 0]
    assert np.mean(tar < t) <= np.mean(non >= t)
    stricter = scores[scores > t].min()
    assert np.mean(tar < stricter) > np.mean(non >= stricter)
    assert eer_threshold([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0]) == 0.5


def test_verification_metrics_names_and_values(rng):
    scores, labels = _trials(rng, 30, 50)
    metrics = verification_metrics(scores, labels, (0.01, 0.05))
    assert list(metrics) == ["eer", "mindcf_p0.01", "mindcf_p0.05"]
    assert metrics["eer"] == compute_eer(scores, labels)
    assert metrics["mindcf_p0.05"] == compute_min_dcf(scores, labels, 0.05)


@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        (np.zeros(120), np.ones(120), "got 120 targets and 0 non-targets"),
        (np.zeros(7), np.zeros(7), "got 0 targets and 7 non-targets"),
        (np.zeros(0), np.zeros(0), "got none"),
        ([0.1, np.nan, 0.3], [1, 0, 1], "NaN or infinite .*trial index 1"),
        ([0.1, 0.2, 0.3], [1, 0], "3 scores but 2 labels"),
        ([0.1, 0.2, 0.3], [1, 0, 2], "trial index 2 has label 2"),
        (np.zeros((2, 2)), np.zeros((2, 2)), "1-D"),
    ],
    ids=["only-targets", "only-nontargets", "empty", "nan", "lengths", "label-2", "2d"],
)
def test_bad_input_raises_clearly(scores, labels, message):
    for fn in (compute_eer, det_curve, eer_threshold, lambda s, y: compute_min_dcf(s, y, 0.01)):
        with pytest.raises(ValueError, match=message):
            fn(scores, labels)


def test_single_class_message_names_the_metric():
    with pytest.raises(ValueError, match=r"^EER needs both target \(1\) and non-target \(0\)"):
        compute_eer(np.zeros(120), np.ones(120))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"p_target": 0.0}, "p_target"),
        ({"p_target": 1.0}, "p_target"),
        ({"p_target": 0.1, "c_fa": 0.0}, "costs must be positive"),
    ],
    ids=["p0", "p1", "cfa0"],
)
def test_min_dcf_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compute_min_dcf([0.1, 0.2], [0, 1], **kwargs)
