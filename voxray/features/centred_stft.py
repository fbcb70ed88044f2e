"""The centred-STFT mel power of the front-ends that follow librosa and SpeechBrain rather
than Kaldi (``ge2e_mel``, ``sb_fbank``): one batch of zero-padded waveforms, one STFT, one mel
matmul. Each front-end keeps its own filters, window and what it does with the power after.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def zero_padded(waves: list[np.ndarray], width: int) -> Tensor:
    """The waveforms as one float32 batch ``(B, width)``, zeros after each: what librosa and
    SpeechBrain pad one utterance with, so batching changes none of its frames."""
    batch = torch.zeros(len(waves), width, dtype=torch.float32)
    for i, w in enumerate(waves):
        w = np.asarray(w, dtype=np.float32)
        batch[i, : w.size] = torch.from_numpy(w)
    return batch


def mel_power(
    batch: Tensor, n_fft: int, hop: int, win_length: int, window: Tensor, filters: Tensor
) -> Tensor:
    """Waveforms ``(B, N)`` -> mel power ``(B, T, n_mels)``: a centred STFT with zero padding
    (frame t centred on sample t * hop), power 2, through ``filters`` ``(n_fft/2+1, n_mels)``."""
    spec = torch.stft(
        batch,
        n_fft,
        hop,
        win_length,
        window,
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    power = torch.view_as_real(spec).pow(2).sum(-1).transpose(1, 2)  # (B, T, n_fft/2+1)
    return power @ filters
