"""Resemblyzer's GE2E front-end, batched in torch: the 40-channel mel spectrogram its
``VoiceEncoder`` was trained on, framed for its 1.6 s partial windows.

Per utterance, as ``resemblyzer.audio`` and ``VoiceEncoder.embed_utterance`` compute it:
volume raised to -30 dBFS (never lowered) -> zero padding up to the end of the last partial
window (``compute_partial_slices``: a window every ``round(sr / rate / hop)`` frames, the last
one kept when it covers ``min_coverage`` of its length) -> librosa's ``melspectrogram``
(centred STFT with zero padding, periodic Hann window, power 2, Slaney mel filters with Slaney
area normalisation) -> the frames up to that end. The values are mel *power*, not log: the
LSTM was trained on them. Resemblyzer's webrtcvad silence trimming is not applied (voxray's
corpus is what it is; ``features.vad`` is the Kaldi front-ends' business).

Keeping exactly the frames of the partial windows makes ``T = start_last + partial_frames``,
so the model recovers the windows from ``T`` alone (``partial_starts``) and one
differentiable forward pass maps the stored features to the utterance embedding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio

from voxray.features.base import FeatureExtractor, SpectralView, register_extractor
from voxray.features.centred_stft import mel_power, zero_padded

#: resemblyzer scales float samples by 2**15 - 1 to measure dBFS.
INT16_MAX = 2**15 - 1


@dataclass(frozen=True)
class Ge2eMelParams:
    """What defines the output; the defaults are resemblyzer 0.1.4's ``hparams`` and the
    ``embed_utterance`` defaults (``rate=1.3``, ``min_coverage=0.75``)."""

    sample_rate: int = 16000
    n_mels: int = 40
    window_ms: float = 25.0
    hop_ms: float = 10.0
    #: frames in one partial utterance (1.6 s).
    partial_frames: int = 160
    #: partial utterances per second (frame step ``round(sample_rate / rate / hop)``: 77).
    rate: float = 1.3
    #: the last partial window is kept when the audio covers this fraction of it.
    min_coverage: float = 0.75
    #: loudness the waveform is raised to (resemblyzer's ``normalize_volume(increase_only)``).
    target_dbfs: float = -30.0

    @property
    def hop(self) -> int:
        return int(self.sample_rate * self.hop_ms / 1000)

    @property
    def n_fft(self) -> int:
        return int(self.sample_rate * self.window_ms / 1000)

    @property
    def frame_step(self) -> int:
        """Frames between two partial windows (resemblyzer's ``frame_step``)."""
        return int(np.round((self.sample_rate / self.rate) / self.hop))


def partial_frame_count(num_samples: int, p: Ge2eMelParams) -> int:
    """Frames kept for ``num_samples`` samples: the end of the last partial window, as
    resemblyzer's ``compute_partial_slices`` places it (at least one window)."""
    if not 0 < p.min_coverage <= 1:
        raise ValueError(f"ge2e_mel: min_coverage must be in (0, 1], got {p.min_coverage}")
    if not 0 < p.frame_step <= p.partial_frames:
        raise ValueError(
            f"ge2e_mel: rate={p.rate:g} gives a frame step of {p.frame_step}, "
            f"outside 1..{p.partial_frames}"
        )
    n_frames = int(math.ceil((num_samples + 1) / p.hop))
    steps = max(1, n_frames - p.partial_frames + p.frame_step + 1)
    starts = list(range(0, steps, p.frame_step))
    last = starts[-1]
    coverage = (num_samples - last * p.hop) / (p.partial_frames * p.hop)
    if coverage < p.min_coverage and len(starts) > 1:
        last = starts[-2]
    return last + p.partial_frames


def partial_starts(num_frames: int, partial_frames: int, frame_step: int) -> range:
    """First frame of each partial window of a ``num_frames``-frame input (``T`` from this
    front-end gives exactly resemblyzer's windows; a shorter input is one window)."""
    return range(0, max(num_frames - partial_frames, 0) + 1, frame_step)


#: Slaney's mel scale (librosa's default, ``htk=False``): linear below 1 kHz, log above.
_F_SP, _MIN_LOG_HZ, _MIN_LOG_MEL, _LOGSTEP = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0


def hz_to_slaney_mel(hz: float) -> float:
    if hz < _MIN_LOG_HZ:
        return hz / _F_SP
    return _MIN_LOG_MEL + math.log(hz / _MIN_LOG_HZ) / _LOGSTEP


def slaney_mel_to_hz(mels: np.ndarray) -> np.ndarray:
    return np.where(
        mels >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mels - _MIN_LOG_MEL)), _F_SP * mels
    )


def normalise_volume(wave: np.ndarray, target_dbfs: float) -> np.ndarray:
    """Raise ``wave`` to ``target_dbfs`` (never lower it); silence stays silence."""
    rms = float(np.sqrt(np.mean((wave.astype(np.float64) * INT16_MAX) ** 2)))
    if rms == 0.0:
        return wave
    change = target_dbfs - 20 * math.log10(rms / INT16_MAX)
    return wave if change < 0 else wave * np.float32(10 ** (change / 20))


@register_extractor
class Ge2eMel(FeatureExtractor):
    """``(T, 40)`` mel power frames, ``T = start_last + 160`` (see the module docstring)."""

    name = "ge2e_mel"
    params_type = Ge2eMelParams

    def __init__(self, params: Ge2eMelParams, device: str | torch.device = "cpu") -> None:
        self.params = params
        self.device = torch.device(device)
        n_freqs = params.n_fft // 2 + 1
        nyquist = params.sample_rate / 2
        self.filters = torchaudio.functional.melscale_fbanks(
            n_freqs, 0.0, nyquist, params.n_mels, params.sample_rate, "slaney", "slaney"
        ).to(self.device)  # (n_fft/2+1, n_mels)
        self.window = torch.hann_window(params.n_fft, periodic=True, device=self.device)

    @classmethod
    def from_params(
        cls, params: Ge2eMelParams, device: str | torch.device = "cpu", sample_rate: int = 16000
    ) -> Ge2eMel:
        return cls(params, device)

    @property
    def num_bins(self) -> int:
        return self.params.n_mels

    @property
    def frame_shift_ms(self) -> float:
        return self.params.hop_ms

    def bin_frequencies(self, sample_rate: int) -> np.ndarray | None:
        """Centre frequencies of the Slaney mel filters, as ``librosa.mel_frequencies``."""
        top = hz_to_slaney_mel(self.params.sample_rate / 2)
        return slaney_mel_to_hz(np.linspace(0.0, top, self.params.n_mels + 2))[1:-1]

    def spectral_view(self, sample_rate: int) -> SpectralView | None:
        p = self.params  # a centred STFT (librosa's): frame t is centred on sample t * hop
        return SpectralView(p.n_fft, p.n_fft, p.hop, 0, self.filters.T.cpu().numpy())

    def compute(self, waves: list[np.ndarray], sample_rate: int) -> list[np.ndarray]:
        p = self.params
        if sample_rate != p.sample_rate:
            raise ValueError(
                f"ge2e_mel: the model's front-end expects {p.sample_rate} Hz audio, got "
                f"{sample_rate} Hz (set corpus.resample=true)"
            )
        if not waves:
            return []
        waves = [normalise_volume(np.asarray(w, dtype=np.float32), p.target_dbfs) for w in waves]
        frames = [partial_frame_count(w.size, p) for w in waves]
        # zeros up to the last window's end and beyond are what resemblyzer pads with too
        width = max(max(w.size for w in waves), max(frames) * p.hop)
        batch = zero_padded(waves, width).to(self.device)
        mel = mel_power(batch, p.n_fft, p.hop, p.n_fft, self.window, self.filters)
        return [mel[i, :t].cpu().numpy() for i, t in enumerate(frames)]
