"""SpeechBrain's ECAPA front-end, batched: ``speechbrain.lobes.features.Fbank`` followed by
``speechbrain.processing.features.InputNormalization(norm_type="sentence")``.

Per utterance, as SpeechBrain computes it: centred STFT (zero padding, Hamming window) ->
power spectrum -> triangular mel filters (SpeechBrain's own construction, not Kaldi's) ->
``10 log10`` with an 80 dB floor below the utterance's maximum -> optional deltas ->
subtracting the mean over time (and dividing by the std when ``std_norm``). No dither, no
pre-emphasis, no VAD: a model trained on these features has never seen anything else.
The utterances of a batch share one STFT and one mel matmul; zero padding to the longest
changes nothing (SpeechBrain pads each utterance with zeros itself), and every per-utterance
statistic (dB floor, deltas, mean) is taken over the utterance's own frames only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from voxray.features.base import FeatureExtractor, SpectralView, register_extractor
from voxray.features.centred_stft import mel_power, zero_padded

#: SpeechBrain's Filterbank defaults: amplitude floor and dynamic range of the log.
AMIN = 1e-10
TOP_DB = 80.0
#: SpeechBrain's Deltas default window (frames) and InputNormalization's epsilon.
DELTA_WINDOW = 5
NORM_EPSILON = 1e-10


@dataclass(frozen=True)
class SpeechBrainFbankParams:
    """``Fbank(...)`` + ``InputNormalization(...)`` arguments that define the output; the
    defaults are SpeechBrain's VoxCeleb ECAPA recipe (80 mels, sentence mean normalisation)."""

    n_mels: int = 80
    sample_rate: int = 16000
    n_fft: int = 400
    win_length_ms: float = 25.0
    hop_length_ms: float = 10.0
    f_min: float = 0.0
    #: 0 means SpeechBrain's default, ``sample_rate // 2``.
    f_max: float = 0.0
    deltas: bool = False
    norm: Literal["none", "sentence"] = "sentence"
    std_norm: bool = False


def _to_mel(hz: float) -> float:
    return 2595 * math.log10(1 + hz / 700)


def speechbrain_mel_filters(p: SpeechBrainFbankParams) -> tuple[Tensor, Tensor]:
    """SpeechBrain's triangular filter matrix ``(n_fft // 2 + 1, n_mels)`` float32 and the
    filters' centre frequencies in Hz ``(n_mels,)``, built with its float32 operations."""
    f_max = p.f_max or float(p.sample_rate // 2)
    if not 0.0 <= p.f_min < f_max <= p.sample_rate / 2:
        raise ValueError(
            f"sb_fbank: f_min={p.f_min:g} / f_max={f_max:g} Hz is not a band inside "
            f"[0, {p.sample_rate / 2:g}] Hz"
        )
    mel = torch.linspace(_to_mel(p.f_min), _to_mel(f_max), p.n_mels + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    band = (hz[1:] - hz[:-1])[:-1]
    central = hz[1:-1]
    freqs = torch.linspace(0, p.sample_rate // 2, p.n_fft // 2 + 1)
    slope = (freqs[None, :] - central[:, None]) / band[:, None]
    matrix = torch.clamp(torch.minimum(slope + 1.0, 1.0 - slope), min=0.0)
    return matrix.T.contiguous(), central


def deltas(x: Tensor) -> Tensor:
    """SpeechBrain's ``Deltas`` of ``(T, F)`` features: a 5-frame regression over the time
    axis with the edge frames replicated, ``(T, F)``."""
    n = (DELTA_WINDOW - 1) // 2
    denom = n * (n + 1) * (2 * n + 1) / 3
    padded = torch.nn.functional.pad(x.T[None], (n, n), mode="replicate")[0]  # (F, T + 2n)
    kernel = torch.arange(-n, n + 1, dtype=x.dtype, device=x.device)
    return (padded.unfold(1, DELTA_WINDOW, 1) @ kernel / denom).T


@register_extractor
class SpeechBrainFbank(FeatureExtractor):
    """``(T, n_mels)`` (``(T, 3 n_mels)`` with deltas) log-mel features in dB, sentence
    normalised, ``T = 1 + n // hop`` frames for ``n`` samples."""

    name = "sb_fbank"
    params_type = SpeechBrainFbankParams

    def __init__(self, params: SpeechBrainFbankParams, device: str | torch.device = "cpu") -> None:
        self.params = params
        self.device = torch.device(device)
        self.win = int(round(params.sample_rate / 1000.0 * params.win_length_ms))
        self.hop = int(round(params.sample_rate / 1000.0 * params.hop_length_ms))
        if not 0 < self.win <= params.n_fft:
            raise ValueError(
                f"sb_fbank: a {self.win}-sample window does not fit n_fft={params.n_fft}"
            )
        if self.hop < 1:
            raise ValueError(f"sb_fbank: hop_length_ms={params.hop_length_ms:g} is under a sample")
        filters, self.centers = speechbrain_mel_filters(params)
        self.filters = filters.to(self.device)
        self.window = torch.hamming_window(self.win).to(self.device)

    @classmethod
    def from_params(
        cls,
        params: SpeechBrainFbankParams,
        device: str | torch.device = "cpu",
        sample_rate: int = 16000,
    ) -> SpeechBrainFbank:
        return cls(params, device)

    @property
    def num_bins(self) -> int:
        return self.params.n_mels * (3 if self.params.deltas else 1)

    @property
    def frame_shift_ms(self) -> float:
        return self.params.hop_length_ms

    def bin_frequencies(self, sample_rate: int) -> np.ndarray | None:
        return None if self.params.deltas else self.centers.double().numpy()

    def spectral_view(self, sample_rate: int) -> SpectralView | None:
        if self.params.deltas:
            return None
        # a centred STFT: frame t is centred on sample t * hop
        weights = self.filters.T.cpu().numpy()
        return SpectralView(self.params.n_fft, self.win, self.hop, 0, weights)

    def compute(self, waves: list[np.ndarray], sample_rate: int) -> list[np.ndarray]:
        if sample_rate != self.params.sample_rate:
            raise ValueError(
                f"sb_fbank: the model's front-end expects {self.params.sample_rate} Hz audio, "
                f"got {sample_rate} Hz (set corpus.sample_rate={self.params.sample_rate})"
            )
        if not waves:
            return []
        lengths = [int(np.asarray(w).size) for w in waves]
        mel_db = self._log_mel(zero_padded(waves, max(lengths)).to(self.device))  # (B, T, n_mels)
        return [
            self._finish(mel_db[i, : 1 + n // self.hop]).cpu().numpy()
            for i, n in enumerate(lengths)
        ]

    def _log_mel(self, batch: Tensor) -> Tensor:
        """Waveforms ``(B, N)`` -> log-mel energies in dB ``(B, T, n_mels)``, no floor yet."""
        mel = mel_power(batch, self.params.n_fft, self.hop, self.win, self.window, self.filters)
        return 10.0 * torch.log10(torch.clamp(mel, min=AMIN))

    def _finish(self, x: Tensor) -> Tensor:
        """One utterance's dB features ``(T, n_mels)``: floor, deltas, normalisation."""
        x = torch.maximum(x, x.amax() - TOP_DB)
        if self.params.deltas:
            d1 = deltas(x)
            x = torch.cat([x, d1, deltas(d1)], dim=1)
        if self.params.norm == "sentence":
            mean = x.mean(dim=0, keepdim=True)
            x = x - mean
            if self.params.std_norm:
                std = x.square().mean(dim=0, keepdim=True).sqrt()
                x = x / std.clamp(min=NORM_EPSILON)
        return x.to(torch.float32)
