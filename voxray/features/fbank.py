"""Log-Mel filterbank energies as Kaldi's ``compute-fbank-feats`` (and
``torchaudio.compliance.kaldi.fbank``) compute them, for a whole batch at once."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from voxray.features.base import SpectralView, register_extractor
from voxray.features.filters import mel_banks
from voxray.features.framing import FrameGeometry
from voxray.features.kaldi import KaldiExtractor, mel_center_frequencies


@register_extractor
class Fbank(KaldiExtractor):
    """``(T, num_mel_bins)`` log-mel energies, or ``(T, 1 + num_mel_bins)`` with the log
    energy first when ``options.use_energy``."""

    name = "fbank"

    @property
    def num_bins(self) -> int:
        return self.frontend.num_mel_bins + int(self.options.use_energy)

    def _finish(self, mel: Tensor, energy: Tensor) -> Tensor:
        if self.options.use_energy:
            return torch.cat((energy[:, None], mel), dim=1)
        return mel

    def bin_frequencies(self, sample_rate: int) -> np.ndarray | None:
        if self.options.use_energy:
            return None
        return mel_center_frequencies(self.cfg, sample_rate, self.options.round_to_power_of_two)

    def spectral_view(self, sample_rate: int) -> SpectralView | None:
        if self.options.use_energy or self.cfg.vad:  # VAD drops frames off the STFT's grid
            return None
        cfg, opt = self.cfg, self.options
        g = FrameGeometry.from_config(cfg, sample_rate, opt.round_to_power_of_two)
        banks, _ = mel_banks(
            cfg.num_mel_bins, g.padded_size, sample_rate, cfg.low_freq, cfg.high_freq
        )
        # snip_edges frames start at t * shift; otherwise Kaldi centres them half a shift in
        centre = g.window_size // 2 if opt.snip_edges else g.window_shift // 2
        return SpectralView(g.padded_size, g.window_size, g.window_shift, centre, banks.numpy())
