"""The two realisation paths of Zhang et al. 2023 (section 3.2): which scalar function of the input
a method explains.

- **Traversal** (Zhang et al. 2023 eqs. 3-5): the embedder alone, ``e = F(x)`` with N dimensions;
  each ``e_i`` is explained and the maps averaged, ``A_F = (1/N) sum_i A_{e_i}``.
- **Classification**: ``G(x)``, the classifier's margin-free logits; the explained scalar is
  the logit of the given speaker, or of the predicted one (argmax).

For a method that is linear in the explained output (IG, signed Saliency, Input x Gradient,
DeepLift, and GradientShap / Occlusion / Shapley sampling with the same random draws for every
output), ``(1/N) sum_i A_{e_i} = A_{(1/N) sum_i e_i}``: Traversal is ONE attribution of the mean
embedding (``traversal_mode='fast'``) instead of N. ``'literal'`` keeps the N-call loop of
eq. 5 as the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from voxray.attribution.base import Pathway
from voxray.models.base import SpeakerClassifier

TRAVERSAL_MODES = ("fast", "literal")


class MeanEmbedding(nn.Module):
    """``(B, T, F) -> (B,)``: ``(1/N) sum_i e_i(x)``, the scalar the fast Traversal explains.

    A module (not a closure) so that DeepLift can hook the embedder's non-linearities.
    """

    def __init__(self, embedder: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, x: Tensor) -> Tensor:
        return self.embedder(x).mean(dim=1)


@dataclass(frozen=True)
class Explained:
    """One explained output: ``module`` maps ``(B, T, F)`` to ``(B,)`` (``target`` None) or to
    ``(B, K)``, of which ``target`` picks one column (an int for all items, or ``(B,)`` ids)."""

    module: nn.Module
    target: Tensor | int | None = None

    def item(self, i: int) -> Explained:
        """The output of item ``i`` of the batch alone: ``target`` sliced, and a module holding
        per-item state (the trial pathway's fixed embeddings) sliced by its own ``item``."""
        module = self.module.item(i) if hasattr(self.module, "item") else self.module
        target = self.target[i : i + 1] if isinstance(self.target, Tensor) else self.target
        return Explained(module, target)

    def scalar(self, x: Tensor) -> Tensor:
        """The explained value per item ``(B,)``."""
        out = self.module(x)
        if self.target is None:
            return out
        if isinstance(self.target, int):
            return out[:, self.target]
        return out.gather(1, self.target.view(-1, 1)).squeeze(1)


def check_pathway(pathway: str, mode: str = "fast") -> None:
    """Raise unless ``pathway`` is traversal / classification and ``mode`` fast / literal."""
    if pathway not in (Pathway.TRAVERSAL, Pathway.CLASSIFICATION):
        raise ValueError(f"pathway must be 'traversal' or 'classification', got {pathway!r}")
    if mode not in TRAVERSAL_MODES:
        raise ValueError(
            f"attribution.traversal_mode must be one of {TRAVERSAL_MODES}, got {mode!r}"
        )


@torch.no_grad()
def classification_target(model: SpeakerClassifier, feats: Tensor, target: Tensor | None) -> Tensor:
    """The speaker explained per item ``(B,)`` (long): ``target`` checked against the head, or
    the argmax of the margin-free logits."""
    num_classes = model.num_classes
    if num_classes < 1:
        name = type(model.embedder).__name__
        raise ValueError(f"{name}: the classifier head has no classes to explain")
    if target is None:
        return model(feats).argmax(dim=1)
    t = torch.as_tensor(target, device=feats.device).long().view(-1)
    if t.numel() != feats.shape[0]:
        raise ValueError(f"target must hold one class per item ({feats.shape[0]}), got {t.numel()}")
    if bool(((t < 0) | (t >= num_classes)).any()):
        raise ValueError(f"target ids must be in [0, {num_classes}), got {t.tolist()}")
    return t


def pathway_scalar(model: SpeakerClassifier, pathway: str, target: Tensor | None) -> Explained:
    """The single scalar function a pathway explains (for completeness checks): the mean
    embedding (Traversal) or the target logit (Classification, ``target`` resolved)."""
    if pathway == Pathway.TRAVERSAL:
        return Explained(MeanEmbedding(model.embedder))
    return Explained(model, target)


def explained_outputs(
    model: SpeakerClassifier, feats: Tensor, pathway: str, target: Tensor | None, mode: str
) -> tuple[list[Explained], Tensor | None]:
    """The outputs to attribute (their maps are averaged) and the class target (or None)."""
    check_pathway(pathway, mode)
    if pathway == Pathway.TRAVERSAL:
        if mode == "fast":
            return [Explained(MeanEmbedding(model.embedder))], None
        dim = int(model.embedder.embedding_dim)
        return [Explained(model.embedder, i) for i in range(dim)], None
    t = classification_target(model, feats, target)
    return [Explained(model, t)], t


def attribute_along(
    model: SpeakerClassifier,
    feats: Tensor,
    pathway: str,
    target: Tensor | None,
    mode: str,
    attribute_one: Callable[[Explained], Tensor],
) -> tuple[Tensor, Tensor | None]:
    """Run ``attribute_one`` on each explained output of ``pathway`` and average the maps.

    Returns:
        maps ``(B, T, F)`` and the class target ``(B,)`` (None for Traversal).
    """
    outputs, t = explained_outputs(model, feats, pathway, target, mode)
    total: Tensor | None = None
    for explained in outputs:
        a = attribute_one(explained)
        total = a if total is None else total + a
    assert total is not None
    return total / len(outputs), t
