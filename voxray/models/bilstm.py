"""The bidirectional LSTM speaker model of Lehmann & Stadelmann 2020 (Figure 1, ZHAW "LSTM_512").

Lehmann & Stadelmann 2020 trains ``BiLSTM(512) -> BiLSTM(512) -> Dense(1024) -> Dense(512,
bottleneck) -> classes`` and, at inference, drops the dense layers and takes the embedding from the
*output of the second BiLSTM layer*. A sequence output becomes one vector by its mean over time (the
paper does not say how; the mean uses every frame and is length independent).

This embedder covers the three paths through ``embedding_dim`` and ``bottleneck_dim``:

* ``embedding_dim == 2 * channels``, ``bottleneck_dim`` given (Lehmann & Stadelmann 2020 as
  published): training goes through ``dense1`` (2C -> 2C, ReLU) and ``dense2`` (2C ->
  bottleneck_dim) to the head (``head_input``), and the embedding is the time mean of lstm2's
  output (``forward``), the dense layers dropped.
* ``embedding_dim == 2 * channels``, no bottleneck: the margin head sits directly on the lstm2
  time mean.
* any other ``embedding_dim`` (e.g. 512): the dense layers are part of the embedder, and the
  embedding is the bottleneck output — the training path of Figure 1 with the head on top.

Dropout (Lehmann & Stadelmann 2020 uses it against overfitting) follows each BiLSTM layer, active in
training only.
"""

from __future__ import annotations

from torch import Tensor, nn

from voxray.models.base import SpeakerEmbedder
from voxray.models.inputs import check_features


class BiLstmLayer(nn.Module):
    """One bidirectional LSTM layer returning only its sequence output,
    ``(B, T, Fin) -> (B, T, 2H)`` (forward and backward hidden states **concatenated**), so that
    hooks see a tensor, not a tuple.
    """

    def __init__(self, input_dim: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x)
        return out


class BiLstm(SpeakerEmbedder):
    """Lehmann & Stadelmann 2020's BiLSTM: ``(B, T, F) -> (B, embedding_dim)``.

    Args:
        input_dim: feature bins F.
        channels: hidden width of each direction (512 in Lehmann & Stadelmann 2020; outputs are 2 *
        channels).
        embedding_dim: ``2 * channels`` for the lstm2 mean, anything else adds the dense layers.
        bottleneck_dim: with ``embedding_dim == 2 * channels``, the width of the dense path that
            training goes through (None: the head reads the embedding).
        dropout: dropout probability after each BiLSTM layer.
    """

    def __init__(
        self,
        input_dim: int = 80,
        channels: int = 512,
        embedding_dim: int = 1024,
        bottleneck_dim: int | None = None,
        dropout: float = 0.2,
    ) -> None:
        super().__init__(input_dim, embedding_dim)
        self.channels = channels
        self.lstm1 = BiLstmLayer(input_dim, channels)
        self.drop1 = nn.Dropout(dropout)
        self.lstm2 = BiLstmLayer(2 * channels, channels)
        self.drop2 = nn.Dropout(dropout)
        if bottleneck_dim and embedding_dim != 2 * channels:
            raise ValueError(
                f"BiLstm: a bottleneck ({bottleneck_dim}) needs the lstm2 embedding, "
                f"embedding_dim = 2 * channels = {2 * channels}, not {embedding_dim}"
            )
        #: the dense path is trained through but dropped from the embedding.
        self.dense_head_only = bool(bottleneck_dim)
        self.dense: nn.Sequential | None = None
        if embedding_dim != 2 * channels or bottleneck_dim:
            self.dense = nn.Sequential(
                nn.Linear(2 * channels, 2 * channels),
                nn.ReLU(),
                nn.Linear(2 * channels, bottleneck_dim or embedding_dim),
            )

    def _lstm_mean(self, x: Tensor) -> Tensor:
        check_features(x, "BiLstm", self.input_dim)
        return self.drop2(self.lstm2(self.drop1(self.lstm1(x)))).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, F) -> (B, D)``."""
        h = self._lstm_mean(x)
        return self.dense(h) if self.dense is not None and not self.dense_head_only else h

    @property
    def head_input_dim(self) -> int:
        return self.dense[2].out_features if self.dense_head_only else self.embedding_dim

    def head_input(self, x: Tensor) -> Tensor:
        """The bottleneck output when training goes through the dense path, else the embedding."""
        return self.dense(self._lstm_mean(x)) if self.dense_head_only else self(x)

    def layers(self) -> dict[str, nn.Module]:
        """lstm1, lstm2: ``(B, T, 2 * channels)``; with the dense path also dense1 ``(B, 2C)``
        (its Linear) and dense2 ``(B, D)``."""
        named: dict[str, nn.Module] = {"lstm1": self.lstm1, "lstm2": self.lstm2}
        if self.dense is not None:
            named["dense1"] = self.dense[0]
            named["dense2"] = self.dense[2]
        return named
