"""Kaldi frame geometry and batched framing: many waveforms, one strided view.

Every utterance is copied once into a flat buffer at an offset that is a multiple of the
frame shift, so one ``as_strided`` view ``(K, W)`` (a row every ``shift`` samples, no copy)
holds the frames of all utterances, each utterance's frames as consecutive rows. Padding to
the longest utterance is never materialised: the waste is a couple of rows per utterance.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from voxray.config import FeatureConfig

MILLISECONDS_TO_SECONDS = 0.001


def next_power_of_two(x: int) -> int:
    """The smallest power of two >= ``x`` (Kaldi's ``RoundUpToNearestPowerOfTwo``)."""
    return 1 if x == 0 else 2 ** (x - 1).bit_length()


@dataclass(frozen=True)
class FrameGeometry:
    """Frame sizes in samples for one sample rate."""

    window_size: int
    window_shift: int
    #: FFT length: ``window_size`` rounded up to a power of two, or ``window_size``.
    padded_size: int

    @classmethod
    def from_config(
        cls, cfg: FeatureConfig, sample_rate: int, round_to_power_of_two: bool = True
    ) -> FrameGeometry:
        """Sizes as torchaudio's kaldi module truncates them (``int(sr * ms * 0.001)``)."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        shift = int(sample_rate * cfg.frame_shift_ms * MILLISECONDS_TO_SECONDS)
        size = int(sample_rate * cfg.frame_length_ms * MILLISECONDS_TO_SECONDS)
        if size < 2:
            raise ValueError(
                f"features.frame_length_ms={cfg.frame_length_ms:g} gives {size} samples at "
                f"{sample_rate} Hz; a frame needs at least 2"
            )
        if shift < 1:
            raise ValueError(
                f"features.frame_shift_ms={cfg.frame_shift_ms:g} gives {shift} samples at "
                f"{sample_rate} Hz; the shift must be at least 1"
            )
        padded = next_power_of_two(size) if round_to_power_of_two else size
        if padded % 2:
            raise ValueError(
                f"features.frame_length_ms={cfg.frame_length_ms:g} gives an odd FFT length "
                f"{padded} at {sample_rate} Hz; use round_to_power_of_two or another frame length"
            )
        return cls(size, shift, padded)

    def num_frames(self, num_samples: int, snip_edges: bool = True) -> int:
        """Frames Kaldi makes of ``num_samples``; 0 when shorter than one frame.

        With ``snip_edges=False`` Kaldi counts ``round(n / shift)`` frames over a reflected
        signal; a signal shorter than one window still gives 0 here (torchaudio refuses it).
        """
        if num_samples < self.window_size:
            return 0
        if snip_edges:
            return 1 + (num_samples - self.window_size) // self.window_shift
        return (num_samples + self.window_shift // 2) // self.window_shift


@dataclass(frozen=True)
class PackedFrames:
    """Frames of a batch of utterances in one strided view ``(K, W)``.

    Utterance ``b`` owns rows ``starts[b] : starts[b] + counts[b]`` (``counts[b]`` is 0 for
    one shorter than a frame); the few rows between utterances straddle two of them and are
    computed but never returned (about two per utterance).
    """

    view: Tensor
    starts: list[int]
    counts: list[int]


def _reflect_edges(wave: Tensor, geometry: FrameGeometry) -> Tensor:
    """The signal Kaldi frames when ``snip_edges=False``: reflected at both ends."""
    reversed_wave = torch.flip(wave, [0])
    pad = geometry.window_size // 2 - geometry.window_shift // 2
    if pad > 0:
        return torch.cat((reversed_wave[-pad:], wave, reversed_wave))
    return torch.cat((wave[-pad:], reversed_wave))


def as_waveform(wave: Tensor, index: int) -> Tensor:
    """``wave`` as a 1-D float32 tensor (``(n,)`` or mono ``(1, n)``); errors name the index."""
    w = torch.as_tensor(wave)
    if w.dim() == 2 and w.shape[0] == 1:
        w = w[0]
    if w.dim() != 1:
        raise ValueError(
            f"waveform {index}: expected shape (num_samples,) or (1, num_samples), "
            f"got {tuple(w.shape)}"
        )
    if not (w.is_floating_point() or w.dtype in (torch.int16, torch.int32, torch.int64)):
        raise ValueError(f"waveform {index}: expected real samples, got dtype {w.dtype}")
    return w.to(torch.float32)


def pack_frames(
    waves: list[Tensor], geometry: FrameGeometry, device: torch.device, snip_edges: bool = True
) -> PackedFrames:
    """Lay ``waves`` into one buffer on ``device`` and view all their frames at once."""
    shift, size = geometry.window_shift, geometry.window_size
    starts: list[int] = []
    counts: list[int] = []
    pieces: list[tuple[int, Tensor]] = []
    offset = 0
    for i, wave in enumerate(waves):
        w = as_waveform(wave, i)
        count = geometry.num_frames(int(w.numel()), snip_edges)
        starts.append(offset // shift)
        counts.append(count)
        if count:
            signal = w if snip_edges else _reflect_edges(w, geometry)
            pieces.append((offset, signal))
            # the next utterance starts on a multiple of the shift: frame m is row offset/shift + m
            offset += -(-int(signal.numel()) // shift) * shift
    total = max(offset, size)
    on_cpu = all(signal.device.type == "cpu" for _, signal in pieces)
    buffer = torch.empty(total, dtype=torch.float32, device="cpu" if on_cpu else device)
    end = 0
    for start, signal in pieces:
        buffer[end:start].zero_()  # the < shift samples between two utterances
        end = start + signal.numel()
        buffer[start:end].copy_(signal)
    buffer[end:].zero_()
    buffer = buffer.to(device)
    view = buffer.as_strided((1 + (total - size) // shift, size), (shift, 1))
    return PackedFrames(view, starts, counts)
