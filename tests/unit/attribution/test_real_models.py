"""Every registered method end to end on the real speaker models (narrow widths): ECAPA-TDNN
(C = 64, T = 100 frames of 80 bins) and ResNet34SE; the CAMs default to ECAPA's ``mfa`` and
ResNet's ``S4``."""

from __future__ import annotations

import pytest
import torch

from voxray.attribution import ATTRIBUTORS, attribute, method_pathways
from voxray.config import AttributionConfig, HeadConfig
from voxray.models.base import SpeakerClassifier
from voxray.models.ecapa_tdnn import EcapaTdnn
from voxray.models.heads import MarginHead
from voxray.models.resnet_se import ResNet34SE

PARAMS = AttributionConfig(ig_steps=16, shap_samples=4, internal_batch_size=32)
BOTH = ("traversal", "classification")
JOBS = [(m, p) for m in sorted(ATTRIBUTORS) for p in method_pathways(m, BOTH)]


def build(arch: str) -> SpeakerClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if arch == "ecapa":
            emb = EcapaTdnn(80, 64, 32, mfa_channels=192, attention_channels=16, se_channels=16)
        else:
            emb = ResNet34SE(80, 4, 32)
        return SpeakerClassifier(emb, MarginHead(32, 7, HeadConfig(kind="aam"))).eval()


@pytest.fixture(scope="module")
def ecapa() -> SpeakerClassifier:
    return build("ecapa")


@pytest.fixture(scope="module")
def resnet() -> SpeakerClassifier:
    return build("resnet")


@pytest.fixture(scope="module")
def utterances() -> torch.Tensor:
    return torch.randn(2, 100, 80, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(("method", "pathway"), JOBS, ids=[f"{m}-{p}" for m, p in JOBS])
def test_ecapa_end_to_end(
    ecapa: SpeakerClassifier, utterances: torch.Tensor, method: str, pathway: str
) -> None:
    res = attribute(ecapa, utterances, method, pathway, params=PARAMS)
    assert res.maps.shape == utterances.shape
    assert torch.isfinite(res.maps).all() and res.maps.abs().max() > 0
    if pathway != "traversal":
        assert res.target.shape == (2,)


@pytest.mark.parametrize(
    "method",
    ["grad_cam_pp", "layer_cam", "score_cam", "integrated_gradients", "deeplift"],
    ids=["grad_cam_pp", "layer_cam", "score_cam", "ig", "deeplift"],
)
def test_resnet_end_to_end(
    resnet: SpeakerClassifier, utterances: torch.Tensor, method: str
) -> None:
    pathway = method_pathways(method, ("classification",))[0]
    res = attribute(resnet, utterances, method, pathway, params=PARAMS)
    assert res.maps.shape == utterances.shape and torch.isfinite(res.maps).all()


@pytest.mark.parametrize(
    ("arch", "layer"), [("ecapa", "mfa"), ("resnet", "S4")], ids=["ecapa-mfa", "resnet-S4"]
)
def test_cam_default_layer(
    request: pytest.FixtureRequest, utterances: torch.Tensor, arch: str, layer: str
) -> None:
    model = request.getfixturevalue(arch)
    default = attribute(model, utterances, "layer_cam", "cam")
    p = AttributionConfig(cam_layers=(layer,))
    named = attribute(model, utterances, "layer_cam", "cam", params=p)
    torch.testing.assert_close(default.maps, named.maps)
    spec = ("block3+mfa",) if arch == "ecapa" else ("S3+S4",)
    p_several = AttributionConfig(cam_layers=spec)
    several = attribute(model, utterances, "layer_cam", "cam", params=p_several)
    assert several.maps.shape == utterances.shape
