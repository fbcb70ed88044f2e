"""Speaker models: the registry that turns a ``ModelConfig`` into an embedder or classifier.

``ModelConfig.arch`` picks the embedder; ``channels`` and ``embedding_dim`` are its base width
and output size (see each class); the ``MarginHead`` is built from ``ModelConfig.head``.
"""

from __future__ import annotations

from typing import Any, Callable

from voxray.config import ModelConfig
from voxray.models.alexnet import AlexNet
from voxray.models.base import SpeakerClassifier, SpeakerEmbedder
from voxray.models.bilstm import BiLstm
from voxray.models.campplus import CampPlus
from voxray.models.ecapa_tdnn import EcapaTdnn
from voxray.models.ge2e import Ge2eLstm
from voxray.models.heads import MarginHead
from voxray.models.resnet_se import ResNet34, ResNet34SE


def _ecapa(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    if cfg.mfa_channels:  # a checkpoint's recorded width (in options) wins over the config
        options = {"mfa_channels": cfg.mfa_channels, **options}
    return EcapaTdnn(input_dim, cfg.channels, cfg.embedding_dim, **options)


def _resnet(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    return ResNet34(input_dim, cfg.channels, cfg.embedding_dim, **options)


def _resnet_se(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    return ResNet34SE(input_dim, cfg.channels, cfg.embedding_dim, **options)


def _bilstm(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    return BiLstm(
        input_dim, cfg.channels, cfg.embedding_dim, bottleneck_dim=cfg.bottleneck_dim, **options
    )


def _alexnet(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    # AlexNet's conv widths are fixed (96..384); ``channels`` does not apply to it.
    return AlexNet(input_dim, cfg.embedding_dim, **options)


def _ge2e(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    return Ge2eLstm(input_dim, cfg.channels, cfg.embedding_dim, **options)


def _campplus(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    return CampPlus(input_dim, cfg.channels, cfg.embedding_dim, **options)


#: ``ModelConfig.arch`` -> builder ``(cfg, input_dim, **options) -> SpeakerEmbedder``.
MODELS: dict[str, Callable[..., SpeakerEmbedder]] = {
    "ecapa_tdnn": _ecapa,
    "resnet34": _resnet,
    "resnet34se": _resnet_se,
    "bilstm": _bilstm,
    "alexnet": _alexnet,
    "ge2e": _ge2e,
    "campplus": _campplus,
}


def build_embedder(cfg: ModelConfig, input_dim: int, **options: Any) -> SpeakerEmbedder:
    """The embedder for ``cfg.arch`` taking ``(B, T, input_dim)`` features.

    ``options`` are extra constructor arguments of that class (e.g. ``mfa_channels`` for ECAPA,
    ``input_frames`` for AlexNet), used by checkpoints that record them.

    Raises:
        KeyError: an unknown ``cfg.arch``, listing the valid ones.
    """
    if cfg.arch not in MODELS:
        valid = ", ".join(sorted(MODELS))
        raise KeyError(f"model.arch: unknown architecture {cfg.arch!r} (valid: {valid})")
    if cfg.bottleneck_dim and cfg.arch != "bilstm":
        raise ValueError(f"model.bottleneck_dim: only the bilstm has one, not {cfg.arch!r}")
    return MODELS[cfg.arch](cfg, input_dim, **options)


def build_classifier(
    cfg: ModelConfig, input_dim: int, num_classes: int, **options: Any
) -> SpeakerClassifier:
    """``build_embedder`` plus a ``MarginHead`` (``cfg.head``) over ``num_classes`` speakers."""
    embedder = build_embedder(cfg, input_dim, **options)
    return SpeakerClassifier(embedder, MarginHead(embedder.head_input_dim, num_classes, cfg.head))


__all__ = [
    "MODELS",
    "AlexNet",
    "BiLstm",
    "CampPlus",
    "EcapaTdnn",
    "Ge2eLstm",
    "MarginHead",
    "ResNet34",
    "ResNet34SE",
    "SpeakerClassifier",
    "SpeakerEmbedder",
    "build_classifier",
    "build_embedder",
]
