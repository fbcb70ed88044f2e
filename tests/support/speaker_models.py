"""The real speaker models at narrow widths, for tests that need ECAPA-TDNN's or ResNet34SE's
structure but not their size: deterministic from a seed, without touching the global random
state, so every test file that builds one gets the same weights."""

from __future__ import annotations

from collections.abc import Callable

import torch

from voxray.config import HeadConfig
from voxray.models.base import SpeakerClassifier, SpeakerEmbedder
from voxray.models.ecapa_tdnn import EcapaTdnn
from voxray.models.heads import MarginHead
from voxray.models.resnet_se import ResNet34SE


def seeded_classifier(
    embedder: Callable[[], SpeakerEmbedder], num_classes: int, seed: int = 0
) -> SpeakerClassifier:
    """``embedder()`` with an AAM head over ``num_classes``, in eval mode, both initialised from
    ``seed`` (the embedder first)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        emb = embedder()
        head = MarginHead(emb.embedding_dim, num_classes, HeadConfig(kind="aam"))
        return SpeakerClassifier(emb, head).eval()


def narrow_ecapa(
    input_dim: int = 40,
    channels: int = 16,
    embedding_dim: int = 16,
    bottleneck: int = 8,
    num_classes: int = 5,
) -> SpeakerClassifier:
    """ECAPA-TDNN with ``channels`` C, MFA 3C, attention and SE bottlenecks of ``bottleneck``."""
    return seeded_classifier(
        lambda: EcapaTdnn(
            input_dim,
            channels,
            embedding_dim,
            mfa_channels=3 * channels,
            attention_channels=bottleneck,
            se_channels=bottleneck,
        ),
        num_classes,
    )


def narrow_resnet(
    input_dim: int = 40, channels: int = 4, embedding_dim: int = 16, num_classes: int = 5
) -> SpeakerClassifier:
    """ResNet34SE with ``channels`` in its first stage."""
    return seeded_classifier(lambda: ResNet34SE(input_dim, channels, embedding_dim), num_classes)
