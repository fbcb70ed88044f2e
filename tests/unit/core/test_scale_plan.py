"""The scale plan counts what the vox1/vox2 profiles run, from the profiles themselves: its
FLOP and memory tables are the model's, every training and attribution method is counted in
the precision the profile runs, and changing a profile changes the plan by the expected amount
(so bench/README.md cannot silently go stale)."""

from __future__ import annotations

import dataclasses

import pytest

from bench import scale_plan
from voxray.config import load_config

VOX1 = scale_plan.CORPORA[0]


@pytest.mark.parametrize("channels", [512, 1024])
def test_flop_table_matches_the_model(channels: int) -> None:
    counted = scale_plan.flops_per_audio_second(channels)
    assert counted == pytest.approx(scale_plan.FLOPS_PER_AUDIO_S[channels], rel=2e-3)
    fwd, attr, train = counted
    assert attr == pytest.approx(2 * fwd, rel=0.01)  # input gradient: one more pass
    assert train == pytest.approx(3 * fwd, rel=0.01)  # plus the weight gradients


def test_memory_table_matches_the_model() -> None:
    assert scale_plan.row_frame_bytes(512) == pytest.approx(
        scale_plan.ROW_FRAME_BYTES[512], rel=0.01
    )


def test_vox1_counts_every_training_and_method() -> None:
    cfg = load_config(profile="vox1")
    w = scale_plan.count_work(VOX1, cfg)
    conditions = {c.name for c in cfg.mask.conditions}
    # the base model and retrain.seeds (3) retrainings of each condition and its control
    assert w.trainings == 1 + 3 * len(conditions) == 19
    assert w.attr_precision == cfg.attribution.precision == "fp32"
    # the mask conditions' methods (IG-50 and GradientShap-20) run on every utterance
    a = cfg.attribution
    every = (a.ig_steps + a.shap_samples) * VOX1.hours * 3600
    assert every < w.attr_grad_audio_s < 1.2 * every
    # a 256-row IG call of C=512 at VoxCeleb1's mean length does not fit half of an A10G
    assert w.ibs_gb > scale_plan.GPU_MEMORY_GB / 2 and w.fitted_rows < a.internal_batch_size


def test_profile_changes_change_the_plan() -> None:
    cfg = load_config(profile="vox1")
    base = scale_plan.plan(VOX1, 1, cfg=cfg)
    a = cfg.attribution
    bf16 = dataclasses.replace(cfg, attribution=dataclasses.replace(a, precision="bf16"))
    ratio = scale_plan.PEAK_TFLOPS["bf16"] / scale_plan.PEAK_TFLOPS["fp32"]
    assert scale_plan.plan(VOX1, 1, cfg=bf16)["attribution_h"] == pytest.approx(
        base["attribution_h"] / ratio
    )
    # one condition fewer: it and its shuffled-map control (mask.controls adds it back)
    fewer = dataclasses.replace(
        cfg, mask=dataclasses.replace(cfg.mask, conditions=cfg.mask.conditions[:-2])
    )
    one_condition = base["retrain_h"] / len(cfg.mask.conditions)
    assert scale_plan.plan(VOX1, 1, cfg=fewer)["retrain_h"] == pytest.approx(
        base["retrain_h"] - 2 * one_condition
    )
    steps = dataclasses.replace(cfg, attribution=dataclasses.replace(a, ig_steps=2 * a.ig_steps))
    added = a.ig_steps * VOX1.hours * 3600 * scale_plan.FLOPS_PER_AUDIO_S[512][1] * 1e9
    rate = scale_plan.PEAK_TFLOPS["fp32"] * scale_plan.GPU_FRACTION * 1e12
    assert scale_plan.plan(VOX1, 1, cfg=steps)["attribution_h"] >= base["attribution_h"] + (
        added / (rate * scale_plan.DATA_EFFICIENCY) / 3600
    ) * (1 - 1e-9)


def test_projection_scales_with_gpus() -> None:
    one = scale_plan.plan(VOX1, 1)
    eight = scale_plan.plan(VOX1, 8)
    assert eight["attribution_h"] == pytest.approx(one["attribution_h"] / 8)
    assert eight["features_h"] == pytest.approx(one["features_h"] / 8)
    assert one["train_h"] / eight["train_h"] == pytest.approx(8 * scale_plan.DDP_EFFICIENCY[8])
