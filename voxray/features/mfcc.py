"""MFCCs as Kaldi's ``compute-mfcc-feats`` (and ``torchaudio.compliance.kaldi.mfcc``) compute
them, for a whole batch at once: log-mel energies times one precomputed DCT-with-lifter matrix.
Zhang et al. 2023 uses 80 cepstra from 80 mel bins (no truncation)."""

from __future__ import annotations

import torch
from torch import Tensor

from voxray.config import FeatureConfig
from voxray.features.base import register_extractor
from voxray.features.filters import dct_matrix, lifter_coefficients
from voxray.features.frontend import KaldiFrontEnd, KaldiOptions
from voxray.features.kaldi import KaldiExtractor


@register_extractor
class Mfcc(KaldiExtractor):
    """``(T, num_ceps)`` cepstra; with ``options.use_energy`` C0 is replaced by the log energy."""

    name = "mfcc"

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
        if not (self.options.use_log_fbank and self.options.use_power):
            raise ValueError(
                "mfcc: MFCCs are the DCT of log power mel energies; "
                "use_log_fbank and use_power must be true"
            )
        self.frontend = KaldiFrontEnd(cfg, self.options, device, sample_rate)
        # lifter folded into the DCT columns: one (M, C) matmul per chunk
        lifter = lifter_coefficients(cfg.num_ceps, cfg.cepstral_lifter)
        dct = dct_matrix(cfg.num_ceps, cfg.num_mel_bins) * lifter[None]
        self.dct = dct.to(self.frontend.device)

    @property
    def num_bins(self) -> int:
        return int(self.dct.shape[1])

    def extract_with_energy(
        self, waves: list[Tensor], sample_rate: int
    ) -> tuple[list[Tensor], list[Tensor]]:
        return self.frontend.compute(waves, sample_rate, self._finish, self.num_bins)

    def _finish(self, log_mel: Tensor, energy: Tensor) -> Tensor:
        ceps = log_mel @ self.dct
        if self.options.use_energy:
            ceps[:, 0] = energy
        return ceps
