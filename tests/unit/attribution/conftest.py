"""Tiny float64 models and inputs shared by the attribution tests."""

from __future__ import annotations

import pytest
import torch

from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier
from voxray.testing.tiny_models import tiny_cnn_classifier, tiny_tdnn_classifier

#: small settings so every method runs in milliseconds on the tiny models.
SMALL = AttributionConfig(
    ig_steps=16,
    shap_samples=4,
    shapley_samples=2,
    patch_frames=6,
    patch_bins=4,
    occlusion_frames=5,
    occlusion_bins=4,
    internal_batch_size=16,
)


@pytest.fixture(scope="module")
def tdnn() -> SpeakerClassifier:
    return tiny_tdnn_classifier(seed=0).double()


@pytest.fixture(scope="module")
def cnn() -> SpeakerClassifier:
    return tiny_cnn_classifier(seed=0).double()


@pytest.fixture
def feats() -> torch.Tensor:
    """(B=3, T=24, F=12) float64."""
    return torch.randn(3, 24, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


@pytest.fixture
def target() -> torch.Tensor:
    return torch.tensor([0, 2, 4])


@pytest.fixture
def params() -> AttributionConfig:
    """Small settings (16 IG steps, 4 GradientShap draws, 6x4 Shapley patches, 5x4 occlusion)."""
    return SMALL
