"""What every model source returns (``LoadedModel``, its ``capabilities``) and the safe weight
readers they share: every ``torch.load`` is ``weights_only=True``, so a pickle that would run code
is refused, and a state dict that does not fit its module is reported by key.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from voxray.config import ModelConfig
from voxray.features import FrontEndSpec
from voxray.io.storage import Storage
from voxray.models.base import SpeakerClassifier, SpeakerEmbedder
from voxray.models.heads import MarginHead

CONV_TYPES: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def conv_layers(embedder: SpeakerEmbedder) -> tuple[str, ...]:
    """The names in ``embedder.layers()`` holding a convolution: what a CAM can weight."""
    return tuple(
        name
        for name, layer in embedder.layers().items()
        if any(isinstance(m, CONV_TYPES) for m in layer.modules())
    )


@dataclass(frozen=True)
class Capabilities:
    """What the explanations can use: a classification head (the Classification, CAM and LRP
    pathways explain its logits), the named layers, and which of them are convolutional."""

    has_head: bool
    layers: tuple[str, ...]
    conv_layers: tuple[str, ...]


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded as asked; the message names the file and the keys."""


@dataclass(frozen=True)
class LoadedModel:
    """A classifier ready for inference (eval mode, CPU) and what describes it.

    ``options`` are the extra constructor arguments: rebuild an identical, untrained model with
    ``build_classifier(cfg, input_dim, len(speakers), **options)``. ``front_end`` is the input
    representation the model was trained on (``voxray.features.base``).
    """

    classifier: SpeakerClassifier
    cfg: ModelConfig
    speakers: list[str]
    input_dim: int
    name: str
    has_head: bool
    front_end: FrontEndSpec
    options: dict[str, Any] = field(default_factory=dict)
    #: the head is an enrolment head over the corpus's speakers (voxray.pipeline.analyses.
    #: enrolment), not one the model was trained with.
    enrolled: bool = False

    @property
    def capabilities(self) -> Capabilities:
        embedder = self.classifier.embedder
        return Capabilities(self.has_head, tuple(embedder.layers()), conv_layers(embedder))


def read_weights(storage: Storage, rel: str) -> Any:
    """``torch.load(weights_only=True)`` of one file: tensors and plain containers only."""
    uri = storage.uri(rel)
    if not storage.exists(rel):
        raise FileNotFoundError(f"{uri}: not found")
    try:
        data = io.BytesIO(storage.read_bytes(rel))
        return torch.load(data, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling failure is a refused checkpoint
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{uri}: refused or unreadable with weights_only=True: {first}"
        ) from exc


def read_state_dict(storage: Storage, rel: str) -> dict[str, Tensor]:
    """``read_weights`` of one file; anything but a tensor mapping is refused."""
    uri = storage.uri(rel)
    state = read_weights(storage, rel)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{uri}: expected a state_dict (a mapping of names to tensors)")
    return dict(state)


def load_state(module: nn.Module, state: dict[str, Tensor], where: str) -> None:
    """``load_state_dict(strict=True)``, with missing/unexpected keys and shape mismatches reported
    as a ``CheckpointError`` naming ``where`` and the first offending keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {first_items(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {first_items(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch {first_items(shapes)}")
    if problems:
        raise CheckpointError(
            f"{where}: does not match {type(module).__name__}: " + "; ".join(problems)
        )
    module.load_state_dict(state, strict=True)


def first_items(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def headless_model(
    embedder: SpeakerEmbedder, cfg: ModelConfig, name: str, front_end: FrontEndSpec
) -> LoadedModel:
    """A pretrained embedder without a classification head (an empty ``MarginHead``: the
    Traversal and trial pathways explain it; the head's pathways do not apply)."""
    classifier = SpeakerClassifier(embedder, MarginHead(embedder.embedding_dim, 0, cfg.head))
    return LoadedModel(
        classifier.eval(), cfg, [], embedder.input_dim, name, False, front_end, embedder.options()
    )
