"""ECAPA-TDNN (Desplanques et al. 2020; Zhang et al. 2023 Table 1), layer for layer as SpeechBrain's
``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN`` so that its checkpoints load exactly
(see ``speechbrain_convert.py``), written as small modules of plain ``nn.Conv1d`` /
``nn.BatchNorm1d`` / ``nn.ReLU`` / ``nn.Sigmoid`` / ``nn.Tanh`` / ``nn.Softmax`` objects so that
LRP rules can be attached by module type.

Topology for C channels (C=512: 6.2 M parameters, C=1024: 14.7 M in the paper)::

    (B, T, F) -> transpose -> conv1  TDNN k=5                       (B, C, T)
                           -> block1 SE-Res2Block k=3 d=2           (B, C, T)
                           -> block2 SE-Res2Block k=3 d=3           (B, C, T)
                           -> block3 SE-Res2Block k=3 d=4           (B, C, T)
              cat(block1, block2, block3) -> mfa TDNN k=1           (B, M, T)
                           -> pool   attentive statistics pooling   (B, 2M, 1)
                           -> pool_bn BatchNorm1d                   (B, 2M, 1)
                           -> fc     Conv1d k=1                     (B, D, 1) -> (B, D)

MFA is the channel **concatenation** of the three block outputs (3C) fed to one k=1 TDNN; M is
1536 in the paper for both C (SpeechBrain's published C=1024 model uses 3C = 3072).

Every convolution pads "same" with reflection (``padding_mode="reflect"``), which is what
SpeechBrain's ``Conv1d(padding="same")`` does with ``F.pad(..., mode="reflect")``; reflection
needs the padding to be shorter than the input, hence ``min_frames``. No module is applied
twice and no activation is in-place, so forward hooks see every intermediate once.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from voxray.models.base import SpeakerEmbedder
from voxray.models.inputs import check_features


def _same_conv(
    in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1
) -> nn.Conv1d:
    """A Conv1d with reflect "same" padding (odd kernels): ``(B, Cin, T) -> (B, Cout, T)``."""
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
    return nn.Conv1d(
        in_channels,
        out_channels,
        kernel_size,
        dilation=dilation,
        padding=dilation * (kernel_size - 1) // 2,
        padding_mode="reflect",
    )


class TdnnBlock(nn.Module):
    """``conv -> relu -> norm`` (SpeechBrain's TDNNBlock order: BatchNorm *after* the ReLU).

    ``(B, Cin, T) -> (B, Cout, T)``. Sequential, nothing summed or multiplied. With the ReLU in
    between, the (eval-mode, affine) BatchNorm cannot fold into this conv; it folds into the
    input side of whatever layer consumes the block's output.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, dilation: int = 1
    ) -> None:
        super().__init__()
        self.conv = _same_conv(in_channels, out_channels, kernel_size, dilation)
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.relu(self.conv(x)))


class Res2NetBlock(nn.Module):
    """Res2Net hierarchical split: ``(B, C, T) -> (B, C, T)``.

    The input is split along channels into ``scale`` chunks ``x_0..x_{s-1}`` of ``C/scale``.
    ``y_0 = x_0`` (identity), ``y_1 = K_1(x_1)``, ``y_i = K_i(x_i + y_{i-1})`` for i >= 2 (a
    **sum** of the chunk and the previous branch output), each ``K_i`` a TdnnBlock; the output
    is the **concatenation** ``[y_0, ..., y_{s-1}]`` along channels.
    """

    def __init__(
        self, channels: int, scale: int = 8, kernel_size: int = 3, dilation: int = 1
    ) -> None:
        super().__init__()
        if channels % scale != 0:
            raise ValueError(f"channels ({channels}) not divisible by the Res2Net scale ({scale})")
        width = channels // scale
        self.scale = scale
        self.blocks = nn.ModuleList(
            TdnnBlock(width, width, kernel_size, dilation) for _ in range(scale - 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        chunks = torch.chunk(x, self.scale, dim=1)
        outs = [chunks[0]]
        y = self.blocks[0](chunks[1])
        outs.append(y)
        for i in range(2, self.scale):
            y = self.blocks[i - 1](chunks[i] + y)
            outs.append(y)
        return torch.cat(outs, dim=1)


class SEBlock(nn.Module):
    """Squeeze-excitation: ``(B, C, T) -> (B, C, T)``.

    ``s = sigmoid(conv2(relu(conv1(mean_T(x)))))`` is ``(B, C, 1)``; the output is the
    element-wise **product** ``s * x`` (s broadcast over time).
    """

    def __init__(self, channels: int, bottleneck: int = 128) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, bottleneck, 1)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv1d(bottleneck, channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean(dim=2, keepdim=True)
        s = self.sigmoid(self.conv2(self.relu(self.conv1(s))))
        return s * x


class SERes2Block(nn.Module):
    """ECAPA's SE-Res2Block: ``(B, Cin, T) -> (B, C, T)``.

    ``out = se(tdnn2(res2net(tdnn1(x)))) + residual`` — a **sum** with ``residual = x`` (or
    ``shortcut(x)``, a k=1 Conv1d, when ``Cin != C``; ``None`` otherwise, as in SpeechBrain).
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        kernel_size: int = 3,
        dilation: int = 1,
        scale: int = 8,
        se_channels: int = 128,
    ) -> None:
        super().__init__()
        self.tdnn1 = TdnnBlock(in_channels, channels, 1)
        self.res2net = Res2NetBlock(channels, scale, kernel_size, dilation)
        self.tdnn2 = TdnnBlock(channels, channels, 1)
        self.se = SEBlock(channels, se_channels)
        self.shortcut = nn.Conv1d(in_channels, channels, 1) if in_channels != channels else None

    def forward(self, x: Tensor) -> Tensor:
        residual = self.shortcut(x) if self.shortcut is not None else x
        return self.se(self.tdnn2(self.res2net(self.tdnn1(x)))) + residual


class AttentiveStatisticsPooling(nn.Module):
    """Channel-wise attentive statistics pooling with global context: ``(B, M, T) -> (B, 2M, 1)``.

    1. global context: ``mu, sigma`` = unweighted mean / std of ``x`` over time, repeated over
       T and **concatenated** with ``x`` -> ``(B, 3M, T)``;
    2. attention scores ``e = conv(tanh(tdnn(ctx)))`` ``(B, M, T)``, ``alpha = softmax_T(e)``;
    3. output = **concatenation** of the attention-weighted mean ``sum_t alpha x`` and std
       ``sqrt(clamp(sum_t alpha (x - mean)^2, eps))`` (both **products** of alpha and x).
    ``eps`` = 1e-12 as in SpeechBrain (clamped variance, then sqrt).
    """

    eps = 1e-12

    def __init__(self, channels: int, attention_channels: int = 128) -> None:
        super().__init__()
        self.tdnn = TdnnBlock(3 * channels, attention_channels, 1)
        self.tanh = nn.Tanh()
        self.conv = nn.Conv1d(attention_channels, channels, 1)
        self.softmax = nn.Softmax(dim=2)

    def _statistics(self, x: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
        """Weighted mean and std over time; ``weights`` (B, 1|M, T) sum to 1 over T."""
        mean = (weights * x).sum(dim=2)
        var = (weights * (x - mean.unsqueeze(2)).pow(2)).sum(dim=2)
        return mean, var.clamp(min=self.eps).sqrt()

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[2]
        uniform = torch.full((1, 1, length), 1.0 / length, dtype=x.dtype, device=x.device)
        mean, std = self._statistics(x, uniform)
        size = (-1, -1, length)
        context = torch.cat([x, mean.unsqueeze(2).expand(size), std.unsqueeze(2).expand(size)], 1)
        alpha = self.softmax(self.conv(self.tanh(self.tdnn(context))))
        mean, std = self._statistics(x, alpha)
        return torch.cat([mean, std], dim=1).unsqueeze(2)


class EcapaTdnn(SpeakerEmbedder):
    """ECAPA-TDNN embedder: ``(B, T, F) -> (B, embedding_dim)``.

    Args:
        input_dim: feature bins F (80 fbank).
        channels: C, the width of conv1 and the three SE-Res2Blocks (512 or 1024).
        embedding_dim: D of the final ``fc`` (192).
        mfa_channels: M, the MFA output width. The paper fixes M = 1536 for both C=512 and
            C=1024 (6,194,048 and 14,660,416 parameters, its 6.2 M / 14.7 M); SpeechBrain's
            published C=1024 model uses M = 3C = 3072 (20,767,552 parameters).
        attention_channels: ASP attention bottleneck (128).
        se_channels: SE bottleneck (128).
        res2net_scale: Res2Net scale (8).
    """

    #: conv1, block1..block3, mfa: frame-level ``(B, C|M, T)``; pool ``(B, 2M, 1)``; fc
    #: ``(B, D, 1)`` (squeezed to the embedding).
    layer_names = ("conv1", "block1", "block2", "block3", "mfa", "pool", "fc")

    option_names = ("mfa_channels", "attention_channels", "se_channels", "res2net_scale")
    #: kernel sizes and dilations of conv1 and block1..block3 (Zhang et al. 2023 Table 1).
    kernel_sizes = (5, 3, 3, 3)
    dilations = (1, 2, 3, 4)

    def __init__(
        self,
        input_dim: int = 80,
        channels: int = 512,
        embedding_dim: int = 192,
        mfa_channels: int = 1536,
        attention_channels: int = 128,
        se_channels: int = 128,
        res2net_scale: int = 8,
    ) -> None:
        super().__init__(input_dim, embedding_dim)
        self.channels = channels
        self.mfa_channels = mfa_channels
        self.attention_channels = attention_channels
        self.se_channels = se_channels
        self.res2net_scale = res2net_scale
        k, d = self.kernel_sizes, self.dilations
        self.conv1 = TdnnBlock(input_dim, channels, k[0], d[0])
        self.block1 = SERes2Block(channels, channels, k[1], d[1], res2net_scale, se_channels)
        self.block2 = SERes2Block(channels, channels, k[2], d[2], res2net_scale, se_channels)
        self.block3 = SERes2Block(channels, channels, k[3], d[3], res2net_scale, se_channels)
        self.mfa = TdnnBlock(3 * channels, self.mfa_channels, 1)
        self.pool = AttentiveStatisticsPooling(self.mfa_channels, attention_channels)
        self.pool_bn = nn.BatchNorm1d(2 * self.mfa_channels)
        self.fc = nn.Conv1d(2 * self.mfa_channels, embedding_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, F) -> (B, D)``."""
        check_features(x, "EcapaTdnn", self.input_dim, self.min_frames)
        h = x.transpose(1, 2)
        h = self.conv1(h)
        h1 = self.block1(h)
        h2 = self.block2(h1)
        h3 = self.block3(h2)
        h = self.mfa(torch.cat([h1, h2, h3], dim=1))
        h = self.pool_bn(self.pool(h))
        return self.fc(h).squeeze(2)

    @property
    def min_frames(self) -> int:
        """Reflect padding needs pad < T; the widest pad is block3's ``4 * (3 - 1) / 2 = 4``."""
        return 1 + max(
            d * (k - 1) // 2 for k, d in zip(self.kernel_sizes, self.dilations, strict=True)
        )
