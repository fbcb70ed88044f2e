"""The class-leak measure: leave-one-out nearest centroid, against scikit-learn."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import LeaveOneOut, cross_val_predict
from sklearn.neighbors import NearestCentroid

from voxray.eval.leak import nearest_centroid_hits, pooled


def test_leave_one_out_hits_equal_sklearns_nearest_centroid(rng):
    y = np.repeat(np.arange(6), 5)
    x = rng.normal(0, 1, (30, 8)) + 0.8 * rng.normal(0, 1, (6, 8))[y]
    ref = cross_val_predict(NearestCentroid(), x, y, cv=LeaveOneOut()) == y
    np.testing.assert_array_equal(nearest_centroid_hits(x, y), ref)


def test_a_class_code_is_recovered_and_noise_is_not(rng):
    y = np.repeat(np.arange(6), 4)
    noise = [rng.normal(0, 1, (50, 10)) for _ in y]
    coded = [f + 3.0 * np.eye(10)[c] for f, c in zip(noise, y, strict=True)]  # a bin per class
    assert nearest_centroid_hits(pooled(coded), y).mean() == 1.0
    assert nearest_centroid_hits(pooled(noise), y).mean() < 0.5


def test_a_class_of_one_cannot_be_recovered():
    x = np.array([[0.0], [0.1], [5.0]])
    np.testing.assert_array_equal(nearest_centroid_hits(x, ["a", "a", "b"]), [True, True, False])
