"""Map normalisation (Li et al. 2022 eqs. 8-9), max-abs scaling and the frequency profile, against
hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from voxray.attribution.normalise import abs_max, freq_profile, minmax, tanh_scale

S = [[0.0, 1.0], [2.0, 4.0]]  # min 0, max 4


@pytest.mark.parametrize("kind", ["numpy", "torch"], ids=["numpy", "torch"])
def test_minmax_and_tanh_scale_match_hand_values(kind: str) -> None:
    s = np.array(S) if kind == "numpy" else torch.tensor(S, dtype=torch.float64)
    hat = [[0.0, 0.25], [0.5, 1.0]]
    np.testing.assert_allclose(np.asarray(minmax(s)), hat)
    expected = [[0.0, math.tanh(1.25)], [math.tanh(2.5), math.tanh(5.0)]]  # tanh(5 * hat / 1)
    np.testing.assert_allclose(np.asarray(tanh_scale(s)), expected, rtol=1e-12)
    expected_g2 = [[0.0, math.tanh(0.5)], [math.tanh(1.0), math.tanh(2.0)]]
    np.testing.assert_allclose(np.asarray(tanh_scale(s, gamma=2.0)), expected_g2, rtol=1e-12)


def test_normalisation_is_per_item_over_time_and_frequency() -> None:
    a = torch.tensor([S, [[-1.0, 1.0], [3.0, -3.0]]], dtype=torch.float64)  # (2, T=2, F=2)

    def t(rows: list[list[float]]) -> torch.Tensor:
        return torch.tensor(rows, dtype=torch.float64)

    torch.testing.assert_close(minmax(a)[1], t([[1 / 3, 2 / 3], [1.0, 0.0]]))
    torch.testing.assert_close(abs_max(a)[1], t([[1 / 3, 1 / 3], [1.0, 1.0]]))
    torch.testing.assert_close(abs_max(a)[0], t([[0.0, 0.25], [0.5, 1.0]]))


@pytest.mark.parametrize("fn", [minmax, tanh_scale, abs_max], ids=["minmax", "tanh", "abs_max"])
def test_constant_and_zero_maps_normalise_to_zero(fn) -> None:
    assert np.all(fn(np.full((3, 4), 2.5 if fn is not abs_max else 0.0)) == 0)
    assert torch.all(fn(torch.zeros(2, 3, 4)) == 0)


def test_freq_profile_is_mean_abs_over_frames_summing_to_one(rng: np.random.Generator) -> None:
    a = np.array([[1.0, -2.0, 0.0], [-3.0, 2.0, 1.0]])  # mean |A| per bin: 2, 2, 0.5
    np.testing.assert_allclose(freq_profile(a), [2 / 4.5, 2 / 4.5, 0.5 / 4.5], rtol=1e-6)
    big = rng.normal(size=(50, 40))
    prof = freq_profile(torch.from_numpy(big))
    assert prof.shape == (40,) and prof.dtype == np.float32
    assert abs(float(prof.sum()) - 1.0) < 1e-6 and np.all(prof > 0)


def test_freq_profile_of_a_zero_map_is_uniform() -> None:
    np.testing.assert_allclose(freq_profile(np.zeros((5, 4))), np.full(4, 0.25))


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        freq_profile(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="minmax"):
        minmax(np.zeros(5))
