"""What a speaker model's named layers (``layers()``, the ones CAM and LRP address) output, for the
model tests that check their shapes and order against the papers' tables."""

from __future__ import annotations

import torch
from torch import Tensor

from voxray.models.base import SpeakerEmbedder


def layer_outputs(model: SpeakerEmbedder, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """``model(x)`` without gradients, and the output of each of its named layers, keyed in the
    order the layers ran (a layer that runs twice keeps its first place and its last output)."""
    seen: dict[str, Tensor] = {}
    hooks = [
        m.register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out))
        for n, m in model.layers().items()
    ]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, seen


def layer_shapes(model: SpeakerEmbedder, x: Tensor) -> tuple[Tensor, dict[str, tuple[int, ...]]]:
    """``layer_outputs`` with each layer's output shape instead of the output."""
    out, seen = layer_outputs(model, x)
    return out, {n: tuple(o.shape) for n, o in seen.items()}
