"""The trial pathway: IG completeness on a trained tiny model, Saliency against a finite
difference of ds/dx, one trial alone against the same trial inside a batch, and every method
against a direct Captum call on a closure for one trial (the naive way)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import DeepLift, InputXGradient, IntegratedGradients, Occlusion, Saliency

from voxray.attribution.trial import TRIAL_METHODS, TrialScore, attribute_trials, embed
from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier
from voxray.testing.tiny_models import tiny_tdnn_classifier
from voxray.train.local import fit_classifier

from .conftest import SMALL


@pytest.fixture(scope="module")
def trained() -> SpeakerClassifier:
    """A tiny TDNN trained for a few epochs on five synthetic 'speakers' (a per-speaker
    spectral tilt plus noise), in float64."""
    g = torch.Generator().manual_seed(0)
    tilt = torch.randn(5, 1, 12, generator=g)
    labels = torch.arange(5).repeat_interleave(8)
    x = tilt[labels] + 0.5 * torch.randn(40, 30, 12, generator=g)
    model = tiny_tdnn_classifier(seed=1)
    losses = fit_classifier(model, x, labels, epochs=3, batch_size=8, lr=0.01, seed=0)
    assert losses[-1] < losses[0]  # it learnt something: the test is on a trained model
    return model.double().eval()


def _pair(n: int, frames: int = 24, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, frames, 12, generator=g, dtype=torch.float64)
    b = torch.randn(n, frames + 5, 12, generator=g, dtype=torch.float64)
    return a, b


def test_ig_completeness_on_a_trained_model(trained: SpeakerClassifier) -> None:
    a, b = _pair(4)
    others = embed(trained, b)
    params = AttributionConfig(ig_steps=256, baseline="zeros", internal_batch_size=1024)
    res = attribute_trials(trained, a, others, "integrated_gradients", params)
    score = TrialScore(trained.embedder, others)
    with torch.no_grad():
        delta = score(a) - score(torch.zeros_like(a))
    sums = res.maps.flatten(1).sum(1)
    # ReLU kinks leave a quadrature error of a few per mille at 256 Gauss-Legendre steps
    assert torch.allclose(sums, delta, rtol=1e-2, atol=1e-5), (sums, delta)
    assert res.completeness_error is not None
    assert float(res.completeness_error.max()) < 1e-2
    # the recorded error is the one the attribute stage records for IG
    expected = (sums - delta).abs() / delta.abs()
    assert torch.allclose(res.completeness_error, expected)


def test_saliency_is_the_absolute_finite_difference_of_the_score(tdnn: SpeakerClassifier) -> None:
    a, b = _pair(2)
    others = embed(tdnn, b)
    maps = attribute_trials(tdnn, a, others, "saliency", SMALL).maps
    score = TrialScore(tdnn.embedder, others)
    eps = 1e-5
    for item, t, f in [(0, 0, 0), (0, 11, 5), (1, 23, 11), (1, 7, 3)]:
        up, down = a.clone(), a.clone()
        up[item, t, f] += eps
        down[item, t, f] -= eps
        with torch.no_grad():
            fd = (score(up)[item] - score(down)[item]) / (2 * eps)
        assert maps[item, t, f].item() == pytest.approx(abs(fd.item()), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("method", TRIAL_METHODS)
def test_one_trial_alone_equals_it_inside_a_batch(tdnn: SpeakerClassifier, method: str) -> None:
    a, b = _pair(6)
    others = embed(tdnn, b)
    # the same utterance explained against several fixed sides, and other trials beside it
    feats = torch.cat([a[:1].repeat(3, 1, 1), a[1:]])
    fixed = torch.cat([others[:3], others[1:]])
    batch = attribute_trials(tdnn, feats, fixed, method, SMALL)
    for i in (0, 2, 5, 7):
        alone = attribute_trials(tdnn, feats[i : i + 1], fixed[i : i + 1], method, SMALL)
        assert torch.allclose(alone.maps[0], batch.maps[i], rtol=1e-9, atol=1e-12), i
        if alone.completeness_error is not None:
            assert batch.completeness_error is not None
            assert torch.allclose(alone.completeness_error[0], batch.completeness_error[i])
    # different fixed sides give different maps for the same explained utterance
    assert not torch.allclose(batch.maps[0], batch.maps[1])


@pytest.mark.parametrize("method", TRIAL_METHODS)
def test_each_method_equals_captum_on_a_one_trial_closure(
    tdnn: SpeakerClassifier, method: str
) -> None:
    a, b = _pair(3)
    others = embed(tdnn, b)
    res = attribute_trials(tdnn, a, others, method, SMALL)
    for i in range(3):
        x = a[i : i + 1].clone().requires_grad_(method != "occlusion")
        base = torch.ones_like(x)
        module = TrialScore(tdnn.embedder, others[i : i + 1])

        def fn(z: torch.Tensor, e: torch.Tensor = others[i]) -> torch.Tensor:
            return F.cosine_similarity(tdnn.embedder(z), e.expand(z.shape[0], -1), dim=1)

        if method == "integrated_gradients":
            ref = IntegratedGradients(fn).attribute(x, baselines=base, n_steps=SMALL.ig_steps)
        elif method == "saliency":
            ref = Saliency(fn).attribute(x)  # Captum's default: abs=True
        elif method == "input_x_gradient":
            ref = InputXGradient(fn).attribute(x)
        elif method == "deeplift":
            ref = DeepLift(module).attribute(x, baselines=base)
        else:
            window = (SMALL.occlusion_frames, SMALL.occlusion_bins)
            ref = Occlusion(fn).attribute(
                x, sliding_window_shapes=window, strides=window, baselines=base
            )
        # Captum's Occlusion sums its window differences in float32 whatever the input's dtype
        tol = 1e-6 if method == "occlusion" else 1e-10
        assert torch.allclose(res.maps[i], ref[0].detach().double(), rtol=1e-6, atol=tol), method


def test_unknown_method_and_mismatched_sides_are_refused(tdnn: SpeakerClassifier) -> None:
    a, b = _pair(2)
    others = embed(tdnn, b)
    with pytest.raises(ValueError, match="no trial pathway"):
        attribute_trials(tdnn, a, others, "gradient_shap", SMALL)
    with pytest.raises(ValueError, match="2 explained sides but 1"):
        attribute_trials(tdnn, a, others[:1], "saliency", SMALL)
