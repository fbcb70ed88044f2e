"""Kaldi-compatible fbank / MFCC for batches of waveforms, energy VAD and CMN.

``compute_features`` is what the Ray Data features stage calls per batch: batched extraction
(one FFT and one mel matmul per chunk of frames, not per utterance), then, as configured,
Kaldi energy VAD (non-speech frames dropped) and per-utterance CMN over the kept frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from voxray.config import FeatureConfig
from voxray.features.base import EXTRACTORS, FeatureExtractor, get_extractor, register_extractor
from voxray.features.cmn import apply_cmn
from voxray.features.fbank import Fbank
from voxray.features.filters import mel_banks
from voxray.features.framing import FrameGeometry
from voxray.features.frontend import KaldiOptions
from voxray.features.mfcc import Mfcc
from voxray.features.vad import energy_vad, feature_energy, frame_log_energy, keep_min_frames

__all__ = [
    "EXTRACTORS",
    "Fbank",
    "FeatureExtractor",
    "KaldiOptions",
    "Mfcc",
    "apply_cmn",
    "compute_features",
    "energy_vad",
    "feature_energy",
    "frame_count",
    "frame_log_energy",
    "get_extractor",
    "keep_min_frames",
    "mel_center_frequencies",
    "register_extractor",
]

#: Kaldi reads 16-bit samples; float waveforms in [-1, 1] are scaled to that range.
INT16_SCALE = 32768.0


@lru_cache(maxsize=8)
def _cached_extractor(
    kind: str, cfg: FeatureConfig, device: str, options: KaldiOptions | None, sample_rate: int
) -> FeatureExtractor:
    return get_extractor(kind, cfg, device, options=options, sample_rate=sample_rate)


def compute_features(
    waves: list[np.ndarray],
    sample_rate: int,
    cfg: FeatureConfig,
    kind: str,
    device: str | torch.device = "cpu",
    *,
    options: KaldiOptions | None = None,
    scale: float = INT16_SCALE,
    vad_frames_context: int = 0,
    vad_proportion: float = 0.6,
    vad_min_frames: int = 50,
) -> list[np.ndarray]:
    """Features ``(T_i, F)`` float32 of each waveform ``(n_i,)``, in input order.

    Waveforms are multiplied by ``scale`` first (default: [-1, 1] floats to Kaldi's int16
    range, which the VAD threshold assumes; pass 1.0 for int16-valued input). With
    ``cfg.vad`` the non-speech frames are dropped (keeping at least ``vad_min_frames`` of the
    loudest ones); with ``cfg.cmn`` the kept frames are mean-normalised. A waveform shorter
    than one frame gives ``(0, F)``.
    """
    extractor = _cached_extractor(kind, cfg, str(device), options, sample_rate)
    tensors = [torch.from_numpy(np.asarray(w, dtype=np.float32) * np.float32(scale)) for w in waves]
    if cfg.vad:
        feats, energies = extractor.extract_with_energy(tensors, sample_rate)
    else:
        feats, energies = extractor.extract_batch(tensors, sample_rate), [None] * len(tensors)
    out: list[np.ndarray] = []
    for f, e in zip(feats, energies):
        if e is not None and f.shape[0]:
            speech = energy_vad(
                e,
                cfg.vad_energy_threshold,
                cfg.vad_energy_mean_scale,
                vad_frames_context,
                vad_proportion,
            )
            f = f[keep_min_frames(speech, e, vad_min_frames)]
        if cfg.cmn:
            f = apply_cmn(f)
        out.append(f.to("cpu", torch.float32).numpy())
    return out


def frame_count(
    num_samples: int, cfg: FeatureConfig, sample_rate: int = 16000, snip_edges: bool = True
) -> int:
    """Frames the extractors make of ``num_samples`` samples (before VAD); 0 below one frame."""
    return FrameGeometry.from_config(cfg, sample_rate).num_frames(num_samples, snip_edges)


def mel_center_frequencies(
    cfg: FeatureConfig, sample_rate: int = 16000, round_to_power_of_two: bool = True
) -> np.ndarray:
    """Centre frequency in Hz of each fbank bin ``(num_mel_bins,)``, for plots on a Hz axis."""
    geometry = FrameGeometry.from_config(cfg, sample_rate, round_to_power_of_two)
    _, centers = mel_banks(
        cfg.num_mel_bins, geometry.padded_size, sample_rate, cfg.low_freq, cfg.high_freq
    )
    return centers
