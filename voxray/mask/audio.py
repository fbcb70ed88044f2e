"""Explanations you can listen to: split a waveform into the speech a map keeps and the speech
it removes.

The map ``(T, F)`` is over the model's own frames and bins (fbank / mel), so the mask is made
at that resolution and carried to the STFT the front-end computes (``SpectralView``): a feature
bin's value spreads over the STFT bins its mel filter covers, weighted by the filter (an STFT
bin under two filters gets their weighted mean; bins no filter covers take the nearest covered
bin's value), and STFT frame ``s`` takes the feature frame centred nearest to it. Both parts
are resynthesised with the original phase (``torch.istft``); the masks are ``M`` and ``1 - M``,
so kept + removed is the original up to the STFT round trip.

``M`` is the map's signed reading (``voxray.mask.rules.threshold_scores``): ``A / max A``
clipped to [0, 1], so bins that speak against the explained output are removed and a map of
ones keeps everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from voxray.features.base import SpectralView
from voxray.mask.rules import threshold_scores


@dataclass(frozen=True)
class SpeechSplit:
    """The waveform ``(n,)`` split by a map: ``kept + removed`` is the original."""

    kept: np.ndarray
    removed: np.ndarray


def feature_mask(relevance: np.ndarray) -> np.ndarray:
    """The soft mask ``(T, F)`` in [0, 1] of a map: its positive evidence over its peak."""
    return np.clip(threshold_scores(relevance, "signed", "abs_max"), 0.0, 1.0)


def stft_mask(mask: np.ndarray, view: SpectralView, num_stft_frames: int) -> np.ndarray:
    """The feature mask ``(T, F)`` on the STFT grid ``(n_fft // 2 + 1, num_stft_frames)``."""
    w = view.weights.astype(np.float64)  # (F, K)
    if mask.shape[1] != w.shape[0]:
        raise ValueError(f"a map of {mask.shape[1]} bins does not match {w.shape[0]} filters")
    cover = w.sum(axis=0)  # (K,)
    covered = np.flatnonzero(cover > 0)
    per_bin = (mask.astype(np.float64) @ w)[:, covered] / cover[covered]  # (T, K covered)
    # a bin outside every filter (below low_freq, the Nyquist bin) takes its nearest neighbour
    nearest = covered[np.abs(np.arange(w.shape[1])[:, None] - covered[None, :]).argmin(axis=1)]
    column = np.searchsorted(covered, nearest)
    centres = np.arange(num_stft_frames) * view.hop  # centred STFT: frame s at sample s * hop
    frame = np.rint((centres - view.first_centre) / view.hop).astype(np.int64)
    frame = np.clip(frame, 0, mask.shape[0] - 1)
    return per_bin[frame][:, column].T


def split_speech(wave: np.ndarray, relevance: np.ndarray, view: SpectralView) -> SpeechSplit:
    """Split ``wave`` ``(n,)`` by ``relevance`` ``(T, F)`` (the map of the front-end ``view``
    describes) into what the map keeps and what it removes, both ``(n,)`` float32."""
    if relevance.ndim != 2 or relevance.shape[0] == 0:
        raise ValueError(f"a map must be (T, F) with T > 0, got {relevance.shape}")
    x = torch.from_numpy(np.asarray(wave, dtype=np.float32))
    window = torch.hann_window(view.win_length)
    kw = {"n_fft": view.n_fft, "hop_length": view.hop, "win_length": view.win_length}
    spec = torch.stft(x, window=window, center=True, return_complex=True, **kw)  # (K, S)
    m = torch.from_numpy(stft_mask(feature_mask(relevance), view, spec.shape[1])).to(spec.real)

    def resynth(gain: torch.Tensor) -> np.ndarray:
        y = torch.istft(spec * gain, window=window, center=True, length=x.numel(), **kw)
        return y.numpy().astype(np.float32)

    return SpeechSplit(resynth(m), resynth(1.0 - m))
