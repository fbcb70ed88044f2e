"""The fixed matrices of Kaldi's front end, computed once per extractor: analysis windows,
triangular mel banks, the DCT and the cepstral lifter.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor
from torchaudio.compliance.kaldi import get_mel_banks
from torchaudio.functional import create_dct

WINDOWS = ("povey", "hamming", "hanning", "rectangular", "blackman")


def feature_window(window_type: str, size: int, blackman_coeff: float = 0.42) -> Tensor:
    """Kaldi's ``FeatureWindowFunction`` of ``size`` samples, ``(W,)`` float32.

    povey is a Hann window raised to 0.85 (zero at the edges but fatter); hanning/hamming are
    the symmetric (non-periodic) forms; blackman is the generalised one. Computed with torch's
    float32 window functions like torchaudio (Kaldi uses double; they differ by < 2e-7, which
    shows only in a mel bin holding ~1e-7 of a frame's energy, where the FFT's own float32
    rounding dominates anyway).
    """
    if window_type == "hanning":
        return torch.hann_window(size, periodic=False)
    if window_type == "povey":
        return torch.hann_window(size, periodic=False).pow(0.85)
    if window_type == "hamming":
        return torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46)
    if window_type == "rectangular":
        return torch.ones(size)
    if window_type == "blackman":
        a = 2.0 * math.pi / (size - 1)
        n = torch.arange(size, dtype=torch.float32)
        return (
            blackman_coeff
            - 0.5 * torch.cos(a * n)
            + (0.5 - blackman_coeff) * torch.cos(2.0 * a * n)
        )
    valid = ", ".join(WINDOWS)
    raise ValueError(f"features.window: unknown window {window_type!r} (valid: {valid})")


def check_band(low_freq: float, high_freq: float, sample_rate: int) -> None:
    """Refuse a mel band outside (0, Nyquist]; ``high_freq <= 0`` is an offset from Nyquist."""
    nyquist = 0.5 * sample_rate
    high = high_freq + nyquist if high_freq <= 0.0 else high_freq
    if not (0.0 <= low_freq < nyquist and 0.0 < high <= nyquist and low_freq < high):
        raise ValueError(
            f"features.low_freq={low_freq:g} / features.high_freq={high_freq:g} give the band "
            f"[{low_freq:g}, {high:g}] Hz, not inside (0, {nyquist:g}] "
            f"(Nyquist at {sample_rate} Hz)"
        )


def mel_banks(
    num_bins: int, padded_size: int, sample_rate: int, low_freq: float, high_freq: float
) -> tuple[Tensor, np.ndarray]:
    """Triangular filters on the mel scale ``(num_bins, padded_size // 2 + 1)`` float32, and
    their centre frequencies in Hz ``(num_bins,)``.

    Bins are equally spaced in mel between low and high with ``num_bins + 1`` steps (the end
    bins spread to the sides); the Nyquist FFT bin gets weight 0, as in Kaldi. The weights are
    torchaudio's own float32 ones (Kaldi builds them in float too), so the filter bank adds no
    difference to the reference at all.
    """
    if num_bins <= 3:
        raise ValueError(f"features.num_mel_bins must be > 3, got {num_bins}")
    check_band(low_freq, high_freq, sample_rate)
    banks, centers = get_mel_banks(
        num_bins, padded_size, float(sample_rate), low_freq, high_freq, 100.0, -500.0, 1.0
    )
    return torch.nn.functional.pad(banks, (0, 1)), centers.double().numpy().reshape(-1)


def dct_matrix(num_ceps: int, num_mel_bins: int) -> Tensor:
    """Kaldi's orthonormal DCT-II as a right multiply, ``(num_mel_bins, num_ceps)`` float32.

    Built with ``torchaudio.functional.create_dct`` in float32 as torchaudio's ``mfcc`` builds
    it. Kaldi evaluates the cosines in double; for 80 cepstra the float32 cosines (arguments
    up to ~250 rad) move high-order MFCCs by up to ~3e-3, so the float32 matrix is what keeps
    the output within 1e-3 of ``torchaudio.compliance.kaldi.mfcc``.
    """
    if num_ceps > num_mel_bins:
        raise ValueError(
            f"features.num_ceps={num_ceps} cannot exceed features.num_mel_bins={num_mel_bins}"
        )
    if num_ceps < 1:
        raise ValueError(f"features.num_ceps must be at least 1, got {num_ceps}")
    dct = create_dct(num_mel_bins, num_mel_bins, "ortho")
    dct[:, 0] = math.sqrt(1.0 / num_mel_bins)
    return dct[:, :num_ceps].contiguous()


def lifter_coefficients(num_ceps: int, cepstral_lifter: float) -> Tensor:
    """``1 + L/2 sin(pi i / L)`` per cepstrum ``(num_ceps,)``; all ones when L is 0."""
    if cepstral_lifter == 0.0:
        return torch.ones(num_ceps)
    i = np.arange(num_ceps, dtype=np.float64)
    lifter = 1.0 + 0.5 * cepstral_lifter * np.sin(math.pi * i / cepstral_lifter)
    return torch.as_tensor(lifter, dtype=torch.float32)
