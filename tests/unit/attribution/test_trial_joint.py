"""Trial explanations that add up: the joint decomposition's two maps sum to
s(x_a, x_b) - s(x'_a, x'_b) on ECAPA-TDNN, with s(x) and s(x') returned; the one-sided maps
store their own s(x) and s(x'), and the two one-sided sums do not add up to the pair's change."""

from __future__ import annotations

import pytest
import torch

from tests.support.speaker_models import narrow_ecapa
from voxray.attribution.trial import attribute_joint, attribute_trials, embed, trial_scores
from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier

PARAMS = AttributionConfig(ig_steps=64, internal_batch_size=256, baseline="zeros")


@pytest.fixture(scope="module")
def model() -> SpeakerClassifier:
    return narrow_ecapa()


def _pair(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 20, 40, generator=g), torch.randn(3, 24, 40, generator=g)


def test_joint_maps_add_up_to_the_pair_score_change(model: SpeakerClassifier) -> None:
    torch.set_num_threads(1)
    xa, xb = _pair(1)
    res = attribute_joint(model, xa, xb, PARAMS)
    torch.testing.assert_close(res.score, trial_scores(model, xa, embed(model, xb)))
    total = res.maps_a.flatten(1).sum(1) + res.maps_b.flatten(1).sum(1)
    delta = res.score - res.baseline_score
    assert (delta.abs() > 1e-3).all()
    assert float(((total - delta).abs() / delta.abs()).max()) < 0.01
    torch.testing.assert_close(res.completeness_error, (total - delta).abs() / delta.abs())


def test_a_cohort_pair_baseline_explains_the_score_against_an_impostor_trial(
    model: SpeakerClassifier,
) -> None:
    """A constant baseline on both sides is one input twice (s(x') = 1); a cohort pair of
    other utterances gives s(x') their score, and the maps still add up."""
    torch.set_num_threads(1)
    xa, xb = _pair(1)
    same = attribute_joint(model, xa, xb, AttributionConfig(ig_steps=8, baseline="ones"))
    torch.testing.assert_close(same.baseline_score, torch.ones(3))
    ca, cb = _pair(7)
    res = attribute_joint(model, xa, xb, PARAMS, baseline_a=ca[:, :20], baseline_b=cb)
    expected = trial_scores(model, ca[:, :20], embed(model, cb))
    torch.testing.assert_close(res.baseline_score, expected)
    # an untrained embedder scores every pair near 1, so the change is small (~0.01): the maps
    # add up to it within 1e-3 of the cosine score
    total = res.maps_a.flatten(1).sum(1) + res.maps_b.flatten(1).sum(1)
    gap = (total - (res.score - res.baseline_score)).abs()
    assert float(gap.max()) < 1e-3, gap


def test_one_sided_maps_store_their_scores(model: SpeakerClassifier) -> None:
    torch.set_num_threads(1)
    xa, xb = _pair(1)
    others = embed(model, xb)
    res = attribute_trials(model, xa, others, "integrated_gradients", PARAMS)
    torch.testing.assert_close(res.score, trial_scores(model, xa, others))
    base = trial_scores(model, torch.zeros_like(xa), others)
    torch.testing.assert_close(res.baseline_score, base)
    assert attribute_trials(model, xa, others, "saliency", PARAMS).baseline_score is None
