"""The per-method attribution benchmark measures every registered method on its own pathway,
and compares the Captum methods with their literal per-dimension loop."""

from __future__ import annotations

import torch

from bench import attribute as bench_attribute
from voxray.attribution import ATTRIBUTORS
from voxray.attribution.captum_methods import CaptumAttributor
from voxray.config import AttributionConfig


def test_every_method_gets_a_row() -> None:
    model = bench_attribute.frozen_model(16, "cpu")
    x = torch.randn(2, 24, 80)
    # CAMs read block3 (C channels): Score-CAM runs one forward per channel, 1536 at the MFA
    params = AttributionConfig(
        ig_steps=4, shap_samples=2, internal_batch_size=8, baseline="ones", cam_layers=["block3"]
    )
    roof = bench_attribute.roofline(model, x, 4)
    for method, cls in sorted(ATTRIBUTORS.items()):
        row = bench_attribute.method_row(model, x, method, params, roof, dims=1)
        assert row["method"] == method and row["utt_per_s"] > 0 and row["per_utterance_per_s"] > 0
        assert ("literal_per_s" in row) == issubclass(cls, CaptumAttributor), method
        assert ("roofline_fraction" in row) == (cls.gradient_passes(params) is not None)
    # literal Traversal costs one call per embedding dimension: far slower than the fast path
    ig = bench_attribute.method_row(model, x, "integrated_gradients", params, roof, dims=2)
    assert ig["literal_ratio"] > 5
