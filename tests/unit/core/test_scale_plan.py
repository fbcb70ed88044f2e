"""The scale plan's FLOP table is the model's (so bench/README.md cannot go stale silently),
and its projections divide the way the plan says they do."""

from __future__ import annotations

import pytest

from bench import scale_plan


@pytest.mark.parametrize("channels", [512, 1024])
def test_flop_table_matches_the_model(channels: int) -> None:
    counted = scale_plan.flops_per_audio_second(channels)
    assert counted == pytest.approx(scale_plan.FLOPS_PER_AUDIO_S[channels], rel=2e-3)
    fwd, attr, train = counted
    assert attr == pytest.approx(2 * fwd, rel=0.01)  # input gradient: one more pass
    assert train == pytest.approx(3 * fwd, rel=0.01)  # plus the weight gradients


def test_projection_scales_with_gpus() -> None:
    vox1 = scale_plan.CORPORA[0]
    one = scale_plan.plan(vox1, 1, gpu_tflops=25.0, feature_x_rt_per_node=300.0)
    eight = scale_plan.plan(vox1, 8, gpu_tflops=25.0, feature_x_rt_per_node=300.0)
    assert eight["ig_h"] == pytest.approx(one["ig_h"] / 8)
    assert eight["features_h"] == pytest.approx(one["features_h"] / 8)
    assert one["retrain_h"] / eight["retrain_h"] == pytest.approx(8 * scale_plan.DDP_EFFICIENCY[8])
    # IG-50 on VoxCeleb1 at C=512: 352 h x 3600 s x 50 steps x 2.077 GFLOP at 25 TFLOP/s x 0.95
    assert one["ig_h"] == pytest.approx(352 * 3600 * 50 * 2.077e9 / (25e12 * 0.95) / 3600, rel=1e-6)
