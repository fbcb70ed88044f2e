"""Which layers a CAM reads, and how a layer-resolution map is brought back to the input grid.

Layer specs name ``embedder.layers()`` entries; an entry may join several with ``+``
(``"S3+S4"``, Li et al. 2022 Table 2), and ``("S3", "S4")`` means the same. An empty spec takes the
embedder's last frame-level layer: the last named layer whose output is a 2-D map
``(B, C, F', T')`` or a 1-D sequence ``(B, C, T')`` with ``T' > 1`` (ECAPA: ``mfa``; ResNet34SE:
``S4``; pooled or embedding outputs do not qualify).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from voxray.attribution.hooks import capture_outputs
from voxray.models.base import SpeakerEmbedder


def parse_layer_spec(spec: Sequence[str]) -> list[str]:
    """``("S3+S4", "S2")`` -> ``["S3", "S4", "S2"]`` (order kept, repeats dropped)."""
    names: list[str] = []
    for entry in spec:
        parts = [p.strip() for p in str(entry).split("+")]
        if any(not p for p in parts):
            raise ValueError(f"attribution.cam_layers: empty layer name in {entry!r}")
        names.extend(p for p in parts if p not in names)
    return names


def is_frame_level(output: Any) -> bool:
    """A conv feature map with a time axis: ``(B, C, F', T')`` or ``(B, C, T')``, ``T' > 1``."""
    if not isinstance(output, Tensor):
        return False
    return output.dim() == 4 or (output.dim() == 3 and output.shape[-1] > 1)


@torch.no_grad()
def default_cam_layer(embedder: SpeakerEmbedder, feats: Tensor) -> str:
    """The last frame-level layer of ``embedder``, found from one item's forward pass."""
    layers = embedder.layers()
    with capture_outputs(layers) as outputs:
        embedder(feats[:1])
    names = [n for n in layers if outputs[n] and is_frame_level(outputs[n][-1])]
    if not names:
        raise ValueError(
            f"{type(embedder).__name__} has no frame-level conv layer for a CAM among "
            f"{', '.join(layers)}; name one in attribution.cam_layers"
        )
    return names[-1]


def resolve_cam_layers(embedder: SpeakerEmbedder, spec: Sequence[str], feats: Tensor) -> list[str]:
    """The layer names a CAM reads (validated against ``embedder.layers()``)."""
    names = parse_layer_spec(spec)
    if not names:
        return [default_cam_layer(embedder, feats)]
    for name in names:
        embedder.layer(name)  # KeyError listing the valid names
    return names


def feature_map(name: str, outputs: list[Any]) -> Tensor:
    """The single output of layer ``name`` in one forward pass, checked to be a conv map."""
    if len(outputs) != 1:
        raise ValueError(
            f"CAM layer {name!r} ran {len(outputs)} times in one forward pass; "
            f"it needs exactly one output"
        )
    out = outputs[0]
    if not isinstance(out, Tensor) or out.dim() not in (3, 4):
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"CAM layer {name!r} must output (B, C, T') or (B, C, F', T'), got {shape}"
        )
    return out


def to_input_grid(maps: Tensor, frames: int, bins: int) -> Tensor:
    """Layer-resolution maps to the input grid ``(N, T, F)``.

    ``(N, F', T')`` (2-D layers) is bilinearly upsampled to ``(F, T)`` and transposed;
    ``(N, T')`` (1-D layers, no frequency axis: ECAPA) is linearly upsampled over time and the
    same value repeated over all bins.
    """
    if maps.dim() == 3:
        size = (bins, frames)
        up = F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False)
        return up.squeeze(1).transpose(1, 2)
    if maps.dim() == 2:
        up = F.interpolate(maps.unsqueeze(1), size=frames, mode="linear", align_corners=False)
        return up.squeeze(1).unsqueeze(2).expand(-1, frames, bins)
    raise ValueError(f"CAM maps must be (N, T') or (N, F', T'), got {tuple(maps.shape)}")
