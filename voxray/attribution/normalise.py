"""Per-item normalisation of attribution and saliency maps, so maps of different methods and
utterances share one scale (Li et al. 2022 section 3.2) and can be thresholded (Zhang et al. 2023's
tau).

Every function normalises over the last two axes ``(T, F)`` of a map ``(..., T, F)``, given as a
``torch.Tensor`` or a ``numpy.ndarray`` (the result has the same kind). A map that is constant
(min-max) or zero everywhere (max-abs) normalises to zeros instead of dividing by zero.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from torch import Tensor

Map = TypeVar("Map", Tensor, np.ndarray)

_AXES = (-2, -1)


def _check(a: Tensor | np.ndarray, name: str) -> None:
    if a.ndim < 2:
        raise ValueError(f"{name}: expected a map (..., T, F), got shape {tuple(a.shape)}")


def _amax(a: Map) -> Map:
    if isinstance(a, Tensor):
        return a.amax(dim=_AXES, keepdim=True)
    return a.max(axis=_AXES, keepdims=True)


def _amin(a: Map) -> Map:
    if isinstance(a, Tensor):
        return a.amin(dim=_AXES, keepdim=True)
    return a.min(axis=_AXES, keepdims=True)


def _safe_divide(num: Map, den: Map) -> Map:
    """``num / den`` where ``den > 0``, else 0 (den is a per-item scale, never negative)."""
    if isinstance(num, Tensor):
        positive = den > 0
        return torch.where(positive, num / torch.where(positive, den, torch.ones_like(den)), 0.0)
    positive = den > 0
    return np.where(positive, num / np.where(positive, den, 1.0), 0.0).astype(num.dtype, copy=False)


def minmax(s: Map) -> Map:
    """``(S - min S) / (max S - min S)`` per item (Li et al. 2022 eq. 8), in [0, 1]."""
    _check(s, "minmax")
    low = _amin(s)
    return _safe_divide(s - low, _amax(s) - low)


def tanh_scale(s: Map, gamma: float = 5.0) -> Map:
    """``tanh(gamma * S_hat / max S_hat)`` with ``S_hat = minmax(S)`` (Li et al. 2022 eqs. 8-9,
    gamma = 5):
    spreads the small saliency values so more of the map is visibly non-zero; in
    [0, tanh(gamma)]."""
    hat = minmax(s)
    scaled = _safe_divide(gamma * hat, _amax(hat))
    return torch.tanh(scaled) if isinstance(scaled, Tensor) else np.tanh(scaled)


def abs_max(a: Map) -> Map:
    """``|A| / max |A|`` per item, in [0, 1]: the magnitude of signed attributions on one scale,
    which is what a mask threshold (Zhang et al. 2023: tau = 0.1) compares against."""
    _check(a, "abs_max")
    mag = a.abs() if isinstance(a, Tensor) else np.abs(a)
    return _safe_divide(mag, _amax(mag))


def freq_profile(a: Tensor | np.ndarray) -> np.ndarray:
    """Per-frequency-bin importance ``(F,)`` of one map ``(T, F)``: the mean over frames of
    ``|A|``, normalised to sum to 1 (float32, the attributions/ ``freq_profile`` column).

    A map that is zero everywhere carries no preference for any bin and gives the uniform
    profile ``1/F``, so averages of profiles over utterances stay distributions.
    """
    m = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    if m.ndim != 2 or m.shape[1] == 0:
        raise ValueError(f"freq_profile: expected one map (T, F) with F > 0, got shape {m.shape}")
    per_bin = np.abs(m.astype(np.float64)).mean(axis=0) if m.shape[0] else np.zeros(m.shape[1])
    total = per_bin.sum()
    if not np.isfinite(total):
        raise ValueError("freq_profile: the map has non-finite values")
    if total <= 0:
        return np.full(m.shape[1], 1.0 / m.shape[1], dtype=np.float32)
    return (per_bin / total).astype(np.float32)
