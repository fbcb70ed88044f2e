"""One profile per seed paper: each resolves and validates through the CLI, carries the set-up
issue 14 lists for its paper, names only registered methods, masks no unseen speaker with a
class-only map, and builds its model on its own features with a forward pass of the right shape."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import yaml

from voxray.attribution import get_attributor
from voxray.config import VoxrayConfig, load_config
from voxray.mask.pathway import map_pathway
from voxray.models import build_classifier

PAPERS = ("paper000", "paper001", "paper002", "paper003")


def _input_dim(cfg: VoxrayConfig) -> int:
    f = cfg.features
    return f.num_ceps if cfg.model.feature_kind == "mfcc" else f.num_mel_bins


@pytest.mark.parametrize("profile", PAPERS)
def test_profile_resolves_through_the_cli_and_builds(profile: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "voxray", "run", "--print-config", "--profile", profile],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    printed = yaml.safe_load(proc.stdout)
    cfg = load_config(profile=profile)
    assert printed["model"]["arch"] == cfg.model.arch and printed["profile"] == profile
    assert cfg.model.feature_kind in cfg.features.kinds
    for method in (*cfg.attribution.methods, *cfg.eval.faithfulness.methods):
        get_attributor(method)  # KeyError names an unknown method
    for cond in cfg.mask.conditions:
        assert map_pathway(cond, seen=False) == "traversal"
    model = build_classifier(cfg.model, _input_dim(cfg), 5).eval()
    frames = int(cfg.train.segment_s * 100)
    with torch.no_grad():
        logits = model(torch.randn(2, frames, _input_dim(cfg)))
    assert logits.shape == (2, 5)


def test_each_profile_is_its_paper_set_up() -> None:
    p0, p1, p2, p3 = (load_config(profile=p) for p in PAPERS)
    # Zhang et al. 2023: ECAPA-TDNN C=512 on MFCC, AAM, the five Captum methods, Table 2 with its
    # control
    assert (p0.model.arch, p0.model.channels, p0.model.feature_kind) == ("ecapa_tdnn", 512, "mfcc")
    assert p0.model.head.kind == "aam" and p0.attribution.baseline == "ones"
    assert set(p0.attribution.methods) == {
        "integrated_gradients",
        "gradient_shap",
        "shapley_sampling",
        "deeplift",
        "saliency",
    }
    rules = {
        (c.method, c.rule, c.threshold if c.rule == "threshold" else None, c.maps)
        for c in p0.mask.conditions
    }
    assert {
        ("integrated_gradients", "product", None, "own"),
        ("integrated_gradients", "threshold", 0.1, "own"),
        ("gradient_shap", "product", None, "own"),
        ("integrated_gradients", "product", None, "shuffled"),
    } <= rules
    # Li et al. 2022: ResNet34SE, AM-softmax, 80-dim fbank, the three CAMs, deletion/insertion,
    # multi-speaker
    assert (p1.model.arch, p1.model.head.kind, p1.features.num_mel_bins) == ("resnet34se", "am", 80)
    assert set(p1.attribution.methods) == {"grad_cam_pp", "score_cam", "layer_cam"}
    assert p1.eval.faithfulness.enabled and p1.eval.multispeaker.enabled
    assert set(p1.eval.multispeaker.cases) == {"A-B", "A-B-A", "B-A-B", "A-B-C"}
    # Sarvaš 2021: ResNet on 64-dim fbank, LRP composites, pixel flipping, its gender experiment
    assert (p2.model.arch, p2.features.num_mel_bins) == ("resnet34", 64)  # §5: no SE gates
    assert set(p2.attribution.methods) == {"lrp_0", "lrp_epsilon", "lrp_gamma"}
    assert (p2.attribution.lrp_epsilon, p2.attribution.lrp_gamma) == (0.5, 5.0)
    g = p2.eval.gender
    assert g.enabled and (g.lr, g.retrain_on, g.top_fraction) == (1e-4, "augmented", 0.005)
    # Lehmann & Stadelmann 2020: BiLSTM through Dense layers, combined margin, 4 s segments at 50%,
    # clustering scorers
    assert (p3.model.arch, p3.model.head.kind) == ("bilstm", "combined")
    h = p3.model.head
    assert (h.m1, h.m2, h.m3, h.scale) == (1.0, 0.05, 1e-4, 30.0)
    # trained through Dense(2C) -> Dense(bottleneck), embedded with lstm2's time mean
    assert p3.model.embedding_dim == 2 * p3.model.channels and p3.model.bottleneck_dim > 0
    assert p3.train.segment_s == p3.embed.segment_s == 4.0 and p3.embed.overlap == 0.5
    assert (p3.train.patience, p3.train.val_fraction) == (3, 0.1)  # 3.3's early stopping
    assert {"mean_cossim", "ahc", "dominant_sets"} <= set(p3.eval.scorers)
