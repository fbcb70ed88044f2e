"""Tiny speaker models for tests: a 1-D TDNN embedder shaped like ECAPA (frame-level layers
``(B, C, T)``), a 2-D CNN embedder shaped like ResNet34SE (stage maps ``(B, C, F', T')``), and
a cosine-head classifier around either. Both follow ``SpeakerEmbedder`` (named ``layers()``
for CAM/LRP), use no in-place activations and call every module once per forward pass, and
run in milliseconds on a CPU.

``tiny_tdnn_classifier`` / ``tiny_cnn_classifier`` build them deterministically from a seed
(without touching the global random state) and give every BatchNorm non-trivial running
statistics and affine parameters, so eval-mode normalisation is not the identity.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from voxray.config import HeadConfig
from voxray.models.base import SpeakerClassifier, SpeakerEmbedder
from voxray.models.heads import MarginHead

#: variance floor of the statistics pooling (keeps sqrt's gradient finite).
STD_FLOOR = 1e-5


def _stats_pool(h: Tensor) -> Tensor:
    """``(B, C, T) -> (B, 2C)``: mean and standard deviation over time, concatenated."""
    mean = h.mean(dim=2)
    var = (h - mean.unsqueeze(2)).pow(2).mean(dim=2)
    return torch.cat([mean, var.clamp(min=STD_FLOOR).sqrt()], dim=1)


class StatsPool(nn.Module):
    """Statistics pooling over the last axis: ``(B, C, T) -> (B, 2C)``; a 2-D map
    ``(B, C, F', T')`` is flattened to ``(B, C F', T')`` first (ResNet's TSP)."""

    def forward(self, h: Tensor) -> Tensor:
        return _stats_pool(h.flatten(1, 2) if h.dim() == 4 else h)


class TdnnLayer(nn.Module):
    """``Conv1d (zero 'same' padding) -> ReLU -> BatchNorm1d``: ``(B, Cin, T) -> (B, Cout, T)``."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, dilation: int = 1) -> None:
        super().__init__()
        pad = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(cin, cout, kernel, dilation=dilation, padding=pad)
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm1d(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.relu(self.conv(x)))


class Gate(nn.Module):
    """Squeeze-excitation gate ``x * sigmoid(W mean_T(x))``: ``(B, C, T) -> (B, C, T)``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.sigmoid(self.fc(x.mean(dim=2))).unsqueeze(2)


class TinyTdnn(SpeakerEmbedder):
    """``(B, T, F) -> (B, D)``::

    conv1  TdnnLayer k=5                        (B, C, T)
    block1 TdnnLayer k=3 d=2                    (B, C, T)
    block2 TdnnLayer k=3 d=3 + SE gate          (B, C, T)
    mfa    TdnnLayer k=1 on cat(block1, block2) (B, M, T)
    pool   mean + std over time                 (B, 2M)
    fc     Linear                               (B, D)
    """

    layer_names = ("conv1", "block1", "block2", "mfa", "pool", "fc")

    def __init__(
        self, input_dim: int = 12, channels: int = 8, embedding_dim: int = 6, mfa_channels: int = 12
    ) -> None:
        super().__init__(input_dim, embedding_dim)
        self.conv1 = TdnnLayer(input_dim, channels, 5)
        self.block1 = TdnnLayer(channels, channels, 3, 2)
        self.block2 = nn.Sequential(TdnnLayer(channels, channels, 3, 3), Gate(channels))
        self.mfa = TdnnLayer(2 * channels, mfa_channels, 1)
        self.pool = StatsPool()
        self.fc = nn.Linear(2 * mfa_channels, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(x.transpose(1, 2))
        h1 = self.block1(h)
        h2 = self.block2(h1)
        h = self.mfa(torch.cat([h1, h2], dim=1))
        return self.fc(self.pool(h))


def _conv_stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class TinyCnn(SpeakerEmbedder):
    """``(B, T, F) -> (B, D)``, the spectrogram as a one-channel image ``(B, 1, F, T)``::

    stem Conv2d 3x3 c, BN, ReLU       (B, c,  F,   T)
    S1   Conv2d 3x3 c                 (B, c,  F,   T)
    S2   Conv2d 3x3 2c stride 2       (B, 2c, F/2, T/2)
    S3   Conv2d 3x3 4c stride 2       (B, 4c, F/4, T/4)
    pool mean + std over time of the (4c F/4) rows
    fc   Linear                       (B, D)
    """

    layer_names = ("S1", "S2", "S3", "pool", "fc")

    def __init__(self, input_dim: int = 12, channels: int = 4, embedding_dim: int = 6) -> None:
        super().__init__(input_dim, embedding_dim)
        self.stem = _conv_stage(1, channels, 1)
        self.S1 = _conv_stage(channels, channels, 1)
        self.S2 = _conv_stage(channels, 2 * channels, 2)
        self.S3 = _conv_stage(2 * channels, 4 * channels, 2)
        self.pool = StatsPool()
        bins = math.ceil(math.ceil(input_dim / 2) / 2)
        self.fc = nn.Linear(2 * 4 * channels * bins, embedding_dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.stem(x.transpose(1, 2).unsqueeze(1))
        h = self.S3(self.S2(self.S1(h)))
        return self.fc(self.pool(h))


def scramble_batchnorm(model: nn.Module, generator: torch.Generator) -> None:
    """Random running statistics and affine parameters for every BatchNorm of ``model``."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                m.weight.copy_(0.7 + 0.6 * torch.rand(n, generator=generator))
                m.bias.copy_(0.2 * torch.randn(n, generator=generator))


def tiny_classifier(
    embedder_cls: type[SpeakerEmbedder], num_classes: int = 5, seed: int = 0, **kwargs: int
) -> SpeakerClassifier:
    """``embedder_cls(**kwargs)`` with a cosine (AAM, margin-free forward) head, in eval mode,
    initialised from ``seed`` without changing the global random state."""
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        embedder = embedder_cls(**kwargs)
        head = MarginHead(embedder.embedding_dim, num_classes, HeadConfig(kind="aam", scale=10.0))
        model = SpeakerClassifier(embedder, head)
    scramble_batchnorm(model, torch.Generator().manual_seed(seed + 1))
    return model.eval()


def tiny_tdnn_classifier(num_classes: int = 5, seed: int = 0, **kwargs: int) -> SpeakerClassifier:
    """A ``TinyTdnn`` (input_dim 12, C 8, M 12, D 6 unless given) with a cosine head."""
    return tiny_classifier(TinyTdnn, num_classes, seed, **kwargs)


def tiny_cnn_classifier(num_classes: int = 5, seed: int = 0, **kwargs: int) -> SpeakerClassifier:
    """A ``TinyCnn`` (input_dim 12, c 4, D 6 unless given) with a cosine head."""
    return tiny_classifier(TinyCnn, num_classes, seed, **kwargs)
