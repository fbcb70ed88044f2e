"""The Captum attribution methods of Zhang et al. 2023 (and four more), one small ``Attributor``
each.

An unqualified name means the method with Captum's defaults (``saliency`` is Captum's absolute
gradient); a variant says what differs (``saliency_signed``). Where voxray departs from a
Captum default for tractability the docstring says so (Occlusion's stride, Shapley patches).

Each explains the Traversal or Classification scalar of ``pathways.py`` for a whole
``(B, T, F)`` batch in one Captum call. All but ``saliency`` are linear in the explained
output, so Traversal is one call on the mean embedding (``traversal_mode='fast'``); the random
methods draw the same samples for every explained output and every utterance (fixed seeds),
which keeps that identity exact and makes an utterance's map independent of the batch it
shares. ``saliency`` computes its N per-dimension gradients as batched Jacobian rows.

The model is put in eval mode with frozen parameters while a method runs (``inference_state``)
and restored afterwards; Captum's own hooks (DeepLift) are removed by Captum.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import torch
from captum.attr import (
    DeepLift,
    InputXGradient,
    IntegratedGradients,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from torch import Tensor, nn

from voxray.attribution.base import AttributionResult, Attributor, Pathway, register
from voxray.attribution.baselines import DEFAULT_SEED, default_generator, make_baseline
from voxray.attribution.deeplift_support import (
    check_deeplift_support,
    check_single_use,
    nonlinear_modules,
)
from voxray.attribution.hooks import count_calls, inference_state, private_cpu_rng
from voxray.attribution.pathways import (
    Explained,
    attribute_along,
    check_pathway,
    pathway_scalar,
)
from voxray.config import AttributionConfig


@torch.no_grad()
def completeness_error(
    explained: Explained, feats: Tensor, baseline: Tensor, maps: Tensor
) -> Tensor:
    """``|sum(A) - (F(x) - F(x'))| / |F(x) - F(x')|`` per item ``(B,)``; NaN where
    ``F(x) = F(x')`` (no difference to distribute, the relative error is undefined)."""
    delta = explained.scalar(feats) - explained.scalar(baseline)
    gap = (maps.flatten(1).sum(dim=1) - delta).abs()
    safe = torch.where(delta != 0, delta.abs(), torch.ones_like(delta))
    return torch.where(delta != 0, gap / safe, torch.full_like(delta, float("nan")))


class CaptumAttributor(Attributor):
    """Shared driver: pathway, eval state, baseline, completeness; subclasses run Captum once
    per explained output in ``_attribute_one(explained, feats, baseline) -> (B, T, F)``."""

    linear_in_output = True
    #: whether the method compares the input with a baseline.
    uses_baseline: ClassVar[bool] = True
    #: whether completeness, sum(A) = F(x) - F(x'), holds (the error is reported per item).
    complete: ClassVar[bool] = False

    def check_pathway(self, pathway: str) -> None:
        """Raise unless ``pathway`` is traversal / classification (and the mode is known)."""
        check_pathway(pathway, self._mode())

    def _mode(self) -> str:
        """The Traversal mode: the configured one where the method is linear in its output."""
        return self.params.traversal_mode if self.linear_in_output else "literal"

    def explain(
        self, x: Tensor, pathway: str, target: Tensor | None, baseline: Tensor | None
    ) -> AttributionResult:
        """Maps ``(B, T, F)`` for ``pathway`` (traversal / classification)."""
        mode = self._mode()
        if not self.perturbs:  # Captum differentiates with respect to the input
            x = x.clone().requires_grad_(True)
        with inference_state(self.model):
            ref = self._reference(x.detach(), baseline)
            maps, t = attribute_along(
                self.model,
                x,
                pathway,
                target,
                mode,
                lambda e: self._attribute_one(e, x, ref).detach().to(x.dtype),
            )
            err = None
            if self.complete and ref is not None:
                err = completeness_error(pathway_scalar(self.model, pathway, t), x, ref, maps)
        return AttributionResult(maps, err, t)

    def _reference(self, x: Tensor, baseline: Tensor | None) -> Tensor | None:
        """The baseline ``(B, T, F)``: the given one, else the configured kind."""
        if not self.uses_baseline:
            return None
        if baseline is None:
            return make_baseline(self.params.baseline, x)
        if tuple(baseline.shape) != tuple(x.shape):
            raise ValueError(
                f"{self.name}: baseline must have the features' shape {tuple(x.shape)}, "
                f"got {tuple(baseline.shape)}"
            )
        return baseline.detach().to(dtype=x.dtype, device=x.device)

    def _perturbations_per_eval(self, x: Tensor) -> int:
        """How many perturbed copies of the batch share one forward pass."""
        return max(1, self.params.internal_batch_size // x.shape[0])

    @abstractmethod
    def _attribute_one(
        self, explained: Explained, feats: Tensor, baseline: Tensor | None
    ) -> Tensor:
        """One Captum call: maps ``(B, T, F)`` of ``explained`` against ``baseline``."""


@register
class IntegratedGradientsAttributor(CaptumAttributor):
    """Integrated Gradients (Zhang et al. 2023 eq. 1), ``params.ig_steps`` Gauss-Legendre steps, the
    path
    points of the batch evaluated ``internal_batch_size`` at a time."""

    name = "integrated_gradients"
    title = "Integrated Gradients"
    map_params = ("baseline", "ig_steps")
    complete = True

    @classmethod
    def gradient_passes(cls, params: AttributionConfig) -> int:
        return params.ig_steps

    def _attribute_one(
        self, explained: Explained, feats: Tensor, baseline: Tensor | None
    ) -> Tensor:
        return IntegratedGradients(explained.module).attribute(
            feats,
            baselines=baseline,
            target=explained.target,
            n_steps=self.params.ig_steps,
            internal_batch_size=max(self.params.internal_batch_size, feats.shape[0]),
        )


@register
class DeepLiftAttributor(CaptumAttributor):
    """DeepLift (Rescale rule) against the baseline; the model is checked first (see
    ``deeplift_support``) and a reused non-linear module is reported after the pass.

    Captum's rule for ``nn.Softmax`` subtracts the mean multiplier over the whole tensor it sees,
    batch included, so through ECAPA's attentive statistics pooling one utterance's map moved by
    0.1-1% with its batch-mates. A model with a Softmax is therefore attributed one utterance at
    a time (``Explained.item``), which makes the map independent of the batch.

    Completeness does not hold on either speaker model: the softmax rule is not exact for an
    attention over frames, and the SE gates and the statistics pooling's standard deviation
    are functional products / roots differentiated as they are. ``completeness_error_median``
    states the median relative error ``|sum(A) - (F(x) - F(x'))| / |F(x) - F(x')|`` measured on
    the Classification pathway of narrow, untrained models (ones and zeros baselines; checked
    by tests/unit/attribution/test_deeplift_completeness.py); IG on the same models is within
    about 1%.
    """

    name = "deeplift"
    title = "DeepLift"
    map_params = ("baseline",)
    complete = True
    #: embedder class -> (low, high) bounds of the median relative completeness error.
    completeness_error_median: ClassVar[dict[str, tuple[float, float]]] = {
        "EcapaTdnn": (0.5, 2.0),
        "ResNet34SE": (0.05, 0.5),
    }

    @classmethod
    def gradient_passes(cls, params: AttributionConfig) -> int:
        return 2  # input and baseline run together: two rows per utterance

    def _attribute_one(
        self, explained: Explained, feats: Tensor, baseline: Tensor | None
    ) -> Tensor:
        if any(isinstance(m, nn.Softmax) for m in explained.module.modules()):
            assert baseline is not None
            return torch.cat(
                [
                    self._deeplift(explained.item(i), feats[i : i + 1], baseline[i : i + 1])
                    for i in range(feats.shape[0])
                ]
            )
        return self._deeplift(explained, feats, baseline)

    @staticmethod
    def _deeplift(explained: Explained, feats: Tensor, baseline: Tensor | None) -> Tensor:
        """One Captum DeepLift call, reused modules named."""
        module = explained.module
        check_deeplift_support(module)
        watched = {"<explained>": module, **nonlinear_modules(module)}
        with count_calls(watched) as calls, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Setting forward, backward hooks", UserWarning)
            try:
                maps = DeepLift(module).attribute(
                    feats, baselines=baseline, target=explained.target
                )
            except RuntimeError:
                # Captum fails in the backward pass on a reused module; name it if that is why
                check_single_use(calls, calls["<explained>"], type(module).__name__)
                raise
        forwards = calls.pop("<explained>")
        check_single_use(calls, forwards, type(module).__name__)
        return maps


def mean_abs_jacobian(embedder: nn.Module, feats: Tensor, dims_per_pass: int) -> Tensor:
    """``(1/N) sum_i |de_i/dx|`` ``(B, T, F)`` for the embedding ``e = embedder(x)`` ``(B, N)``.

    One forward pass; the N gradients are Jacobian rows, ``dims_per_pass`` of them per backward
    pass (``autograd.grad(is_grads_batched=True)``: vmap over the backward), each row
    the one-hot cotangent of dimension i for every item. Items of an eval-mode embedder do not
    interact, so the gradient of ``sum_b e_i(x_b)`` with respect to ``x_b`` is ``de_i(x_b)/dx_b``.
    """
    x = feats.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        emb = embedder(x)
        b, n = emb.shape
        total = torch.zeros_like(x)
        for start in range(0, n, dims_per_pass):
            k = min(dims_per_pass, n - start)
            onehot = torch.zeros((k, b, n), dtype=emb.dtype, device=emb.device)
            onehot[torch.arange(k), :, start + torch.arange(k)] = 1.0
            (rows,) = torch.autograd.grad(
                emb, x, onehot, is_grads_batched=True, retain_graph=start + k < n
            )
            total += rows.abs().sum(dim=0)
    return total / n


class GradientAttributor(CaptumAttributor):
    """A gradient method with no baseline and no parameters: one Captum call on the target."""

    map_params = ()
    uses_baseline = False
    #: the Captum class and the keywords its ``attribute`` takes besides the target.
    captum: ClassVar[type[Saliency] | type[InputXGradient]]
    captum_kwargs: ClassVar[Mapping[str, object]] = {}

    def _attribute_one(
        self, explained: Explained, feats: Tensor, baseline: Tensor | None
    ) -> Tensor:
        return self.captum(explained.module).attribute(
            feats, target=explained.target, **self.captum_kwargs
        )


@register
class SaliencyAttributor(GradientAttributor):
    """Saliency as Captum defines it (its default ``abs=True``): ``|dF/dx|`` (Zhang et al. 2023's
    Saliency).

    Classification: Captum's ``Saliency`` on the target logit. Traversal: Zhang et al. 2023 eq. 5
    averages the
    maps of the N embedding dimensions, ``(1/N) sum_i |de_i/dx|``. The absolute value is not
    linear in the explained output, so the mean-embedding shortcut does not apply; the fast
    mode computes the N gradients as batched Jacobian rows from one forward pass
    (``mean_abs_jacobian``, ``internal_batch_size // B`` dimensions per backward pass) and the
    literal mode runs Captum's ``Saliency`` once per dimension. ``saliency_signed`` keeps the
    signed gradient.
    """

    name = "saliency"
    title = "Saliency"
    captum = Saliency
    linear_in_output = False

    def explain(
        self, x: Tensor, pathway: str, target: Tensor | None, baseline: Tensor | None
    ) -> AttributionResult:
        """Maps ``(B, T, F)``; Traversal in fast mode by batched Jacobian rows."""
        if pathway != Pathway.TRAVERSAL or self.params.traversal_mode != "fast":
            return super().explain(x, pathway, target, baseline)
        rows = max(1, self.params.internal_batch_size // x.shape[0])
        with inference_state(self.model):
            maps = mean_abs_jacobian(self.model.embedder, x, rows)
        return AttributionResult(maps.detach())


@register
class SignedSaliencyAttributor(GradientAttributor):
    """The signed gradient ``dF/dx`` (Captum's ``Saliency`` with ``abs=False``): linear in the
    explained output, so Traversal is one gradient of the mean embedding."""

    name = "saliency_signed"
    title = "Saliency (signed)"
    captum = Saliency
    captum_kwargs = {"abs": False}


@register
class InputXGradientAttributor(GradientAttributor):
    """Input x Gradient: ``x * dF/dx``."""

    name = "input_x_gradient"
    title = "Input x Gradient"
    captum = InputXGradient


@register
class OcclusionAttributor(CaptumAttributor):
    """Occlusion: ``F(x) - F(x with a window set to the baseline)``, windows of
    ``occlusion_frames x occlusion_bins`` tiling the map (stride = window; Captum covers the
    ragged edge), each bin receiving its window's difference. Captum's default stride is 1
    (every window position, the differences averaged per bin): ``T x F`` forward passes per
    utterance, which voxray does not afford; the tiling is that estimator at stride = window."""

    name = "occlusion"
    title = "Occlusion"
    map_params = ("baseline", "occlusion_frames", "occlusion_bins")
    perturbs = True

    def _attribute_one(
        self, explained: Explained, feats: Tensor, baseline: Tensor | None
    ) -> Tensor:
        p = self.params
        window = (min(p.occlusion_frames, feats.shape[1]), min(p.occlusion_bins, feats.shape[2]))
        return Occlusion(explained.module).attribute(
            feats,
            sliding_window_shapes=window,
            strides=window,
            baselines=baseline,
            target=explained.target,
            perturbations_per_eval=self._perturbations_per_eval(feats),
        )


def patch_mask(
    frames: int, bins: int, patch_frames: int, patch_bins: int, device: torch.device
) -> Tensor:
    """Feature ids ``(1, T, F)`` of ``patch_frames x patch_bins`` time-frequency patches (the
    players of Shapley sampling), row-major over (time patch, frequency patch)."""
    if patch_frames < 1 or patch_bins < 1:
        raise ValueError(
            f"attribution.patch_frames / patch_bins must be >= 1, got {patch_frames}, {patch_bins}"
        )
    t = torch.arange(frames, device=device) // patch_frames
    f = torch.arange(bins, device=device) // patch_bins
    per_row = -(-bins // patch_bins)
    return (t[:, None] * per_row + f[None, :]).unsqueeze(0)


@register
class ShapleySamplingAttributor(CaptumAttributor):
    """Shapley value sampling over ``patch_frames x patch_bins`` patches (a player per patch,
    so it is tractable), ``shapley_samples`` random permutations, the same permutations for
    every call (seeded, private random state)."""

    name = "shapley_sampling"
    title = "Shapley Value Sampling"
    map_params = ("baseline", "shapley_samples", "patch_frames", "patch_bins")
    perturbs = True

    def _attribute_one(
        self, explained: Explained, feats: Tensor, baseline: Tensor | None
    ) -> Tensor:
        p = self.params
        frames, bins = feats.shape[1:]
        mask = patch_mask(frames, bins, p.patch_frames, p.patch_bins, feats.device)
        with private_cpu_rng(DEFAULT_SEED):
            return ShapleyValueSampling(explained.module).attribute(
                feats,
                baselines=baseline,
                target=explained.target,
                feature_mask=mask,
                n_samples=p.shapley_samples,
                perturbations_per_eval=self._perturbations_per_eval(feats),
            )


@register
class GradientShapAttributor(CaptumAttributor):
    """GradientShap: the expectation of ``(x + eps - b) * dF/dz`` at
    ``z = b + alpha (x + eps - b)`` over baselines ``b`` from a distribution, ``alpha ~ U(0, 1)``
    and input noise ``eps ~ N(0, shap_stdev^2)``, estimated with ``shap_samples`` draws: the
    estimator of Captum's ``GradientShap``, with its gradients from Captum's ``Saliency``.

    Captum draws its samples per row of the batch, so an utterance's map would depend on its
    batch-mates; here the draws (baseline index, alpha, noise) are made once per call from a
    seeded generator and shared by every utterance and every explained output, which keeps
    batch == per-item and the Traversal identity exact. With ``baseline='gaussian'`` the
    distribution has ``shap_samples`` draws per utterance; the other kinds have one baseline.
    """

    name = "gradient_shap"
    title = "GradientShap"
    map_params = ("baseline", "shap_samples", "shap_stdev")

    @classmethod
    def gradient_passes(cls, params: AttributionConfig) -> int:
        return params.shap_samples

    def _reference(self, x: Tensor, baseline: Tensor | None) -> Tensor | None:
        """The baseline distribution ``(B, K, T, F)``."""
        if baseline is None:
            return make_baseline(self.params.baseline, x, draws=self.params.shap_samples)
        if baseline.dim() == 3:
            baseline = baseline.unsqueeze(1)
        if baseline.dim() != 4 or (baseline.shape[0], *baseline.shape[2:]) != tuple(x.shape):
            raise ValueError(
                f"gradient_shap: baseline must be (B, T, F) or a distribution (B, K, T, F) "
                f"matching features {tuple(x.shape)}, got {tuple(baseline.shape)}"
            )
        return baseline.detach().to(dtype=x.dtype, device=x.device)

    def _attribute_one(
        self, explained: Explained, feats: Tensor, baseline: Tensor | None
    ) -> Tensor:
        assert baseline is not None
        p = self.params
        gen = default_generator(feats.device)
        n, k = p.shap_samples, baseline.shape[1]
        like = {"device": feats.device, "dtype": feats.dtype}
        index = torch.randint(k, (n,), generator=gen, device=feats.device)
        alpha = torch.rand(n, generator=gen, **like)
        noise = p.shap_stdev * torch.randn((n, *feats.shape[1:]), generator=gen, **like)
        return gradient_shap_from_draws(
            explained, feats, baseline, index, alpha, noise, p.internal_batch_size
        )


def gradient_shap_from_draws(
    explained: Explained,
    feats: Tensor,
    baselines: Tensor,
    index: Tensor,
    alpha: Tensor,
    noise: Tensor,
    rows_per_pass: int,
) -> Tensor:
    """GradientShap for given draws.

    Args:
        explained: the output to explain.
        feats: ``(B, T, F)``.
        baselines: ``(B, K, T, F)`` baseline distribution per item.
        index: ``(n,)`` baseline index of each draw; alpha ``(n,)``; noise ``(n, T, F)``.
        rows_per_pass: how many of the ``B * n`` interpolated inputs share a gradient pass.

    Returns:
        ``(B, T, F)``: ``mean_j (x + eps_j - b_j) * dF/dz (b_j + alpha_j (x + eps_j - b_j))``.
    """
    n = index.shape[0]
    noisy = feats.detach().unsqueeze(1) + noise.unsqueeze(0)  # (B, n, T, F)
    base = baselines[:, index]  # (B, n, T, F)
    diff = noisy - base
    # item-major rows: item 0's n draws, then item 1's ...
    z = (base + alpha.view(1, n, 1, 1) * diff).flatten(0, 1).requires_grad_(True)
    target = explained.target
    if isinstance(target, Tensor):
        target = target.repeat_interleave(n)
    saliency = Saliency(explained.module)
    grads = []
    step = max(1, rows_per_pass)
    for start in range(0, z.shape[0], step):
        rows = slice(start, start + step)
        t = target[rows] if isinstance(target, Tensor) else target
        grads.append(saliency.attribute(z[rows], target=t, abs=False))
    grad = torch.cat(grads).view_as(diff)
    return (diff * grad).mean(dim=1)
