"""Every registered method on a small CAM++ (random weights, few channels): the Captum methods
through Traversal and the trial pathway on the head-less model (as ``--model campplus`` loads
it), the CAMs on the FCM's 2-D maps and on D-TDNN layers and LRP on a CAM++ with a class head;
LRP-0 conserves relevance through the context-aware masking gate. And the rule for methods not
defined for a model: refused (``left_out_jobs`` + ``refuse_asked``) when asked for, left out
with a reason (``defined_methods`` / ``explainable``) when they come from a default."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from tests.unit.attribution.conftest import SMALL
from voxray.attribution import ATTRIBUTORS, Pathway, attribute, get_attributor
from voxray.attribution.support import (
    defined_methods,
    left_out_jobs,
    refuse_asked,
)
from voxray.attribution.trial import TRIAL_METHODS, attribute_trials, embed
from voxray.cli import main
from voxray.config import ConfigError, ModelConfig
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.models.campplus import CampPlus
from voxray.models.ge2e import Ge2eLstm
from voxray.models.heads import MarginHead
from voxray.pipeline.analyses.explain import explainable

OPTIONS = {"growth_rate": 4, "bn_size": 2, "m_channels": 4, "block_layers": [2, 1, 1]}
CFG = ModelConfig(arch="campplus", channels=8, embedding_dim=6)


def _randomise_bn(model: torch.nn.Module) -> torch.nn.Module:
    gen = torch.Generator().manual_seed(3)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
    return model.eval().double()


@pytest.fixture(scope="module")
def headless() -> SpeakerClassifier:
    torch.manual_seed(0)
    embedder = CampPlus(16, CFG.channels, CFG.embedding_dim, **OPTIONS)
    return _randomise_bn(SpeakerClassifier(embedder, MarginHead(6, 0, CFG.head)))


@pytest.fixture(scope="module")
def headed() -> SpeakerClassifier:
    torch.manual_seed(1)
    return _randomise_bn(build_classifier(CFG, 16, 4, **OPTIONS))


@pytest.fixture
def feats() -> torch.Tensor:
    return torch.randn(2, 30, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)


def _check(maps: torch.Tensor, feats: torch.Tensor) -> None:
    assert maps.shape == feats.shape
    assert torch.isfinite(maps).all() and maps.abs().sum() > 0


def test_every_method_is_defined_for_campplus(headless: SpeakerClassifier) -> None:
    assert left_out_jobs(sorted(ATTRIBUTORS), (), headless, has_head=True) == []
    assert defined_methods(sorted(ATTRIBUTORS), headless) == (sorted(ATTRIBUTORS), {})


TRAVERSAL = sorted(m for m, c in ATTRIBUTORS.items() if Pathway.TRAVERSAL in c.pathways)


@pytest.mark.parametrize("method", TRAVERSAL)
def test_captum_methods_traversal(
    headless: SpeakerClassifier, feats: torch.Tensor, method: str
) -> None:
    result = attribute(headless, feats, method, Pathway.TRAVERSAL, params=SMALL)
    _check(result.maps, feats)
    if method in ("integrated_gradients", "deeplift"):
        assert result.completeness_error is not None


@pytest.mark.parametrize("method", TRIAL_METHODS)
def test_trial_methods(headless: SpeakerClassifier, feats: torch.Tensor, method: str) -> None:
    others = embed(headless, feats.flip(0))
    result = attribute_trials(headless, feats, others, method, SMALL)
    _check(result.maps, feats)


CAMS = sorted(m for m, c in ATTRIBUTORS.items() if Pathway.CAM in c.pathways)


@pytest.mark.parametrize("layers", [("fcm",), ("fcm2",), ("block2",), ("out",), ("fcm", "out")])
@pytest.mark.parametrize("method", CAMS)
def test_cams_on_fcm_maps_and_dtdnn_layers(
    headed: SpeakerClassifier, feats: torch.Tensor, method: str, layers: tuple[str, ...]
) -> None:
    params = dataclasses.replace(SMALL, cam_layers=layers)
    result = attribute(headed, feats, method, Pathway.CAM, params=params)
    assert result.maps.shape == feats.shape and torch.isfinite(result.maps).all()


LRP = sorted(m for m, c in ATTRIBUTORS.items() if Pathway.LRP in c.pathways)


@pytest.mark.parametrize("method", LRP)
def test_lrp(headed: SpeakerClassifier, feats: torch.Tensor, method: str) -> None:
    _check(attribute(headed, feats, method, Pathway.LRP, params=SMALL).maps, feats)


def test_lrp0_conserves_through_the_masking_gate(feats: torch.Tensor) -> None:
    """Zero biases and BatchNorm shifts: LRP-0's input relevance sums to the explained logit
    (the gate's Sigmoid is a constant, so nothing leaks into the context path)."""
    torch.manual_seed(2)
    model = build_classifier(CFG, 16, 4, **OPTIONS).eval().double()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_var.uniform_(0.5, 1.5)  # mean 0, bias 0: no shift
        if isinstance(m, torch.nn.Conv1d) and m.bias is not None:
            torch.nn.init.zeros_(m.bias)
    result = attribute(model, feats, "lrp_0", Pathway.LRP, params=SMALL)
    with torch.no_grad():
        logits = model(feats)
    explained = logits.gather(1, result.target[:, None])[:, 0]
    torch.testing.assert_close(result.maps.sum(dim=(1, 2)), explained, rtol=1e-6, atol=1e-8)


def test_asked_for_is_refused_default_is_left_out_with_reason() -> None:
    lstm = SpeakerClassifier(Ge2eLstm(8, 4, 4), MarginHead(4, 0, ModelConfig().head)).eval()
    asked = ["saliency", "deeplift", "grad_cam_pp", "lrp_epsilon"]
    with pytest.raises(ConfigError, match="attribution.methods: deeplift, grad_cam_pp"):
        refuse_asked(left_out_jobs(asked, (), lstm, True), {"attribution.methods"}, lstm, "ge2e")
    kept, left_out = defined_methods(asked, lstm)
    assert kept == ["saliency"] and set(left_out) == {"deeplift", "grad_cam_pp", "lrp_epsilon"}
    assert "LSTM" in left_out["deeplift"] and "convolution" in left_out["grad_cam_pp"]
    kept, left_out = explainable(asked, labelled=False, model=lstm)
    assert kept == ["saliency"] and "Ge2eLstm" in left_out["lrp_epsilon"]
    assert get_attributor("saliency").pathways  # still registered, nothing removed


def test_a_headless_model_needs_the_enrolment_head_for_class_score_pathways(
    headless: SpeakerClassifier,
) -> None:
    """Without eval.enrolment a CAM, LRP and the classification pathway have no class score to
    explain: refused when the key that brings them was set, left out with the reason when it
    holds its default; with a head (or the enrolment head) nothing is left out."""
    methods, pathways = ["saliency", "layer_cam", "lrp_epsilon"], ["traversal", "classification"]
    assert left_out_jobs(methods, pathways, headless, has_head=True) == []
    left_out = left_out_jobs(methods, pathways, headless, has_head=False)
    assert {(lo.what, lo.key) for lo in left_out} == {
        ("saliency/classification", "attribution.pathways"),
        ("layer_cam/cam", "attribution.methods"),
        ("lrp_epsilon/lrp", "attribution.methods"),
    }
    assert all("eval.enrolment.enabled=true" in lo.why for lo in left_out)
    refuse_asked(left_out, set(), headless, "campplus")  # all defaults: nothing refused
    with pytest.raises(ConfigError, match=r"^attribution.pathways: saliency/classification not"):
        refuse_asked(left_out, {"attribution.pathways"}, headless, "campplus")
    with pytest.raises(ConfigError, match=r"attribution.methods: layer_cam/cam, lrp_epsilon/lrp"):
        refuse_asked(left_out, {"attribution.methods", "attribution.ig_steps"}, headless, "c")


def test_asked_for_cam_on_campplus_without_enrolment_is_refused_by_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    args = ["attribute", "--data-root", str(tmp_path), "--out", str(out), "--model", "campplus"]
    assert main([*args, "attribution.methods=[saliency,layer_cam]"]) == 2
    err = capsys.readouterr().err
    assert "attribution.methods: layer_cam/cam not defined for model 'campplus'" in err
    assert "eval.enrolment.enabled=true" in err
    assert not out.exists() or not any(out.iterdir())  # nothing was started or written
