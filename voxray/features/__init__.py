"""Model front-ends: Kaldi-compatible fbank / MFCC (with energy VAD and CMN), SpeechBrain's
Fbank with sentence mean normalisation and resemblyzer's GE2E mel power (``ge2e_mel``), each a
registered extractor (``base.py`` documents the contract and how to add one).

``compute_features`` is the Kaldi pipeline per batch: batched extraction (one FFT and one mel
matmul per chunk of frames, not per utterance), then, as configured, Kaldi energy VAD
(non-speech frames dropped) and per-utterance CMN over the kept frames.
"""

from __future__ import annotations

from voxray.features.base import (
    EXTRACTORS,
    FeatureExtractor,
    FrontEndSpec,
    extractor_class,
    register_extractor,
)
from voxray.features.cmn import apply_cmn
from voxray.features.fbank import Fbank
from voxray.features.frontend import KaldiOptions
from voxray.features.ge2e_mel import Ge2eMel, Ge2eMelParams
from voxray.features.kaldi import (
    INT16_SCALE,
    KaldiExtractor,
    KaldiParams,
    compute_features,
    frame_count,
    get_extractor,
    kaldi_front_end,
    mel_center_frequencies,
)
from voxray.features.mfcc import Mfcc
from voxray.features.speechbrain import SpeechBrainFbank, SpeechBrainFbankParams
from voxray.features.vad import energy_vad, feature_energy, frame_log_energy, keep_min_frames

__all__ = [
    "EXTRACTORS",
    "INT16_SCALE",
    "Fbank",
    "FeatureExtractor",
    "FrontEndSpec",
    "Ge2eMel",
    "Ge2eMelParams",
    "KaldiExtractor",
    "KaldiOptions",
    "KaldiParams",
    "Mfcc",
    "SpeechBrainFbank",
    "SpeechBrainFbankParams",
    "apply_cmn",
    "compute_features",
    "energy_vad",
    "extractor_class",
    "feature_energy",
    "frame_count",
    "frame_log_energy",
    "get_extractor",
    "kaldi_front_end",
    "keep_min_frames",
    "mel_center_frequencies",
    "register_extractor",
]
