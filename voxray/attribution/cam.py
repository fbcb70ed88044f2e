"""Class activation maps (Li et al. 2022 section 3.1): Grad-CAM++, Score-CAM and Layer-CAM at any
named layer(s) of the embedder, explaining the classifier's target speaker (pathway label ``cam``).

With ``A`` ``(B, C, *S)`` a layer's output (``S`` = ``(F', T')`` or ``(T',)``) and
``g = dS_c/dA`` the gradient of the target's margin-free logit:

- Grad-CAM++ (Li et al. 2022 eq. 4, Chattopadhyay et al.): ``alpha = g^2 / (2 g^2 + sum_S(A) g^3)``
  (0 where the denominator is 0), ``w_k = sum_S alpha relu(g)``, ``map = relu(sum_k w_k A_k)``. The
  closed-form alpha is derived for the score ``Y = exp(S_c)``, whose gradient is
  ``exp(S_c) g``; the positive per-item factor ``exp(S_c)`` leaves relu and the min-max
  normalisation unchanged and is left out (it would overflow for large logits).
- Score-CAM (Li et al. 2022 eq. 5): each channel map upsampled to the input and min-max normalised
  masks the input, ``x_k = x * M_k``; ``w_k = softmax(G(x_k))_c``; ``map = relu(sum_k w_k A_k)``.
  The masked copies run ``internal_batch_size`` at a time.
- Layer-CAM (Li et al. 2022 eqs. 6-7): ``map = relu(sum_k relu(g_k) * A_k)``.

Maps are computed at the layer's resolution, upsampled to the input (``cam_layers.to_input_grid``:
2-D layers bilinearly; 1-D layers such as ECAPA's over time only, repeated over bins), then
normalised per item: ``tanh(gamma * S / max S)`` after min-max with ``gamma = params.cam_gamma``
(Li et al. 2022 eqs. 8-9), or min-max alone when ``cam_gamma <= 0``. Several layers give the
element-wise average of their normalised maps (Li et al. 2022 Table 2, "S4+S3"). Activations are
read with forward
hooks that are removed on exit; gradients come from ``torch.autograd.grad`` on the captured
activations, so no backward hook is needed.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import ClassVar

import torch
from torch import Tensor

from voxray.attribution.base import AttributionResult, Attributor, Pathway, register
from voxray.attribution.cam_layers import feature_map, resolve_cam_layers, to_input_grid
from voxray.attribution.hooks import capture_outputs, inference_state
from voxray.attribution.normalise import minmax, tanh_scale
from voxray.attribution.pathways import classification_target
from voxray.models.base import SpeakerClassifier


def activations_and_gradients(
    model: SpeakerClassifier, feats: Tensor, target: Tensor, names: list[str]
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Each layer's output ``A`` and ``dS_c/dA`` for the target logits ``S_c`` (B items)."""
    layers = {n: model.embedder.layer(n) for n in names}
    x = feats.detach().clone().requires_grad_(True)
    with torch.enable_grad(), capture_outputs(layers) as outputs:
        logits = model(x)
    acts = [feature_map(n, outputs[n]) for n in names]
    score = logits.gather(1, target.view(-1, 1)).sum()
    grads = torch.autograd.grad(score, acts)
    return dict(zip(names, (a.detach() for a in acts), strict=True)), dict(
        zip(names, grads, strict=True)
    )


@torch.no_grad()
def layer_activations(
    model: SpeakerClassifier, feats: Tensor, names: list[str]
) -> dict[str, Tensor]:
    """Each layer's output ``A`` for ``feats`` (no gradients)."""
    layers = {n: model.embedder.layer(n) for n in names}
    with capture_outputs(layers) as outputs:
        model(feats)
    return {n: feature_map(n, outputs[n]) for n in names}


def _spatial_sum(t: Tensor) -> Tensor:
    """Sum over the spatial axes of ``(B, C, *S)``, kept for broadcasting."""
    return t.sum(dim=tuple(range(2, t.dim())), keepdim=True)


def grad_cam_pp_map(acts: Tensor, grads: Tensor) -> Tensor:
    """Grad-CAM++ ``(B, *S)`` from ``A`` and ``dS_c/dA`` ``(B, C, *S)``."""
    g2 = grads.pow(2)
    denom = 2 * g2 + _spatial_sum(acts) * grads.pow(3)
    alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
    weights = _spatial_sum(alpha * grads.clamp(min=0))
    return (weights * acts).sum(dim=1).clamp(min=0)


def layer_cam_map(acts: Tensor, grads: Tensor) -> Tensor:
    """Layer-CAM ``(B, *S)``: ``relu(sum_k relu(g_k) A_k)``."""
    return (grads.clamp(min=0) * acts).sum(dim=1).clamp(min=0)


@torch.no_grad()
def score_cam_weights(
    model: SpeakerClassifier, feats: Tensor, target: Tensor, acts: Tensor, rows_per_pass: int
) -> Tensor:
    """Score-CAM channel weights ``(B, C)``: the target's softmax posterior for the input masked
    by each normalised, upsampled channel map."""
    b, c = acts.shape[:2]
    frames, bins = feats.shape[1:]
    step = max(1, rows_per_pass)
    weights = torch.empty((b, c), dtype=feats.dtype, device=feats.device)
    for i in range(b):
        for start in range(0, c, step):
            masks = minmax(to_input_grid(acts[i, start : start + step], frames, bins))
            probs = torch.softmax(model(feats[i : i + 1] * masks), dim=1)
            weights[i, start : start + step] = probs[:, target[i]]
    return weights


class CamAttributor(Attributor):
    """Shared driver: target, layers, upsampling, normalisation and the multi-layer average."""

    pathways = (Pathway.CAM,)
    explains = "the classifier at a layer"
    map_params = ("cam_layers", "cam_gamma")

    def explain(
        self, x: Tensor, pathway: str, target: Tensor | None, baseline: Tensor | None
    ) -> AttributionResult:
        """Normalised maps ``(B, T, F)`` for the target speaker (``baseline`` is not used)."""
        frames, bins = x.shape[1:]
        with inference_state(self.model):
            t = classification_target(self.model, x, target)
            names = resolve_cam_layers(self.model.embedder, self.params.cam_layers, x)
            raw = self.layer_maps(x, t, names)
        maps = [self._normalise(to_input_grid(raw[n], frames, bins)) for n in names]
        return AttributionResult(torch.stack(maps).mean(dim=0), None, t)

    def _normalise(self, s: Tensor) -> Tensor:
        gamma = self.params.cam_gamma
        return tanh_scale(s, gamma) if gamma > 0 else minmax(s)

    @abstractmethod
    def layer_maps(self, feats: Tensor, target: Tensor, names: list[str]) -> dict[str, Tensor]:
        """Raw (relu'd, un-normalised) maps ``(B, *S)`` at each layer's resolution."""


class GradientCam(CamAttributor):
    """A CAM from each layer's activations and gradients, combined by ``combine``."""

    #: ``(acts, grads) -> map``, the method's weighting of the layer.
    combine: ClassVar[Callable[[Tensor, Tensor], Tensor]]

    def layer_maps(self, feats: Tensor, target: Tensor, names: list[str]) -> dict[str, Tensor]:
        acts, grads = activations_and_gradients(self.model, feats, target, names)
        return {n: type(self).combine(acts[n], grads[n]) for n in names}


@register
class GradCamPlusPlus(GradientCam):
    name = "grad_cam_pp"
    title = "Grad-CAM++"
    short_title = "G-CAM"
    combine = grad_cam_pp_map


@register
class LayerCam(GradientCam):
    name = "layer_cam"
    title = "Layer-CAM"
    short_title = "L-CAM"
    combine = layer_cam_map


@register
class ScoreCam(CamAttributor):
    name = "score_cam"
    title = "Score-CAM"
    short_title = "S-CAM"
    perturbs = True  # one forward per channel-masked copy of the input, no gradients

    def layer_maps(self, feats: Tensor, target: Tensor, names: list[str]) -> dict[str, Tensor]:
        acts = layer_activations(self.model, feats, names)
        out = {}
        for n in names:
            a = acts[n]
            w = score_cam_weights(self.model, feats, target, a, self.params.internal_batch_size)
            out[n] = (w.view(*w.shape, *([1] * (a.dim() - 2))) * a).sum(dim=1).clamp(min=0)
        return out
