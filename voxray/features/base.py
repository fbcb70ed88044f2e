"""Front-ends: the input representation a model was trained on, as registered extractors.

The front-end belongs to the model. Every model, voxray-trained or imported, carries a
``FrontEndSpec``: the registered extractor's ``name`` and a frozen dataclass of the parameters
that define its output. The spec is written into ``models/<name>/config.yaml`` (key
``front_end``, ``{name, params}``) or derived when a model is imported (a SpeechBrain
``hyperparams.yaml``). The features stage computes each distinct spec the run's models need into
``features/kind=<spec.name>/``; embed, attribute and the report read the partition and the bin
frequencies of their model's spec. One name means one parameter set within a run.

To add a front-end (lhotse's lesson: one small contract, a registry by name)::

    @dataclass(frozen=True)
    class MyMelParams:               # every field a YAML scalar; defaults = the usual setting
        n_mels: int = 40

    @register_extractor
    class MyMel(FeatureExtractor):
        name = "my_mel"              # the partition folder: features/kind=my_mel/
        params_type = MyMelParams

        @classmethod
        def from_params(cls, params, device="cpu", sample_rate=16000): ...
        num_bins (property)          # F
        frame_shift_ms (property)    # hop between frames, for segment lengths in frames
        def compute(self, waves, sample_rate): ...   # [(n_i,) float32 in [-1, 1]] -> [(T_i, F)]
        def bin_frequencies(self, sample_rate): ...  # Hz of each bin (F,), or None
        def spectral_view(self, sample_rate): ...    # its bins/frames on an STFT, or None

and give the model ``FrontEndSpec("my_mel", MyMelParams(...))`` (``LoadedModel.front_end``).
``compute`` returns exactly what the model takes, normalisation included, batched over the
utterances (the features stage passes a batch of similar lengths); a waveform shorter than one
frame gives ``(0, F)``. Registered today: ``fbank`` and ``mfcc`` (Kaldi, ``voxray.features.kaldi``)
and ``sb_fbank`` (SpeechBrain's Fbank + InputNormalization, ``voxray.features.speechbrain``).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from voxray.config import ConfigError, from_dict, to_dict


class FeatureExtractor(ABC):
    """Batched frame-level model input: ``compute(waves, sr) -> [(T_i, F), ...]``.

    Built by ``from_params(params, device, sample_rate)``, which precomputes whatever is fixed
    (windows, filter banks) on ``device``.
    """

    name: ClassVar[str]
    #: frozen dataclass of the parameters that define the output.
    params_type: ClassVar[type]

    @classmethod
    @abstractmethod
    def from_params(
        cls, params: Any, device: str | torch.device = "cpu", sample_rate: int = 16000
    ) -> FeatureExtractor:
        """The extractor for ``params`` (an instance of ``params_type``)."""

    @property
    @abstractmethod
    def num_bins(self) -> int:
        """F, the feature dimension."""

    @property
    @abstractmethod
    def frame_shift_ms(self) -> float:
        """Milliseconds between consecutive frames."""

    @abstractmethod
    def compute(self, waves: list[np.ndarray], sample_rate: int) -> list[np.ndarray]:
        """The model input ``(T_i, F)`` float32 of each waveform ``(n_i,)`` (float samples in
        [-1, 1]), in input order."""

    def bin_frequencies(self, sample_rate: int) -> np.ndarray | None:
        """Centre frequency in Hz of each bin ``(F,)`` for plots, or None when bins are not
        frequencies (cepstra, an energy column)."""
        return None

    def spectral_view(self, sample_rate: int) -> SpectralView | None:
        """How the frames and bins sit on a short-time Fourier transform of the waveform, so
        a map over them can mask the audio (``voxray.mask.audio``); None when a bin is not a
        band of the spectrum (cepstra, deltas, an energy column)."""
        return None


@dataclass(frozen=True)
class SpectralView:
    """A front-end's STFT: frame ``t`` is centred on sample ``first_centre + t * hop``, and
    feature bin ``f`` pools the STFT bins with the filter bank's weights ``weights[f]``."""

    n_fft: int
    win_length: int
    hop: int
    first_centre: int
    #: ``(F, n_fft // 2 + 1)`` non-negative filter weights (a mel bank).
    weights: np.ndarray

    def __post_init__(self) -> None:
        if self.weights.ndim != 2 or self.weights.shape[1] != self.n_fft // 2 + 1:
            raise ValueError(
                f"spectral view: weights {self.weights.shape} do not span the "
                f"{self.n_fft // 2 + 1} bins of a {self.n_fft}-point FFT"
            )


#: extractor name (the ``features/kind=`` value) -> extractor class.
EXTRACTORS: dict[str, type[FeatureExtractor]] = {}


def register_extractor(cls: type[FeatureExtractor]) -> type[FeatureExtractor]:
    """Class decorator adding an extractor under ``cls.name``."""
    if cls.name in EXTRACTORS:
        raise ValueError(f"feature extractor {cls.name!r} registered twice")
    if not dataclasses.is_dataclass(cls.params_type):
        raise TypeError(f"{cls.__name__}.params_type must be a dataclass")
    EXTRACTORS[cls.name] = cls
    return cls


def extractor_class(name: str) -> type[FeatureExtractor]:
    """The registered extractor ``name``; KeyError listing the valid names otherwise."""
    if name not in EXTRACTORS:
        valid = ", ".join(sorted(EXTRACTORS))
        raise KeyError(f"unknown front-end {name!r} (registered: {valid})")
    return EXTRACTORS[name]


@dataclass(frozen=True)
class FrontEndSpec:
    """A model's input representation: extractor ``name`` and its ``params`` (an instance of
    that extractor's ``params_type``). Hashable, so a run collects the distinct ones."""

    name: str
    params: Any

    def __post_init__(self) -> None:
        cls = extractor_class(self.name)
        if not isinstance(self.params, cls.params_type):
            raise TypeError(
                f"front-end {self.name!r} takes {cls.params_type.__name__}, "
                f"got {type(self.params).__name__}"
            )

    def to_dict(self) -> dict[str, Any]:
        """``{name, params}`` as plain YAML data (config.yaml's ``front_end``)."""
        return {"name": self.name, "params": to_dict(self.params)}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FrontEndSpec:
        """Validate ``{name, params}`` read from ``where``; ConfigError naming the key."""
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise ConfigError(f"{where}: front_end must be a mapping with a 'name'")
        unknown = sorted(set(data) - {"name", "params"})
        if unknown:
            raise ConfigError(f"{where}: unknown front_end key(s) {', '.join(unknown)}")
        try:
            ex = extractor_class(data["name"])
        except KeyError as exc:
            raise ConfigError(f"{where}: front_end.name: {exc.args[0]}") from exc
        try:
            params = from_dict(ex.params_type, data.get("params") or {})
        except ConfigError as exc:
            raise ConfigError(f"{where}: front_end.params: {exc}") from exc
        return cls(data["name"], params)

    def build(
        self, device: str | torch.device = "cpu", sample_rate: int = 16000
    ) -> FeatureExtractor:
        """The extractor computing this front-end on ``device``."""
        return extractor_class(self.name).from_params(self.params, device, sample_rate)
