"""The shared 'top p% of bins' ordering: counts, stable descending order, positive-only."""

from __future__ import annotations

import numpy as np
import pytest

from voxray.mask import count_for_fraction, descending_order, rank_positions, top_positive


@pytest.mark.parametrize(
    "fraction, n, expected",
    [(0.005, 12800, 64), (0.25, 10, 3), (0.0, 50, 0), (1.0, 7, 7), (0.001, 400, 0)],
    ids=["half-percent", "half-up", "zero", "all", "rounds-down"],
)
def test_count_for_fraction(fraction: float, n: int, expected: int) -> None:
    assert count_for_fraction(fraction, n) == expected


def test_count_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match="fraction"):
        count_for_fraction(1.2, 10)


def test_descending_order_breaks_ties_row_major() -> None:
    v = np.array([[1.0, 3.0], [3.0, 2.0]])
    np.testing.assert_array_equal(descending_order(v), [1, 2, 3, 0])


def test_top_positive_stops_at_positive_bins() -> None:
    v = np.array([[0.5, -1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(top_positive(v, 1.0), [3, 0])
    np.testing.assert_array_equal(top_positive(v, 0.25), [3])


def test_rank_positions_inverts_a_partial_order() -> None:
    ranks = rank_positions(np.array([4, 1]), 5)
    np.testing.assert_array_equal(ranks, [5, 1, 5, 5, 0])
