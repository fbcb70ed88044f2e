"""The ``trial`` pathway: why a verification system accepted or rejected a pair of utterances.

For a trial (a, b) scored ``s = cos(e_a, e_b)``, side ``a``'s map explains ``s`` with respect to
a's features ``(T, F)`` with b's embedding held fixed (and side ``b`` the reverse). The fixed
embedding is computed once per utterance and shared by every trial that uses it; the explained
side runs through the embedder as any input does, so many trials share one batched Captum call.

``TrialScore`` is that scalar as a module. Captum evaluates the perturbed copies a method needs
as whole copies of the batch concatenated along dim 0 (IG's path points, DeepLift's input and
baseline, Occlusion's ``perturbations_per_eval`` windows), so row ``r`` of what the module sees
belongs to item ``r mod B``; ``TrialScore`` tiles the fixed embeddings the same way. That holds
for the five trial methods (``TrialMethod`` in config); GradientShap and Shapley sampling
order their rows otherwise and are not offered.

Saliency here is Captum's default, the absolute gradient ``|ds/dx|``: a trial map has no
Traversal identity to keep, so the signed variant of the other pathways is not needed.
"""

from __future__ import annotations

import typing

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from voxray.attribution.base import AttributionResult, Pathway, get_attributor
from voxray.attribution.captum_methods import completeness_error
from voxray.attribution.hooks import inference_state
from voxray.attribution.pathways import Explained, check_features
from voxray.config import AttributionConfig, TrialMethod
from voxray.models.base import SpeakerClassifier

TRIAL = Pathway.TRIAL
TRIAL_METHODS: tuple[str, ...] = typing.get_args(TrialMethod)
#: the sides a trial map can explain: a (utt_a's features, utt_b's embedding fixed) or b.
SIDES = ("a", "b")


class TrialScore(nn.Module):
    """``(R, T, F) -> (R,)``: ``cos(embedder(x_r), others[r mod B])``, ``others`` ``(B, D)``.

    A module (not a closure) so that DeepLift can hook the embedder's non-linearities.
    """

    def __init__(self, embedder: nn.Module, others: Tensor) -> None:
        super().__init__()
        if others.dim() != 2:
            raise ValueError(f"trial: fixed embeddings must be (B, D), got {tuple(others.shape)}")
        self.embedder = embedder
        self.register_buffer("others", others.detach())

    def item(self, i: int) -> TrialScore:
        """The score of trial ``i`` alone (``Explained.item``)."""
        return TrialScore(self.embedder, self.others[i : i + 1])

    def forward(self, x: Tensor) -> Tensor:
        b = self.others.shape[0]
        if x.shape[0] % b:
            raise ValueError(f"trial: {x.shape[0]} rows are not whole copies of {b} trials")
        ref = self.others.to(x.dtype).repeat(x.shape[0] // b, 1)
        return F.cosine_similarity(self.embedder(x), ref, dim=1)


@torch.no_grad()
def embed(model: SpeakerClassifier, feats: Tensor) -> Tensor:
    """Embeddings ``(B, D)`` of ``feats`` ``(B, T, F)`` in eval mode (the fixed sides)."""
    with inference_state(model):
        return model.embedder(feats)


def attribute_trials(
    model: SpeakerClassifier,
    feats: Tensor,
    others: Tensor,
    method: str,
    params: AttributionConfig,
    baseline: Tensor | None = None,
) -> AttributionResult:
    """Maps ``(B, T, F)`` of ``s_i = cos(e(feats_i), others_i)`` for B trials in one call.

    Args:
        model: the classifier whose embedder scores the trials.
        feats: ``(B, T, F)`` the explained sides (equal lengths; an utterance in several trials
            appears once per trial).
        others: ``(B, D)`` the fixed sides' embeddings.
        method: one of ``TRIAL_METHODS``.
        params: the method parameters (IG steps, baseline kind, occlusion window ...).
        baseline: ``(B, T, F)`` or None for ``params.baseline``.

    Returns:
        the maps and, for IG and DeepLift, ``|sum(A) - (s(x) - s(x'))| / |s(x) - s(x')|`` per
        trial.
    """
    if method not in TRIAL_METHODS:
        raise ValueError(
            f"trial: method {method!r} has no trial pathway (trial methods: "
            f"{', '.join(TRIAL_METHODS)})"
        )
    check_features(feats)
    if others.shape[0] != feats.shape[0]:
        raise ValueError(
            f"trial: {feats.shape[0]} explained sides but {others.shape[0]} fixed embeddings"
        )
    attributor = get_attributor(method)(model, params)
    explained = Explained(TrialScore(model.embedder, others.to(feats.device)))
    x = feats.detach()
    if not attributor.perturbs:  # Captum differentiates with respect to the input
        x = x.clone().requires_grad_(True)
    with inference_state(model):
        ref = attributor._reference(x.detach(), baseline)
        maps = attributor._attribute_one(explained, x, ref).detach().to(x.dtype)
        if method == "saliency":
            maps = maps.abs()
        err = None
        if attributor.complete and ref is not None:
            err = completeness_error(explained, x.detach(), ref, maps)
    return AttributionResult(maps, err, None)


@torch.no_grad()
def trial_scores(model: SpeakerClassifier, feats: Tensor, others: Tensor) -> Tensor:
    """``(B,)`` the scores ``cos(e(feats_i), others_i)`` the maps explain."""
    with inference_state(model):
        return TrialScore(model.embedder, others)(feats)
