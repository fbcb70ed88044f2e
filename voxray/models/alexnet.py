"""The AlexNet-style gender classifier of Sarvaš 2021 (the AudioMNIST AlexNet of Becker et al.
2018), adapted from 227 x 227 spectrograms to ``(T, F)`` fbank crops (e.g. 200 x 80).

Five convolutions with ReLU and max-pooling, then three fully connected layers; the third
is the classification head (``MarginHead`` of kind ``softmax``), so this embedder ends at the
second FC layer and its embedding is that layer's (ReLU'd) output::

    (B, T, F) -> (B, 1, F, T)
      conv1 Conv2d 96 11x11 stride 4 pad 2, ReLU -> maxpool 3/2
      conv2 Conv2d 256 5x5 pad 2, ReLU           -> maxpool 3/2
      conv3 Conv2d 384 3x3 pad 1, ReLU
      conv4 Conv2d 384 3x3 pad 1, ReLU
      conv5 Conv2d 256 3x3 pad 1, ReLU           -> maxpool 3/2
      avgpool AdaptiveAvgPool2d to the map size of an ``input_frames`` crop (identity there)
      fc1 Linear -> 1024, ReLU, dropout
      fc2 Linear -> 1024, ReLU, dropout          = embedding (B, D)

Differences from Becker et al. 2018: no local response normalisation and no grouped convolutions
(neither changes what LRP explains here and both complicate its rules); the adaptive average
pool lets utterances of other lengths through while a crop of ``input_frames`` is unchanged.
"""

from __future__ import annotations

from torch import Tensor, nn

from voxray.models.base import SpeakerEmbedder
from voxray.models.inputs import check_features

#: (out_channels, kernel, stride, padding, max-pool after) of conv1..conv5.
CONV_SPECS: tuple[tuple[int, int, int, int, bool], ...] = (
    (96, 11, 4, 2, True),
    (256, 5, 1, 2, True),
    (384, 3, 1, 1, False),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, True),
)


def min_input_size() -> int:
    """The fewest bins (and frames) an input needs to reach conv5 with one cell left."""
    return next(n for n in range(1, 1000) if feature_map_size(n) >= 1)


def feature_map_size(n: int) -> int:
    """Size of one axis after conv1..conv5 and their pools (0 when the input is too short)."""
    for _, kernel, stride, pad, pool in CONV_SPECS:
        n = (n + 2 * pad - kernel) // stride + 1 if n + 2 * pad >= kernel else 0
        if pool:
            n = (n - 3) // 2 + 1 if n >= 3 else 0
    return n


def _conv_stage(in_channels: int, spec: tuple[int, int, int, int, bool]) -> nn.Sequential:
    out_channels, kernel, stride, pad, pool = spec
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel, stride, pad), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(3, 2))
    return nn.Sequential(*layers)


class AlexNet(SpeakerEmbedder):
    """AlexNet feature extractor: ``(B, T, F) -> (B, embedding_dim)``.

    Args:
        input_dim: feature bins F (80).
        embedding_dim: width of fc1 and fc2 (1024 as in Becker et al. 2018).
        input_frames: the training crop length T (200); fixes the size of the fc1 input.
        dropout: dropout after fc1 and fc2 (training only).
    """

    #: conv1..conv5: ``(B, C, F', T')`` after ReLU (and pool); fc1, fc2: the Linear layers
    #: ``(B, D)`` (pre-ReLU).
    layer_names = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2")

    option_names = ("input_frames",)

    def __init__(
        self,
        input_dim: int = 80,
        embedding_dim: int = 1024,
        input_frames: int = 200,
        dropout: float = 0.5,
    ) -> None:
        super().__init__(input_dim, embedding_dim)
        bins, frames = feature_map_size(input_dim), feature_map_size(input_frames)
        if bins < 1 or frames < 1:
            raise ValueError(
                f"AlexNet needs at least {self._min_size()} bins and frames, "
                f"got input_dim={input_dim}, input_frames={input_frames}"
            )
        self.input_frames = input_frames
        channels = [1] + [spec[0] for spec in CONV_SPECS]
        self.conv1, self.conv2, self.conv3, self.conv4, self.conv5 = (
            _conv_stage(channels[i], spec) for i, spec in enumerate(CONV_SPECS)
        )
        self.avgpool = nn.AdaptiveAvgPool2d((bins, frames))
        self.fc1 = nn.Linear(channels[-1] * bins * frames, embedding_dim)
        self.relu1 = nn.ReLU()
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(embedding_dim, embedding_dim)
        self.relu2 = nn.ReLU()
        self.drop2 = nn.Dropout(dropout)

    @staticmethod
    def _min_size() -> int:
        return min_input_size()

    @property
    def min_frames(self) -> int:
        return self._min_size()

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, F) -> (B, D)``."""
        check_features(x, "AlexNet", self.input_dim, self.min_frames)
        h = x.transpose(1, 2).unsqueeze(1)
        h = self.conv5(self.conv4(self.conv3(self.conv2(self.conv1(h)))))
        h = self.avgpool(h).flatten(1)
        h = self.drop1(self.relu1(self.fc1(h)))
        return self.drop2(self.relu2(self.fc2(h)))
