"""Resemblyzer's GE2E speaker encoder (Wan et al. 2018; the LSTM d-vector family of Lehmann &
Stadelmann 2020) as a voxray model, and the loader of its pretrained weights.

``Ge2eLstm`` is ``resemblyzer.VoiceEncoder``'s network (LSTM 3 x 256 -> Linear 256 -> ReLU ->
L2 norm on the last layer's final hidden state) wrapped in ``embed_utterance``'s averaging:
the input ``(B, T, 40)`` (``ge2e_mel`` frames) is cut into 160-frame partial windows every
77 frames, each window is embedded, and the mean embedding is L2-normalised. One forward
pass from the stored features to the utterance embedding, so every attribution method sees
the model resemblyzer users run.

The weights are read from ``resemblyzer/pretrained.pt`` of the installed wheel (located, not
imported) or from a given file, by ``voxray.models.sources.ge2e`` with
``torch.load(weights_only=True)``; the GE2E loss's ``similarity_weight`` / ``similarity_bias``
are training-only and left out.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn import functional as F

from voxray.features.ge2e_mel import Ge2eMelParams, partial_starts
from voxray.models.base import SpeakerEmbedder
from voxray.models.inputs import check_features

#: keys of the training checkpoint that are the GE2E loss, not the encoder.
LOSS_KEYS = ("similarity_weight", "similarity_bias")


class Ge2eLstm(SpeakerEmbedder):
    """``(B, T, input_dim) -> (B, embedding_dim)`` utterance embeddings (unit length).

    Args:
        input_dim: mel channels (40).
        channels: LSTM hidden size (256).
        embedding_dim: output size (256).
        num_layers: stacked LSTM layers (3).
        partial_frames: frames per partial window (160, 1.6 s).
        frame_step: frames between windows (77: resemblyzer's rate 1.3 per second).
    """

    #: lstm (the recurrent stack) and linear (the projection); neither is convolutional.
    layer_names = ("lstm", "linear")

    option_names = ("num_layers", "partial_frames", "frame_step")

    def __init__(
        self,
        input_dim: int = 40,
        channels: int = 256,
        embedding_dim: int = 256,
        num_layers: int = 3,
        partial_frames: int = Ge2eMelParams().partial_frames,
        frame_step: int = Ge2eMelParams().frame_step,
    ) -> None:
        super().__init__(input_dim, embedding_dim)
        self.channels = channels
        self.num_layers = num_layers
        self.partial_frames = partial_frames
        self.frame_step = frame_step
        self.lstm = nn.LSTM(input_dim, channels, num_layers, batch_first=True)
        self.linear = nn.Linear(channels, embedding_dim)
        self.relu = nn.ReLU()

    def embed_partials(self, mels: Tensor) -> Tensor:
        """VoiceEncoder.forward: ``(N, P, F)`` windows -> ``(N, D)`` unit embeddings."""
        _, (hidden, _) = self.lstm(mels)
        return F.normalize(self.relu(self.linear(hidden[-1])), dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, T, F) -> (B, D)``; an input shorter than one window is zero-padded to it
        (zero mel power is what a zero-padded waveform gives)."""
        check_features(x, "Ge2eLstm", self.input_dim)
        b, t, f = x.shape
        if t < self.partial_frames:
            x = F.pad(x, (0, 0, 0, self.partial_frames - t))
        starts = partial_starts(x.shape[1], self.partial_frames, self.frame_step)
        windows = x.unfold(1, self.partial_frames, self.frame_step)[:, : len(starts)]
        parts = windows.permute(0, 1, 3, 2).reshape(-1, self.partial_frames, f)  # (B*K, P, F)
        emb = self.embed_partials(parts).view(b, len(starts), -1).mean(dim=1)
        return F.normalize(emb, dim=1)


def read_ge2e_state(data: object, where: str) -> dict[str, Tensor]:
    """The encoder's tensors from a ``torch.load``-ed GE2E checkpoint (``model_state`` of
    resemblyzer's training checkpoint, or a bare state_dict), the loss parameters dropped.

    Raises:
        ValueError: not a GE2E encoder checkpoint (names ``where``).
    """
    state = data.get("model_state", data) if isinstance(data, dict) else None
    if not isinstance(state, dict) or "lstm.weight_ih_l0" not in state:
        raise ValueError(
            f"{where}: not a GE2E encoder checkpoint (expected 'model_state' with lstm.* and "
            "linear.* tensors, as resemblyzer's pretrained.pt)"
        )
    return {k: v for k, v in state.items() if k not in LOSS_KEYS}


def ge2e_for_state(state: dict[str, Tensor]) -> Ge2eLstm:
    """An untrained ``Ge2eLstm`` whose sizes are those of ``state`` (read from its shapes)."""
    four_h, input_dim = state["lstm.weight_ih_l0"].shape
    layers = sum(1 for k in state if k.startswith("lstm.weight_ih_l"))
    embedding_dim = state["linear.weight"].shape[0] if "linear.weight" in state else four_h // 4
    return Ge2eLstm(int(input_dim), int(four_h) // 4, int(embedding_dim), layers)
