"""Per-utterance cepstral mean normalisation: removes the channel's constant log-spectral
offset (microphone, gain), so that features of one speaker on two channels line up."""

from __future__ import annotations

from torch import Tensor


def apply_cmn(feats: Tensor) -> Tensor:
    """``(T, F)`` -> ``(T, F)`` with each bin's mean over frames subtracted; an empty
    ``(0, F)`` input is returned as is."""
    if feats.dim() != 2:
        raise ValueError(f"apply_cmn: expected features of shape (T, F), got {tuple(feats.shape)}")
    if feats.shape[0] == 0:
        return feats
    return feats - feats.mean(dim=0, keepdim=True)
