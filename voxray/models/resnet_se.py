"""ResNet34SE of Li et al. 2022 Table 1 (the Sunine voxceleb/v2 recipe) and the plain ResNet34 of
Sarvaš 2021 §5 (Conv2d and BatchNorm2d blocks, no SE; 64-d fbanks, ``input_dim=64``): one
topology, the plain model the same blocks with their SE gate off.

Topology for base width c (32) and F bins (80), the spectrogram as a one-channel image with
frequency as height (ResNet34: BasicBlock for SEBasicBlock)::

    (B, T, F) -> (B, 1, F, T) -> stem  Conv2d 3x3 c, stride 1, BN, ReLU      (B, c,  F,   T)
                             -> S1  3 x SEBasicBlock(c),  stride 1           (B, c,  F,   T)
                             -> S2  4 x SEBasicBlock(2c), stride 2           (B, 2c, F/2, T/2)
                             -> S3  6 x SEBasicBlock(4c), stride 2           (B, 4c, F/4, T/4)
                             -> S4  3 x SEBasicBlock(8c), stride 2           (B, 8c, F/8, T/8)
                             -> pool TSP: mean, std over time of the (8c * F/8) map
                                                                             (B, 2 * 8c * F/8)
                             -> fc  Linear -> embedding                      (B, D)

With c = 32, F = 80: S4 is 256 x 10 x T/8 and the pooled vector 2 x 2560 = 5120 (Table 1).
Strided sizes round up (``ceil(n / 2)``, a 3x3 kernel with padding 1).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from voxray.models.base import SpeakerEmbedder
from voxray.models.inputs import check_features

#: SE bottleneck reduction, as in Sunine's / voxceleb_trainer's SEBasicBlock.
SE_REDUCTION = 8
#: variance floor of the statistics pooling (keeps sqrt's gradient finite on constant maps).
STD_FLOOR = 1e-5


class SELayer2d(nn.Module):
    """Squeeze-excitation over channels: ``(B, C, H, W) -> (B, C, H, W)``.

    ``s = sigmoid(fc2(relu(fc1(mean_HW(x)))))`` ``(B, C)``; output is the **product** ``x * s``.
    """

    def __init__(self, channels: int, reduction: int = SE_REDUCTION) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, max(1, channels // reduction))
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(max(1, channels // reduction), channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = self.sigmoid(self.fc2(self.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * s[:, :, None, None]


class SEBasicBlock(nn.Module):
    """``relu2(se(bn2(conv2(relu1(bn1(conv1(x)))))) + shortcut(x))`` — a **sum** with the
    shortcut (identity, or Conv2d 1x1 stride s + BN when the shape changes). With ``se=False``
    the gate is the identity: ResNet's plain BasicBlock, with the same parameter names.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, se: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se: nn.Module = SELayer2d(channels) if se else nn.Identity()
        self.relu2 = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.se(self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x))))))
        return self.relu2(out + self.shortcut(x))


class TemporalStatsPool(nn.Module):
    """TSP: ``(B, C, F', T') -> (B, 2 * C * F')``, the **concatenation** of the mean and the std
    over time of the map flattened to ``C * F'`` rows (channel-major, then frequency).
    """

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1, 2)
        mean = x.mean(dim=2)
        var = (x - mean.unsqueeze(2)).pow(2).mean(dim=2)
        return torch.cat([mean, var.clamp(min=STD_FLOOR).sqrt()], dim=1)


def _stage(in_channels: int, channels: int, blocks: int, stride: int, se: bool) -> nn.Sequential:
    layers = [SEBasicBlock(in_channels, channels, stride, se)]
    layers += [SEBasicBlock(channels, channels, se=se) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet34(SpeakerEmbedder):
    """Plain ResNet34 (no SE) with TSP: ``(B, T, F) -> (B, embedding_dim)``, Sarvaš 2021 §5.

    Args:
        input_dim: feature bins F (80 fbank in Li et al. 2022, 64 in Sarvaš 2021).
        channels: base width c of the stem and S1 (32); stages are c, 2c, 4c, 8c.
        embedding_dim: D of the dense layer (256).
    """

    #: S1..S4: ``(B, C, F', T')`` maps; pool ``(B, 2 C F')``; fc ``(B, D)``.
    layer_names = ("S1", "S2", "S3", "S4", "pool", "fc")

    blocks_per_stage = (3, 4, 6, 3)
    strides = (1, 2, 2, 2)
    #: whether each block gates its residual with squeeze-excitation (ResNet34SE).
    se: ClassVar[bool] = False

    def __init__(self, input_dim: int = 80, channels: int = 32, embedding_dim: int = 256) -> None:
        super().__init__(input_dim, embedding_dim)
        self.channels = channels
        widths = [channels * 2**i for i in range(4)]
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        ins = [channels] + widths[:-1]
        specs = zip(ins, widths, self.blocks_per_stage, self.strides, strict=True)
        self.S1, self.S2, self.S3, self.S4 = (_stage(i, w, n, s, self.se) for i, w, n, s in specs)
        self.pool = TemporalStatsPool()
        self.pooled_dim = 2 * widths[-1] * self.output_bins(input_dim)
        self.fc = nn.Linear(self.pooled_dim, embedding_dim)

    @classmethod
    def output_bins(cls, input_dim: int) -> int:
        """F' after the strided stages: each stride-2 3x3 conv (padding 1) gives ``ceil(n / 2)``."""
        bins = input_dim
        for stride in cls.strides:
            bins = math.ceil(bins / stride)
        return bins

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, F) -> (B, D)``."""
        check_features(x, type(self).__name__, self.input_dim)
        h = self.stem(x.transpose(1, 2).unsqueeze(1))
        h = self.S4(self.S3(self.S2(self.S1(h))))
        return self.fc(self.pool(h))


class ResNet34SE(ResNet34):
    """ResNet34 with SE blocks and TSP (Li et al. 2022 Table 1): ``(B, T, F) -> (B, D)``."""

    se = True
