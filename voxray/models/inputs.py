"""The input check every embedder runs first, so a wrong feature layout fails with one clear
message instead of a shape error deep inside a convolution."""

from __future__ import annotations

from torch import Tensor


def check_features(x: Tensor, model: str, input_dim: int, min_frames: int = 1) -> None:
    """Raise ValueError unless ``x`` is ``(B, T, input_dim)`` with ``T >= min_frames``."""
    if x.dim() != 3 or x.shape[2] != input_dim:
        raise ValueError(f"{model} expects (B, T, {input_dim}) features, got {tuple(x.shape)}")
    if x.shape[1] < min_frames:
        raise ValueError(f"{model} needs at least {min_frames} frames, got {x.shape[1]}")
