"""build_embedder / build_classifier: every arch from its ModelConfig, errors for bad names."""

from __future__ import annotations

import pytest
import torch

from voxray.config import HeadConfig, ModelConfig
from voxray.models import (
    AlexNet,
    BiLstm,
    CampPlus,
    EcapaTdnn,
    Ge2eLstm,
    MarginHead,
    ResNet34,
    ResNet34SE,
    build_classifier,
    build_embedder,
)

CASES = [
    (ModelConfig(arch="ecapa_tdnn", channels=16, embedding_dim=8), EcapaTdnn, {"mfa_channels": 48}),
    (ModelConfig(arch="resnet34", channels=4, embedding_dim=8), ResNet34, {}),
    (ModelConfig(arch="resnet34se", channels=4, embedding_dim=8), ResNet34SE, {}),
    (ModelConfig(arch="bilstm", channels=4, embedding_dim=8), BiLstm, {}),
    (ModelConfig(arch="alexnet", embedding_dim=8), AlexNet, {"input_frames": 70}),
    (ModelConfig(arch="ge2e", channels=4, embedding_dim=8), Ge2eLstm, {}),
    (
        ModelConfig(arch="campplus", channels=8, embedding_dim=8),
        CampPlus,
        {"growth_rate": 4, "bn_size": 2, "m_channels": 4, "block_layers": [1, 1, 1]},
    ),
]


@pytest.mark.parametrize(("cfg", "cls", "options"), CASES, ids=[c[0].arch for c in CASES])
def test_build_each_arch(cfg: ModelConfig, cls: type, options: dict[str, int]) -> None:
    embedder = build_embedder(cfg, 40 if cfg.arch != "alexnet" else 80, **options)
    assert type(embedder) is cls and embedder.embedding_dim == 8
    classifier = build_classifier(cfg, embedder.input_dim, 5, **options).eval()
    assert isinstance(classifier.head, MarginHead) and classifier.num_classes == 5
    with torch.no_grad():
        x = torch.randn(2, 80, embedder.input_dim)
        assert classifier(x).shape == (2, 5) and classifier.embed(x).shape == (2, 8)
    # every named layer is one of the model's own modules (each model's test checks their order)
    layers = embedder.layers()
    assert layers and set(map(id, layers.values())) <= set(map(id, embedder.modules()))


def test_a_model_naming_no_layers_says_so() -> None:
    """A model class without ``layer_names`` (and no ``layers()`` of its own) fails with its
    name when CAM/LRP ask for a layer, instead of explaining nothing."""

    class Bare(EcapaTdnn):
        layer_names = ()

    with pytest.raises(NotImplementedError, match="Bare names no layers"):
        Bare(40, 8, 4, mfa_channels=12).layer("conv1")


def test_head_config_is_used() -> None:
    head_cfg = HeadConfig(kind="combined", m1=1.1, m2=0.1, m3=0.05, scale=16.0)
    cfg = ModelConfig(arch="bilstm", channels=4, embedding_dim=8, head=head_cfg)
    head = build_classifier(cfg, 10, 3).head
    assert head.kind == "combined" and head.margins == (1.1, 0.1, 0.05) and head.scale == 16.0


def test_unknown_arch_lists_valid_ones() -> None:
    valid = "alexnet, bilstm, campplus, ecapa_tdnn, ge2e, resnet34, resnet34se"
    with pytest.raises(KeyError, match=f"unknown architecture 'tdnn' .*{valid}"):
        build_embedder(ModelConfig(arch="tdnn"), 80)  # type: ignore[arg-type]  # invalid on purpose


def test_ecapa_aggregation_width_from_config() -> None:
    cfg = ModelConfig(arch="ecapa_tdnn", channels=16, embedding_dim=8, mfa_channels=48)
    assert build_embedder(cfg, 40).mfa.conv.out_channels == 48
    assert build_embedder(ModelConfig(channels=16), 40).mfa_channels == 1536  # the paper's M
    # a checkpoint's recorded width wins over the configuration
    assert build_embedder(cfg, 40, mfa_channels=24).mfa_channels == 24
    with pytest.raises(ValueError, match="mfa_channels: .*ecapa_tdnn only.*'resnet34se'"):
        ModelConfig(arch="resnet34se", mfa_channels=48)
