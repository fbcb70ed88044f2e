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


#: (input_dim, channels, embedding_dim) of a model.
Sizes = tuple[int, int, int]


def narrow_ecapa(
    sizes: Sizes = (40, 16, 16), bottleneck: int = 8, num_classes: int = 5
) -> SpeakerClassifier:
    """ECAPA-TDNN of ``sizes`` (C channels, MFA 3C), attention and SE bottlenecks of
    ``bottleneck``."""
    channels = sizes[1]
    return seeded_classifier(
        lambda: EcapaTdnn(
            *sizes, mfa_channels=3 * channels, attention_channels=bottleneck, se_channels=bottleneck
        ),
        num_classes,
    )


def narrow_resnet(sizes: Sizes = (40, 4, 16), num_classes: int = 5) -> SpeakerClassifier:
    """ResNet34SE of ``sizes`` (C channels in its first stage)."""
    return seeded_classifier(lambda: ResNet34SE(*sizes), num_classes)
