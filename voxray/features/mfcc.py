"""MFCCs as Kaldi's ``compute-mfcc-feats`` (and ``torchaudio.compliance.kaldi.mfcc``) compute
them, for a whole batch at once: log-mel energies times one precomputed DCT-with-lifter matrix.
Zhang et al. 2023 uses 80 cepstra from 80 mel bins (no truncation)."""

from __future__ import annotations

from torch import Tensor

from voxray.features.base import register_extractor
from voxray.features.filters import dct_matrix, lifter_coefficients
from voxray.features.kaldi import KaldiExtractor


@register_extractor
class Mfcc(KaldiExtractor):
    """``(T, num_ceps)`` cepstra; with ``options.use_energy`` C0 is replaced by the log energy."""

    name = "mfcc"

    def _prepare(self) -> None:
        if not (self.options.use_log_fbank and self.options.use_power):
            raise ValueError(
                "mfcc: MFCCs are the DCT of log power mel energies; "
                "use_log_fbank and use_power must be true"
            )
        # lifter folded into the DCT columns: one (M, C) matmul per chunk
        lifter = lifter_coefficients(self.cfg.num_ceps, self.cfg.cepstral_lifter)
        dct = dct_matrix(self.cfg.num_ceps, self.cfg.num_mel_bins) * lifter[None]
        self.dct = dct.to(self.frontend.device)

    @property
    def num_bins(self) -> int:
        return int(self.dct.shape[1])

    def _finish(self, log_mel: Tensor, energy: Tensor) -> Tensor:
        ceps = log_mel @ self.dct
        if self.options.use_energy:
            ceps[:, 0] = energy
        return ceps
