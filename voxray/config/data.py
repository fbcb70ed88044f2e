"""The corpus and the Kaldi front-end sections."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from voxray.config.resources import ResourceConfig, S3Config


@dataclass(frozen=True)
class CorpusConfig:
    sample_rate: int = 16000
    #: resample files at other rates instead of quarantining them.
    resample: bool = False
    min_duration_s: float = 0.3
    max_duration_s: float = 180.0
    #: keep at most this many utterances (0: all), taken deterministically by utt_id hash.
    max_utterances: int = 0
    trial_lists: tuple[str, ...] = ("veri_test2.txt", "list_test_all2.txt", "list_test_hard2.txt")
    s3: S3Config = field(default_factory=S3Config)
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=64))


@dataclass(frozen=True)
class KaldiParams:
    """What defines a Kaldi fbank / MFCC front-end's output (``voxray.features.kaldi``): the keys
    of ``features`` that change the features, and what a model records as its front-end."""

    num_mel_bins: int = 80
    num_ceps: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    preemphasis: float = 0.97
    window: Literal["povey", "hamming", "hanning", "rectangular", "blackman"] = "povey"
    low_freq: float = 20.0
    high_freq: float = 0.0
    cepstral_lifter: float = 22.0
    #: what float samples in [-1, 1] are multiplied by first: Kaldi's int16 range (the VAD
    #: threshold assumes it); 1.0 is what torchaudio users (3D-Speaker's CAM++) feed. With CMN it
    #: only changes bins whose power falls below the log floor (near-silent low mel bins).
    waveform_scale: float = 32768.0
    #: cepstral mean normalisation per utterance.
    cmn: bool = True
    #: drop non-speech frames (Kaldi compute-vad energy rule) before writing.
    vad: bool = False
    vad_energy_threshold: float = 5.5
    vad_energy_mean_scale: float = 0.5

    @classmethod
    def of(cls, cfg: KaldiParams) -> KaldiParams:
        """Only the parameters (a ``FeatureConfig`` is one, plus kinds and resources)."""
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls)})

    def feature_config(self) -> FeatureConfig:
        return FeatureConfig(**dataclasses.asdict(self))


@dataclass(frozen=True)
class FeatureConfig(KaldiParams):
    """Kaldi-compatible fbank / MFCC (Zhang et al. 2023 uses MFCC, Li et al. 2022 80-dim fbank):
    the front-end of the models voxray trains. The features stage computes each model's own
    front-end (an imported model brings its own); ``kinds`` adds Kaldi kinds computed beside
    it."""

    kinds: tuple[Literal["fbank", "mfcc"], ...] = ()
    #: 64 utterances a batch: fbank is cheap, so small batches are mostly per-batch overhead
    #: (bench/README.md: 16 streamed at 323 utt/s on 2 cores, 64 at 513, 256 at 636).
    resources: ResourceConfig = field(default_factory=lambda: ResourceConfig(batch_size=64))
