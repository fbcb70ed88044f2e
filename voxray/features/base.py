"""One small contract for feature extractors (lhotse's lesson) and the registry by kind.

An extractor turns a batch of waveforms into one ``(T_i, F)`` float32 tensor per waveform,
on its own device; ``FeatureConfig.kinds`` values (``fbank``, ``mfcc``) are the registry keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

from voxray.config import FeatureConfig
from voxray.features.frontend import KaldiOptions


class FeatureExtractor(ABC):
    """Batched frame-level features: ``extract_batch(waves, sr) -> [(T_i, F), ...]``.

    Subclasses are built as ``cls(cfg, device, *, options, sample_rate)`` by ``get_extractor``
    and precompute whatever is fixed (windows, filter banks) in that constructor.
    """

    name: ClassVar[str]

    @property
    @abstractmethod
    def num_bins(self) -> int:
        """F, the feature dimension."""

    @abstractmethod
    def extract_with_energy(
        self, waves: list[Tensor], sample_rate: int
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Features ``(T_i, F)`` and per-frame log energies ``(T_i,)`` (Kaldi's raw energy, the
        input of its energy VAD), one pair per waveform; ``T_i`` is 0 below one frame."""

    def extract_batch(self, waves: list[Tensor], sample_rate: int) -> list[Tensor]:
        """One ``(T_i, F)`` float32 tensor per waveform ``(n_i,)``."""
        return self.extract_with_energy(waves, sample_rate)[0]


#: ``FeatureConfig.kinds`` value -> extractor class.
EXTRACTORS: dict[str, type[FeatureExtractor]] = {}


def register_extractor(cls: type[FeatureExtractor]) -> type[FeatureExtractor]:
    """Class decorator adding an extractor under ``cls.name``."""
    if cls.name in EXTRACTORS:
        raise ValueError(f"feature extractor {cls.name!r} registered twice")
    EXTRACTORS[cls.name] = cls
    return cls


def get_extractor(
    kind: str,
    cfg: FeatureConfig,
    device: str | torch.device = "cpu",
    *,
    options: KaldiOptions | None = None,
    sample_rate: int = 16000,
) -> FeatureExtractor:
    """The extractor for ``kind`` with its window and filters precomputed on ``device``
    for ``sample_rate`` (other rates are prepared on first use).

    Raises:
        KeyError: an unknown kind, listing the valid ones.
    """
    if kind not in EXTRACTORS:
        valid = ", ".join(sorted(EXTRACTORS))
        raise KeyError(f"features.kinds: unknown feature kind {kind!r} (valid: {valid})")
    return EXTRACTORS[kind](cfg, device, options=options, sample_rate=sample_rate)
