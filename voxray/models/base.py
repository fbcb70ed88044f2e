"""The contract every speaker model meets, so that training, embedding, CAM and LRP treat
ECAPA-TDNN, ResNet34SE, the BiLSTM and the AlexNet classifier alike.

Features enter as ``(B, T, F)`` (frames x bins, the layout of features/ Parquet). An
embedder returns ``(B, D)``; ``layers()`` names the modules whose outputs the CAM family
reads and the LRP composites group (ordered from input to output, e.g. ResNet stages
``S1..S4``). ``SpeakerClassifier`` appends a margin head to an embedder: the
Classification pathway of Zhang et al. 2023 and the model the CAM/LRP methods explain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn


class SpeakerEmbedder(nn.Module, ABC):
    """``forward((B, T, F)) -> (B, D)``."""

    #: dimension D of the embedding.
    embedding_dim: int
    #: number of feature bins F expected at the input.
    input_dim: int

    def __init__(self, input_dim: int, embedding_dim: int) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.embedding_dim = embedding_dim

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        ...

    #: the attributes named by ``layers()``, from input to output: a fact of the class, as
    #: Captum keeps its methods' facts; a model whose layers depend on its options overrides
    #: ``layers()`` instead.
    layer_names: tuple[str, ...] = ()

    #: constructor arguments beyond ModelConfig that a checkpoint records to rebuild the model
    #: (each kept as the attribute of that name).
    option_names: tuple[str, ...] = ()

    def options(self) -> dict[str, Any]:
        """The constructor arguments ``option_names`` names, as a checkpoint records them."""
        return {n: getattr(self, n) for n in self.option_names}

    def layers(self) -> dict[str, nn.Module]:
        """Named layers for CAM/LRP, ordered from input to output."""
        if not self.layer_names:
            raise NotImplementedError(f"{type(self).__name__} names no layers")
        return {n: getattr(self, n) for n in self.layer_names}

    def layer(self, name: str) -> nn.Module:
        layers = self.layers()
        if name not in layers:
            raise KeyError(
                f"{type(self).__name__} has no layer {name!r} (layers: {', '.join(layers)})"
            )
        return layers[name]

    @property
    def min_frames(self) -> int:
        """The shortest input the model accepts."""
        return 1

    @property
    def head_input_dim(self) -> int:
        """Width of what the classification head reads (``head_input``)."""
        return self.embedding_dim

    def head_input(self, x: Tensor) -> Tensor:
        """``(B, T, F) -> (B, head_input_dim)``: what the margin head is trained on. The
        embedding itself for most models; a model trained through layers that inference drops
        (Lehmann & Stadelmann 2020's BiLSTM) returns the output of those layers. Called as the
        module (``self(x)``), so hooks on the embedder see the classification pathway too."""
        return self(x)


class SpeakerClassifier(nn.Module):
    """An embedder with a classification head: logits over the training speakers.

    ``forward(x)`` returns plain (margin-free) logits, which is what attribution explains;
    ``loss(x, labels)`` applies the head's margin for training.
    """

    def __init__(self, embedder: SpeakerEmbedder, head: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.embedder.head_input(x))

    def embed(self, x: Tensor) -> Tensor:
        return self.embedder(x)

    def loss(self, x: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, margin-free logits) for a batch with integer speaker labels."""
        emb = self.embedder.head_input(x)
        return self.head.loss(emb, labels), self.head(emb).detach()

    @property
    def num_classes(self) -> int:
        return int(self.head.num_classes)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def model_device(module: nn.Module) -> torch.device:
    try:
        return next(module.parameters()).device
    except StopIteration:
        return torch.device("cpu")
