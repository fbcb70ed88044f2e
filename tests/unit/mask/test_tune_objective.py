"""The sweep's objective cannot be won by masking less: each configuration is scored against the
same maps permuted over their bins (same values, same kept fraction, random places)."""

from __future__ import annotations

import numpy as np
import pytest

from voxray.config import MaskCondition, TuneConfig
from voxray.mask import kept_bins, kept_fraction
from voxray.testing.tiny_models import tiny_tdnn_classifier
from voxray.train.tune import TuneData, check_sweep, eer_against_random, permuted_maps

COND = MaskCondition("integrated_gradients", "traversal", "threshold", 0.1)


def _data(rng: np.random.Generator) -> TuneData:
    feats, trials = {}, []
    for s in range(4):
        centre = rng.standard_normal(12)
        for u in range(3):
            feats[f"s{s}/v/{u}"] = (centre + 0.3 * rng.standard_normal((30, 12))).astype(np.float32)
    utts = sorted(feats)
    for i, a in enumerate(utts):
        for b in utts[i + 1 :]:
            trials.append((int(a[:2] == b[:2]), a, b))
    return TuneData({}, None, feats, trials, {}, {}, 30)


def test_permuted_maps_keep_values_and_kept_fraction(rng: np.random.Generator) -> None:
    maps = {f"u{i}": rng.standard_normal((20, 8)) for i in range(5)}
    ref = permuted_maps(maps, seed=0)
    for u, a in maps.items():
        np.testing.assert_array_equal(np.sort(ref[u], axis=None), np.sort(a, axis=None))
        assert not np.array_equal(ref[u], a)
        assert kept_bins(ref[u], 0.1).sum() == kept_bins(a, 0.1).sum()
        assert kept_fraction(ref[u], COND) == kept_fraction(a, COND)
    assert all(np.array_equal(ref[u], b) for u, b in permuted_maps(maps, seed=0).items())


def test_a_mask_that_keeps_every_bin_alike_scores_no_gap(rng: np.random.Generator) -> None:
    """Uniform maps keep every bin with the same factor: own and random masks are the same
    input, so the gap is exactly 0 whatever the masked EER; informative maps can go below."""
    data = _data(rng)
    model = tiny_tdnn_classifier(seed=0).eval()
    flat = {u: np.ones_like(x) for u, x in data.test_feats.items()}
    scores = eer_against_random(model, data, flat, COND, "abs_max", seed=0)
    assert scores["eer_gap"] == 0.0 and scores["eer"] == scores["eer_random"]
    noisy = {u: rng.standard_normal(x.shape) for u, x in data.test_feats.items()}
    scores = eer_against_random(model, data, noisy, COND, "abs_max", seed=0)
    assert scores["eer_gap"] == pytest.approx(scores["eer"] - scores["eer_random"])


def test_the_sweep_refuses_class_only_methods() -> None:
    check_sweep(TuneConfig())
    with pytest.raises(ValueError, match="tune.methods: layer_cam"):
        check_sweep(TuneConfig(methods=("saliency", "layer_cam")))


@pytest.mark.parametrize("objective", ["deletion_gap", "deletion_auc"])
def test_deletion_objectives_refuse_a_tau_sweep(objective: str) -> None:
    """Deletion curves remove every bin in map order, so tau never enters them: a sweep over
    several taus is refused when the config is built, naming the key."""
    assert TuneConfig(objective=objective, taus=(0.1,)).objective == objective
    with pytest.raises(ValueError, match=r"tune.taus: .*no tau enters"):
        TuneConfig(objective=objective, taus=(0.05, 0.1))
    assert TuneConfig(objective="eer_gap", taus=(0.05, 0.1)).taus == (0.05, 0.1)
