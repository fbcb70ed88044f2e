"""The Kaldi front-ends (``fbank``, ``mfcc``): their parameters, the shared extractor base, and
the per-batch pipeline (extraction, energy VAD, CMN) that the features stage runs.

A voxray-trained model's front-end is ``kaldi_front_end(model.feature_kind, features)``: the
``FeatureConfig`` of the run that trained it, minus what does not change the output.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from voxray.config import FeatureConfig, KaldiParams
from voxray.features.base import EXTRACTORS, FeatureExtractor, FrontEndSpec
from voxray.features.cmn import apply_cmn
from voxray.features.filters import mel_banks
from voxray.features.framing import FrameGeometry
from voxray.features.frontend import KaldiFrontEnd, KaldiOptions
from voxray.features.vad import energy_vad, keep_min_frames

#: Kaldi reads 16-bit samples; float waveforms in [-1, 1] are scaled to that range.
INT16_SCALE = 32768.0
KALDI_KINDS = ("fbank", "mfcc")


def kaldi_front_end(kind: str, cfg: FeatureConfig) -> FrontEndSpec:
    """The spec of Kaldi ``kind`` (fbank / mfcc) as ``cfg`` configures it."""
    if kind not in KALDI_KINDS:
        raise KeyError(f"features.kinds: unknown Kaldi feature kind {kind!r} (valid: fbank, mfcc)")
    return FrontEndSpec(kind, KaldiParams.of(cfg))


class KaldiExtractor(FeatureExtractor):
    """Base of the Kaldi extractors: built from a ``FeatureConfig`` (+ ``KaldiOptions``), they
    also give the per-frame raw log energies that Kaldi's energy VAD reads."""

    params_type = KaldiParams

    def __init__(
        self,
        cfg: FeatureConfig,
        device: str | torch.device = "cpu",
        *,
        options: KaldiOptions | None = None,
        sample_rate: int = 16000,
    ) -> None:
        self.cfg = cfg
        self.options = options or KaldiOptions()
        self.frontend = KaldiFrontEnd(cfg, self.options, device, sample_rate)
        self._prepare()

    def _prepare(self) -> None:
        """A subclass's own checks and precomputation, once the front end is built (the
        filterbank has none)."""

    @classmethod
    def from_params(
        cls, params: KaldiParams, device: str | torch.device = "cpu", sample_rate: int = 16000
    ) -> KaldiExtractor:
        return cls(params.feature_config(), device, sample_rate=sample_rate)

    def extract_with_energy(
        self, waves: list[Tensor], sample_rate: int
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Features ``(T_i, F)`` and per-frame log energies ``(T_i,)`` (Kaldi's raw energy, the
        input of its energy VAD), one pair per waveform; ``T_i`` is 0 below one frame."""
        return self.frontend.compute(waves, sample_rate, self._finish, self.num_bins)

    @abstractmethod
    def _finish(self, mel: Tensor, energy: Tensor) -> Tensor:
        """The features ``(T, F)`` of one waveform from its log-mel energies and log energy."""

    def extract_batch(self, waves: list[Tensor], sample_rate: int) -> list[Tensor]:
        """One ``(T_i, F)`` float32 tensor per waveform ``(n_i,)``, before VAD and CMN."""
        return self.extract_with_energy(waves, sample_rate)[0]

    @property
    def frame_shift_ms(self) -> float:
        return self.cfg.frame_shift_ms

    def compute(self, waves: list[np.ndarray], sample_rate: int) -> list[np.ndarray]:
        return self.features(waves, sample_rate, scale=self.cfg.waveform_scale)

    def features(
        self,
        waves: list[np.ndarray],
        sample_rate: int,
        *,
        scale: float = INT16_SCALE,
        vad_frames_context: int = 0,
        vad_proportion: float = 0.6,
        vad_min_frames: int = 50,
    ) -> list[np.ndarray]:
        """Features ``(T_i, F)`` float32 of each waveform ``(n_i,)``, in input order.

        Waveforms are multiplied by ``scale`` first (default: [-1, 1] floats to Kaldi's int16
        range, which the VAD threshold assumes; pass 1.0 for int16-valued input). With
        ``cfg.vad`` the non-speech frames are dropped (keeping at least ``vad_min_frames`` of
        the loudest ones); with ``cfg.cmn`` the kept frames are mean-normalised.
        """
        cfg = self.cfg
        tensors = [
            torch.from_numpy(np.asarray(w, dtype=np.float32) * np.float32(scale)) for w in waves
        ]
        if cfg.vad:
            feats, energies = self.extract_with_energy(tensors, sample_rate)
        else:
            feats, energies = self.extract_batch(tensors, sample_rate), [None] * len(tensors)
        out: list[np.ndarray] = []
        for f, e in zip(feats, energies, strict=True):
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


def get_extractor(
    kind: str,
    cfg: FeatureConfig,
    device: str | torch.device = "cpu",
    *,
    options: KaldiOptions | None = None,
    sample_rate: int = 16000,
) -> KaldiExtractor:
    """The Kaldi extractor for ``kind`` with its window and filters precomputed on ``device``
    for ``sample_rate`` (other rates are prepared on first use).

    Raises:
        KeyError: not a Kaldi kind, listing the valid ones.
    """
    if kind not in KALDI_KINDS:
        valid = ", ".join(KALDI_KINDS)
        raise KeyError(f"features.kinds: unknown feature kind {kind!r} (valid: {valid})")
    cls = EXTRACTORS[kind]
    return cls(cfg, device, options=options, sample_rate=sample_rate)  # type: ignore[call-arg]


@lru_cache(maxsize=8)
def _cached_extractor(
    kind: str, cfg: FeatureConfig, device: str, options: KaldiOptions | None, sample_rate: int
) -> KaldiExtractor:
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
    """Kaldi ``kind`` features ``(T_i, F)`` of each waveform, VAD and CMN as ``cfg`` says
    (``KaldiExtractor.features``); a waveform shorter than one frame gives ``(0, F)``."""
    extractor = _cached_extractor(kind, cfg, str(device), options, sample_rate)
    return extractor.features(
        waves,
        sample_rate,
        scale=scale,
        vad_frames_context=vad_frames_context,
        vad_proportion=vad_proportion,
        vad_min_frames=vad_min_frames,
    )


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
