"""Kaldi's fbank front end, batched: frames of many utterances go through one pipeline.

Per frame, exactly as ``torchaudio.compliance.kaldi`` (and Kaldi's ``ExtractWindow``) do it:
dither -> remove DC offset -> (raw) log energy -> pre-emphasis -> window -> zero-pad ->
|FFT|^2 -> mel filter bank -> log. The frames of a whole batch are processed in chunks of a
few thousand rows: one FFT and one (block-banded) mel matmul per chunk instead of per
utterance, in chunks small enough to stay in cache on a CPU (one huge FFT is several times
slower there: its buffers are fresh pages every call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from voxray.config import FeatureConfig
from voxray.features.filters import feature_window, mel_banks
from voxray.features.framing import FrameGeometry, PackedFrames, pack_frames

#: numeric_limits<float>::epsilon(), Kaldi's floor inside logs.
EPSILON = float(torch.finfo(torch.float32).eps)

#: (log-)mel energies ``(C, M)`` and log energies ``(C,)`` of a chunk -> features ``(C, F)``.
Finish = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class KaldiOptions:
    """Kaldi frame options that ``FeatureConfig`` does not carry; the defaults are Kaldi's
    (``energy_floor`` 0 as in current Kaldi, not torchaudio's 1.0)."""

    snip_edges: bool = True
    remove_dc_offset: bool = True
    round_to_power_of_two: bool = True
    #: log energy before pre-emphasis and windowing (Kaldi's --raw-energy).
    raw_energy: bool = True
    energy_floor: float = 0.0
    #: prepend the log energy to fbank / put it in place of C0 in MFCC.
    use_energy: bool = False
    use_log_fbank: bool = True
    use_power: bool = True
    blackman_coeff: float = 0.42
    #: seed of the dither noise generator (used only when ``FeatureConfig.dither > 0``).
    dither_seed: int = 0


@dataclass(frozen=True)
class MelGroup:
    """A run of consecutive mel filters restricted to the spectrum columns ``cols`` where they
    are non-zero, weights ``(len(cols), filters)``. The mel bank is banded, so a few such blocks
    do the work of the dense ``(P // 2 + 1, M)`` matmul with a fraction of the flops."""

    cols: slice
    weight: Tensor


@dataclass(frozen=True)
class RateState:
    """What depends on the sample rate, on the front end's device: frame sizes, the window
    ``(W,)`` and the mel bank in blocks."""

    geometry: FrameGeometry
    window: Tensor
    mel_groups: tuple[MelGroup, ...]


def default_chunk_frames(device: torch.device) -> int:
    """Frames per chunk: cache-sized on CPU, large on accelerators (fewer kernel launches)."""
    return 2048 if device.type == "cpu" else 65536


def default_mel_groups(device: torch.device) -> int:
    """Blocks of the banded mel matmul: a few on CPU (fewer flops), one on accelerators."""
    return 4 if device.type == "cpu" else 1


def mel_groups(banks: Tensor, num_groups: int, device: torch.device) -> tuple[MelGroup, ...]:
    """Split the mel bank ``(M, P // 2 + 1)`` into ``num_groups`` blocks of consecutive filters
    (in order: concatenating their outputs gives the M bins)."""
    num_bins = banks.shape[0]
    edges = [round(i * num_bins / num_groups) for i in range(num_groups + 1)]
    groups = []
    for b0, b1 in zip(edges[:-1], edges[1:], strict=True):
        if b0 == b1:
            continue
        nonzero = (banks[b0:b1] > 0).any(dim=0).nonzero()
        c0, c1 = (int(nonzero.min()), int(nonzero.max()) + 1) if nonzero.numel() else (0, 1)
        weight = banks[b0:b1, c0:c1].T.contiguous().to(device)
        groups.append(MelGroup(slice(c0, c1), weight))
    return tuple(groups)


class KaldiFrontEnd:
    """Holds the window and mel bank per sample rate; turns a batch of waves into frame-level
    features and log energies, one ``(T_i, F)`` / ``(T_i,)`` view per utterance."""

    def __init__(
        self,
        cfg: FeatureConfig,
        options: KaldiOptions,
        device: str | torch.device = "cpu",
        sample_rate: int = 16000,
        chunk_frames: int | None = None,
    ) -> None:
        if not 0.0 <= cfg.preemphasis <= 1.0:
            raise ValueError(f"features.preemphasis must be in [0, 1], got {cfg.preemphasis:g}")
        if cfg.dither < 0.0:
            raise ValueError(f"features.dither must be >= 0, got {cfg.dither:g}")
        if options.energy_floor < 0.0:
            raise ValueError(f"energy_floor must be >= 0, got {options.energy_floor:g}")
        self.cfg = cfg
        self.options = options
        self.device = torch.device(device)
        self.chunk_frames = chunk_frames or default_chunk_frames(self.device)
        self.num_mel_groups = default_mel_groups(self.device)
        self._states: dict[int, RateState] = {}
        self._generator: torch.Generator | None = None
        if cfg.dither > 0.0:
            self._generator = torch.Generator(device=self.device)
            self._generator.manual_seed(options.dither_seed)
        self.state(sample_rate)

    @property
    def num_mel_bins(self) -> int:
        return self.cfg.num_mel_bins

    def state(self, sample_rate: int) -> RateState:
        """The window and mel bank for ``sample_rate``, built on first use and kept."""
        if sample_rate not in self._states:
            cfg, opt = self.cfg, self.options
            geometry = FrameGeometry.from_config(cfg, sample_rate, opt.round_to_power_of_two)
            window = feature_window(cfg.window, geometry.window_size, opt.blackman_coeff)
            banks, _ = mel_banks(
                cfg.num_mel_bins, geometry.padded_size, sample_rate, cfg.low_freq, cfg.high_freq
            )
            self._states[sample_rate] = RateState(
                geometry,
                window.to(self.device),
                mel_groups(banks, self.num_mel_groups, self.device),
            )
        return self._states[sample_rate]

    def compute(
        self, waves: list[Tensor], sample_rate: int, finish: Finish, out_dim: int
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Features ``(T_i, out_dim)`` and log energies ``(T_i,)`` of each waveform (views into
        one batch buffer); ``T_i`` is 0 for a waveform shorter than one frame."""
        st = self.state(sample_rate)
        packed = pack_frames(waves, st.geometry, self.device, self.options.snip_edges)
        rows = packed.view.shape[0]
        feats = torch.empty(rows, out_dim, dtype=torch.float32, device=self.device)
        energy = torch.empty(rows, dtype=torch.float32, device=self.device)
        for start in range(0, rows, self.chunk_frames):
            x, e = self._condition(packed.view[start : start + self.chunk_frames], st)
            stop = start + x.shape[0]
            energy[start:stop] = e
            feats[start:stop] = finish(self._mel(x, st), e)
        return _split(feats, packed), _split(energy, packed)

    def log_energy(self, waves: list[Tensor], sample_rate: int) -> list[Tensor]:
        """Only the per-frame log energies ``(T_i,)`` of each waveform (no FFT)."""
        st = self.state(sample_rate)
        packed = pack_frames(waves, st.geometry, self.device, self.options.snip_edges)
        rows = packed.view.shape[0]
        energy = torch.empty(rows, dtype=torch.float32, device=self.device)
        for start in range(0, rows, self.chunk_frames):
            _, e = self._condition(packed.view[start : start + self.chunk_frames], st)
            energy[start : start + e.shape[0]] = e
        return _split(energy, packed)

    def _condition(self, frames: Tensor, st: RateState) -> tuple[Tensor, Tensor]:
        """Frames ``(C, W)`` -> windowed, zero-padded frames ``(C, P)`` and log energies
        ``(C,)``. The op order is torchaudio's, so results agree to the last bit; ``frames``
        is an overlapping view and is never written."""
        cfg, opt = self.cfg, self.options
        size, c = st.geometry.window_size, cfg.preemphasis
        x = frames
        if self._generator is not None:
            noise = torch.randn(x.shape, generator=self._generator, device=x.device, dtype=x.dtype)
            x = x + noise * cfg.dither
        if opt.remove_dc_offset:
            x = x - x.mean(dim=1, keepdim=True)
        if opt.raw_energy:
            energy = self._log_energy(x)
        windowed = torch.empty(x.shape[0], st.geometry.padded_size, dtype=x.dtype, device=x.device)
        windowed[:, size:] = 0.0
        if c != 0.0:
            # pre-emphasis x[j] - c * x[max(0, j - 1)], written straight into the window
            shifted = x[:, :-1] * c
            torch.sub(x[:, 1:], shifted, out=shifted)
            torch.mul(shifted, st.window[1:], out=windowed[:, 1:size])
            torch.mul(x[:, :1] - x[:, :1] * c, st.window[:1], out=windowed[:, :1])
        else:
            torch.mul(x, st.window, out=windowed[:, :size])
        if not opt.raw_energy:
            energy = self._log_energy(windowed)
        return windowed, energy

    def _log_energy(self, x: Tensor) -> Tensor:
        energy = x.square().sum(dim=1).clamp_min_(EPSILON).log_()
        if self.options.energy_floor > 0.0:
            energy.clamp_min_(math.log(self.options.energy_floor))
        return energy

    def _mel(self, windowed: Tensor, st: RateState) -> Tensor:
        """Windowed frames ``(C, P)`` -> (log) mel energies ``(C, M)``."""
        spectrum = torch.fft.rfft(windowed)
        if self.options.use_power:
            # |X|^2 = re^2 + im^2 (squaring the contiguous pairs first is the fast order)
            pairs = torch.view_as_real(spectrum).reshape(spectrum.shape[0], -1).square_()
            spec = pairs[:, 0::2] + pairs[:, 1::2]
        else:
            spec = spectrum.abs()
        mel = torch.cat([spec[:, g.cols] @ g.weight for g in st.mel_groups], dim=1)
        if self.options.use_log_fbank:
            mel.clamp_min_(EPSILON).log_()
        return mel


def _split(packed: Tensor, frames: PackedFrames) -> list[Tensor]:
    """Rows ``(K, ...)`` of the whole batch -> one ``(T_i, ...)`` view per utterance."""
    return [packed[s : s + c] for s, c in zip(frames.starts, frames.counts, strict=True)]
