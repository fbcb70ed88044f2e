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

``attribute_joint`` is the decomposition that adds up: both sides move together along one
straight path from a baseline pair ``(x'_a, x'_b)`` to ``(x_a, x_b)`` (Integrated Gradients over
the pair, Captum's tuple inputs), so ``sum(A_a) + sum(A_b) = s(x_a, x_b) - s(x'_a, x'_b)`` up to
the path integral's error, which is returned. A constant baseline on both sides (``ones``) is
one input twice, ``s(x') = 1``: the maps then explain how far the trial is from a perfect
match. A verification user's reference is an impostor score: pass a cohort pair (two
utterances of different speakers, ``s(x')`` near the impostor mean) as the baselines, and the
maps explain what lifts the trial above a typical impostor trial; ``s(x')`` is returned with
the maps, so the report can state which reference it was.

Saliency here is Captum's default, the absolute gradient ``|ds/dx|``: a trial map has no
Traversal identity to keep, so the signed variant of the other pathways is not needed.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients
from torch import Tensor, nn

from voxray.attribution.base import AttributionResult, Pathway, check_features, get_attributor
from voxray.attribution.baselines import make_baseline
from voxray.attribution.captum_methods import completeness_error
from voxray.attribution.hooks import inference_state
from voxray.attribution.pathways import Explained
from voxray.config import AttributionConfig, TrialMethod
from voxray.models.base import SpeakerClassifier

TRIAL = Pathway.TRIAL
TRIAL_METHODS: tuple[str, ...] = typing.get_args(TrialMethod)
#: the sides a trial map can explain: a (utt_a's features, utt_b's embedding fixed) or b.
SIDES = ("a", "b")
#: the methods with a joint path over the pair (``attribute_joint``).
JOINT_METHODS: tuple[str, ...] = ("integrated_gradients",)
#: why each other trial method has no joint decomposition.
NO_JOINT_PATH: dict[str, str] = {
    "saliency": "no baseline: a gradient at one point decomposes no score change",
    "input_x_gradient": "no baseline: gradient x input decomposes no score change",
    "deeplift": "the pair runs the embedder twice per forward, a module reuse Captum's "
    "DeepLift refuses",
    "occlusion": "window ablations do not add up to the score change (not complete)",
}


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
        the maps, the scores ``s(x)`` and, where the method has a baseline, ``s(x')`` (the
        other side held fixed), and for IG and DeepLift ``|sum(A) - (s(x) - s(x'))| /
        |s(x) - s(x')|`` per trial.
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
        with torch.no_grad():
            score = explained.scalar(x.detach())
            base_score = None if ref is None else explained.scalar(ref)
    return AttributionResult(maps, err, None, score, base_score)


class PairScore(nn.Module):
    """``((R, T, F), (R, T', F)) -> (R,)``: ``cos(embedder(x_a), embedder(x_b))``, both sides
    free (the joint decomposition)."""

    def __init__(self, embedder: nn.Module) -> None:
        super().__init__()
        self.embedder = embedder

    def forward(self, xa: Tensor, xb: Tensor) -> Tensor:
        return F.cosine_similarity(self.embedder(xa), self.embedder(xb), dim=1)


@dataclass(frozen=True)
class JointResult:
    """The joint decomposition of B trials: ``sum(maps_a) + sum(maps_b)`` distributes
    ``score - baseline_score``; ``completeness_error`` is its relative error per trial."""

    maps_a: Tensor
    maps_b: Tensor
    score: Tensor
    baseline_score: Tensor
    completeness_error: Tensor


def attribute_joint(
    model: SpeakerClassifier,
    feats_a: Tensor,
    feats_b: Tensor,
    params: AttributionConfig,
    baseline_a: Tensor | None = None,
    baseline_b: Tensor | None = None,
) -> JointResult:
    """Integrated Gradients of ``s = cos(e(x_a), e(x_b))`` over the pair, ``params.ig_steps``
    steps, both sides on one path (see the module doc); baselines default to
    ``params.baseline`` on each side."""
    check_features(feats_a)
    check_features(feats_b)
    if feats_a.shape[0] != feats_b.shape[0]:
        raise ValueError(f"trial: {feats_a.shape[0]} a-sides but {feats_b.shape[0]} b-sides")
    xa, xb = feats_a.detach(), feats_b.detach()
    ra = make_baseline(params.baseline, xa) if baseline_a is None else baseline_a.to(xa)
    rb = make_baseline(params.baseline, xb) if baseline_b is None else baseline_b.to(xb)
    pair = PairScore(model.embedder)
    with inference_state(model):
        maps_a, maps_b = IntegratedGradients(pair).attribute(
            (xa.clone().requires_grad_(True), xb.clone().requires_grad_(True)),
            baselines=(ra, rb),
            n_steps=params.ig_steps,
            internal_batch_size=max(params.internal_batch_size, xa.shape[0]),
        )
        with torch.no_grad():
            score, base_score = pair(xa, xb), pair(ra, rb)
    delta = score - base_score
    total = maps_a.detach().flatten(1).sum(1) + maps_b.detach().flatten(1).sum(1)
    err = (total - delta).abs() / delta.abs().clamp_min(torch.finfo(delta.dtype).tiny)
    return JointResult(maps_a.detach(), maps_b.detach(), score, base_score, err)


@torch.no_grad()
def trial_scores(model: SpeakerClassifier, feats: Tensor, others: Tensor) -> Tensor:
    """``(B,)`` the scores ``cos(e(feats_i), others_i)`` the maps explain."""
    with inference_state(model):
        return TrialScore(model.embedder, others)(feats)
