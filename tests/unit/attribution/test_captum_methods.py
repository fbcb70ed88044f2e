"""The Captum methods: Traversal fast path == the literal N-call loop (Zhang et al. 2023 eq. 5),
batch == per-item, IG completeness and a peer check against Captum itself, Saliency == Captum's
default (absolute) Saliency, its Traversal == the literal loop of N Captum calls, signed Saliency ==
autograd, GradientShap == Captum's estimator for the same draws, Shapley / Occlusion on an
additive model, and DeepLift's model checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from captum.attr import GradientShap, IntegratedGradients, Saliency
from torch import Tensor, nn

from voxray.attribution import attribute
from voxray.attribution.captum_methods import gradient_shap_from_draws, patch_mask
from voxray.attribution.pathways import Explained, MeanEmbedding
from voxray.config import AttributionConfig, HeadConfig
from voxray.models.base import SpeakerClassifier, SpeakerEmbedder
from voxray.models.heads import MarginHead

LINEAR_METHODS = (
    "integrated_gradients",
    "gradient_shap",
    "deeplift",
    "saliency_signed",
    "input_x_gradient",
    "shapley_sampling",
    "occlusion",
)
PATHWAYS = ("traversal", "classification")


def relative_error(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


class LinearEmbedder(SpeakerEmbedder):
    """``e(x) = W vec(x)`` ``(B, T, F) -> (B, D)``: additive in the bins."""

    def __init__(self, frames: int, bins: int, dim: int = 3) -> None:
        super().__init__(bins, dim)
        self.fc = nn.Linear(frames * bins, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))

    def layers(self) -> dict[str, nn.Module]:
        return {"fc": self.fc}


class MlpEmbedder(SpeakerEmbedder):
    """``Linear -> act -> Linear`` over the flattened input, every operation a module."""

    def __init__(self, frames: int, bins: int, act: nn.Module, dim: int = 4) -> None:
        super().__init__(bins, dim)
        self.fc1 = nn.Linear(frames * bins, 16)
        self.act = act
        self.fc2 = nn.Linear(16, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1))))

    def layers(self) -> dict[str, nn.Module]:
        return {"fc1": self.fc1, "fc2": self.fc2}


class ReusedReluEmbedder(MlpEmbedder):
    """Applies the same ReLU module twice in one forward pass."""

    def __init__(self, frames: int, bins: int) -> None:
        super().__init__(frames, bins, nn.ReLU())
        self.mid = nn.Linear(16, 16)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.mid(self.act(self.fc1(x.flatten(1))))))


def classifier(embedder: SpeakerEmbedder, head_kind: str = "aam") -> SpeakerClassifier:
    head = MarginHead(embedder.embedding_dim, 5, HeadConfig(kind=head_kind, scale=10.0))
    return SpeakerClassifier(embedder, head).double().eval()


@pytest.mark.parametrize("model_name", ["tdnn", "cnn"], ids=["tdnn", "cnn"])
@pytest.mark.parametrize("method", LINEAR_METHODS, ids=LINEAR_METHODS)
def test_traversal_fast_path_equals_the_literal_loop(
    request: pytest.FixtureRequest,
    model_name: str,
    method: str,
    feats: Tensor,
    params: AttributionConfig,
) -> None:
    """(1/N) sum_i A_{e_i} == A_{(1/N) sum_i e_i} for every linear method (float64)."""
    model = request.getfixturevalue(model_name)
    p = params
    if method == "gradient_shap":  # noisy, on Gaussian baselines: every shared draw matters
        p = dataclasses.replace(params, shap_stdev=0.3, baseline="gaussian")
    fast = attribute(model, feats, method, "traversal", params=p)
    literal_p = dataclasses.replace(p, traversal_mode="literal")
    literal = attribute(model, feats, method, "traversal", params=literal_p)
    assert fast.maps.shape == feats.shape and fast.maps.dtype == torch.float64
    assert fast.maps.abs().max() > 0
    assert relative_error(fast.maps, literal.maps) < 1e-4
    if fast.completeness_error is not None:
        torch.testing.assert_close(
            fast.completeness_error, literal.completeness_error, rtol=1e-4, atol=1e-9
        )


@pytest.mark.parametrize("pathway", PATHWAYS, ids=PATHWAYS)
@pytest.mark.parametrize("method", (*LINEAR_METHODS, "saliency"), ids=(*LINEAR_METHODS, "saliency"))
def test_batch_equals_per_item(
    tdnn: SpeakerClassifier,
    method: str,
    pathway: str,
    feats: Tensor,
    target: Tensor,
    params: AttributionConfig,
) -> None:
    p = dataclasses.replace(params, baseline="gaussian", shap_stdev=0.2)
    t = target if pathway == "classification" else None
    batch = attribute(tdnn, feats, method, pathway, params=p, target=t)
    for i in range(feats.shape[0]):
        ti = None if t is None else t[i : i + 1]
        one = attribute(tdnn, feats[i : i + 1], method, pathway, params=p, target=ti)
        torch.testing.assert_close(batch.maps[i : i + 1], one.maps, rtol=1e-6, atol=1e-10)
        if batch.completeness_error is not None:
            torch.testing.assert_close(batch.completeness_error[i : i + 1], one.completeness_error)
    if pathway == "classification":
        assert torch.equal(batch.target, target)
    else:
        assert batch.target is None


@pytest.mark.parametrize("pathway", PATHWAYS, ids=PATHWAYS)
def test_ig_completeness_within_one_percent_at_64_steps_on_ecapa(pathway: str) -> None:
    from voxray.models.ecapa_tdnn import EcapaTdnn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        emb = EcapaTdnn(80, 64, 32, mfa_channels=192, attention_channels=16, se_channels=16)
        model = classifier(emb)
        x = torch.randn(2, 100, 80, dtype=torch.float64)
    p = AttributionConfig(ig_steps=64)
    res = attribute(model, x, "integrated_gradients", pathway, params=p)
    assert res.completeness_error.shape == (2,)
    assert torch.all(res.completeness_error < 0.01)


@pytest.mark.parametrize("pathway", PATHWAYS, ids=PATHWAYS)
def test_ig_completeness_error_is_its_definition_and_shrinks_with_steps(
    cnn: SpeakerClassifier, pathway: str, feats: Tensor, target: Tensor
) -> None:
    t = target if pathway == "classification" else None
    errors = []
    for steps in (8, 256):
        p = AttributionConfig(ig_steps=steps)
        res = attribute(cnn, feats, "integrated_gradients", pathway, params=p, target=t)
        with torch.no_grad():
            out_x, out_b = (
                (cnn(feats), cnn(torch.ones_like(feats)))
                if t is not None
                else (cnn.embed(feats), cnn.embed(torch.ones_like(feats)))
            )
            if t is not None:
                delta = out_x.gather(1, t[:, None])[:, 0] - out_b.gather(1, t[:, None])[:, 0]
            else:
                delta = out_x.mean(1) - out_b.mean(1)
        expected = (res.maps.sum(dim=(1, 2)) - delta).abs() / delta.abs()
        torch.testing.assert_close(res.completeness_error, expected)
        errors.append(float(res.completeness_error.mean()))
    assert errors[1] < errors[0]


@pytest.mark.parametrize("pathway", PATHWAYS, ids=PATHWAYS)
@pytest.mark.parametrize("method", ["integrated_gradients", "deeplift"], ids=["ig", "deeplift"])
def test_completeness_holds_on_a_model_of_modules(
    method: str, pathway: str, target: Tensor
) -> None:
    """A Tanh MLP with a linear (softmax) head: IG (smooth, Gauss-Legendre) and DeepLift (exact
    summation-to-delta when every non-linearity is a module) distribute F(x) - F(x')."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = classifier(MlpEmbedder(10, 6, nn.Tanh()), head_kind="softmax")
        x = torch.randn(3, 10, 6, dtype=torch.float64)
    t = target if pathway == "classification" else None
    p = AttributionConfig(ig_steps=64, baseline="zeros")
    res = attribute(model, x, method, pathway, params=p, target=t)
    assert torch.all(res.completeness_error < 1e-6)


def _integrated_gradients(f, x: Tensor, baseline: Tensor, steps: int) -> Tensor:
    """IG written out (Sundararajan et al. 2017) with autograd and Gauss-Legendre nodes on
    [0, 1]: ``(x - x') * sum_k w_k dF/dx (x' + a_k (x - x'))``; independent of Captum."""
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    total = torch.zeros_like(x)
    for a, w in zip((nodes + 1) / 2, weights / 2, strict=True):
        z = (baseline + float(a) * (x - baseline)).detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(f(z).sum(), z)
        total += float(w) * grad
    return (x - baseline) * total


@pytest.mark.parametrize("pathway", PATHWAYS, ids=PATHWAYS)
def test_ig_equals_integrated_gradients_written_out(
    tdnn: SpeakerClassifier, pathway: str, feats: Tensor, target: Tensor
) -> None:
    """Peer check against the definition, not the Captum call voxray wraps."""
    p = AttributionConfig(ig_steps=20, baseline="ones")
    t = target if pathway == "classification" else None
    ours = attribute(tdnn, feats, "integrated_gradients", pathway, params=p, target=t).maps
    if pathway == "classification":
        scalar = lambda x: tdnn(x).gather(1, target.view(-1, 1)).squeeze(1)  # noqa: E731
    else:
        scalar = lambda x: tdnn.embed(x).mean(dim=1)  # noqa: E731
    theirs = _integrated_gradients(scalar, feats, torch.ones_like(feats), 20)
    # float64; Captum batches the steps, so sums run in another order (measured 1e-6 relative)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("pathway", PATHWAYS, ids=PATHWAYS)
def test_signed_saliency_is_the_gradient_and_input_x_gradient_its_product(
    cnn: SpeakerClassifier, pathway: str, feats: Tensor, target: Tensor
) -> None:
    x = feats.clone().requires_grad_(True)
    with torch.enable_grad():
        if pathway == "classification":
            scalar = cnn(x).gather(1, target[:, None]).sum()
        else:
            scalar = cnn.embed(x).mean(dim=1).sum()
        (grad,) = torch.autograd.grad(scalar, x)
    t = target if pathway == "classification" else None
    sal = attribute(cnn, feats, "saliency_signed", pathway, target=t).maps
    torch.testing.assert_close(sal, grad)
    assert (sal < 0).any() and (sal > 0).any()  # signed, not |grad|
    ixg = attribute(cnn, feats, "input_x_gradient", pathway, target=t).maps
    torch.testing.assert_close(ixg, feats * grad)


class EmbeddingDim(nn.Module):
    """``x -> e_i(x)`` ``(B,)``: one embedding dimension as its own forward function."""

    def __init__(self, embedder: nn.Module, i: int) -> None:
        super().__init__()
        self.embedder, self.i = embedder, i

    def forward(self, x: Tensor) -> Tensor:
        return self.embedder(x)[:, self.i]


@pytest.mark.parametrize("dims_per_pass", [1, 5, 64], ids=["1-dim", "5-dims", "all-dims"])
@pytest.mark.parametrize("model_name", ["tdnn", "cnn"], ids=["tdnn", "cnn"])
def test_saliency_traversal_is_the_literal_captum_loop_with_default_arguments(
    request: pytest.FixtureRequest, model_name: str, dims_per_pass: int, feats: Tensor
) -> None:
    """Zhang et al. 2023 eq. 5 with Captum's Saliency as Captum defines it: the mean over the N
    embedding
    dimensions of ``Saliency(e_i).attribute(x)``, every argument at its default (abs=True)."""
    model = request.getfixturevalue(model_name)
    n = model.embedder.embedding_dim
    p = AttributionConfig(internal_batch_size=dims_per_pass * feats.shape[0])
    ours = attribute(model, feats, "saliency", "traversal", params=p).maps
    theirs = (
        sum(
            Saliency(EmbeddingDim(model.embedder, i)).attribute(feats.clone().requires_grad_(True))
            for i in range(n)
        )
        / n
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-12)
    literal = dataclasses.replace(p, traversal_mode="literal")
    torch.testing.assert_close(
        attribute(model, feats, "saliency", "traversal", params=literal).maps, theirs
    )
    # not the signed map, nor its absolute value: the mean of |.| is not |mean|
    signed = attribute(model, feats, "saliency_signed", "traversal", params=p).maps
    assert (ours >= 0).all() and relative_error(signed.abs(), ours) > 0.05


def test_saliency_classification_is_captum_default(
    tdnn: SpeakerClassifier, feats: Tensor, target: Tensor
) -> None:
    ours = attribute(tdnn, feats, "saliency", "classification", target=target).maps
    theirs = Saliency(tdnn).attribute(feats.clone().requires_grad_(True), target=target)
    torch.testing.assert_close(ours, theirs)
    assert (ours >= 0).all()


@pytest.mark.parametrize("method", LINEAR_METHODS[:4] + ("input_x_gradient",))
def test_unqualified_names_use_captum_defaults(
    tdnn: SpeakerClassifier, method: str, feats: Tensor, target: Tensor
) -> None:
    """Each gradient method with voxray's default config against Captum called with only the
    arguments Zhang et al. 2023 fixes (the all-ones baseline) on the Classification logit."""
    from captum.attr import DeepLift, InputXGradient

    x = feats.clone().requires_grad_(True)
    ones = torch.ones_like(feats)
    ours = attribute(tdnn, feats, method, "classification", target=target).maps
    if method == "integrated_gradients":  # default n_steps=50, Gauss-Legendre
        theirs = IntegratedGradients(tdnn).attribute(x, ones, target=target)
    elif method == "deeplift":
        theirs = DeepLift(tdnn).attribute(x, ones, target=target)
    elif method == "input_x_gradient":
        theirs = InputXGradient(tdnn).attribute(x, target=target)
    elif method == "saliency_signed":
        theirs = Saliency(tdnn).attribute(x, target=target, abs=False)
    else:  # gradient_shap: its own seeded draws, checked against Captum's estimator below
        assert AttributionConfig().shap_stdev == 0.0  # Captum's default stdevs
        return
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("stdev", [0.0, 0.5], ids=["no-noise", "noise"])
def test_gradient_shap_matches_captum_for_the_same_draws(
    tdnn: SpeakerClassifier, stdev: float
) -> None:
    """Captum's GradientShap draws baseline indices and alphas from numpy and noise from torch;
    replaying those draws through ours gives Captum's result."""
    x = torch.randn(1, 24, 12, dtype=torch.float64)
    dist = torch.randn(5, 24, 12, dtype=torch.float64)
    n, target = 6, 3
    np.random.seed(11)
    torch.manual_seed(11)
    theirs = GradientShap(tdnn).attribute(x, dist, n_samples=n, stdevs=stdev, target=target)
    np.random.seed(11)
    torch.manual_seed(11)
    index = torch.as_tensor(np.random.choice(5, n))
    noise = torch.normal(0, torch.tensor(stdev).repeat((n, 24, 12))).double()
    alpha = torch.as_tensor(np.random.uniform(0.0, 1.0, n))
    with torch.enable_grad():
        explained = Explained(tdnn, target)
        ours = gradient_shap_from_draws(explained, x, dist[None], index, alpha, noise, 4)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-8)


def test_patch_mask_numbers_patches_row_major() -> None:
    mask = patch_mask(5, 5, 2, 2, torch.device("cpu"))
    assert mask.shape == (1, 5, 5)
    assert mask[0].tolist() == [
        [0, 0, 1, 1, 2],
        [0, 0, 1, 1, 2],
        [3, 3, 4, 4, 5],
        [3, 3, 4, 4, 5],
        [6, 6, 7, 7, 8],
    ]


@pytest.mark.parametrize("method", ["shapley_sampling", "occlusion"], ids=["shapley", "occlusion"])
def test_perturbation_methods_on_an_additive_model(method: str) -> None:
    """For F(x) = sum v * x, a patch's Shapley value (any permutation) and a window's occlusion
    difference are both sum_patch v (x - x'); every bin of the patch receives it."""
    frames, bins = 8, 6
    model = classifier(LinearEmbedder(frames, bins))
    x = torch.randn(2, frames, bins, dtype=torch.float64)
    base = torch.full_like(x, 0.5)
    p = AttributionConfig(
        patch_frames=3, patch_bins=4, occlusion_frames=3, occlusion_bins=4, shapley_samples=1
    )
    maps = attribute(model, x, method, "traversal", baseline=base, params=p).maps
    v = model.embedder.fc.weight.mean(dim=0).view(frames, bins).detach()
    contrib = v * (x - base)
    expected = torch.empty_like(x)
    for t0 in range(0, frames, 3):
        for f0 in range(0, bins, 4):
            block = contrib[:, t0 : t0 + 3, f0 : f0 + 4]
            expected[:, t0 : t0 + 3, f0 : f0 + 4] = block.sum(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(maps, expected)


@pytest.mark.parametrize(
    ("act", "match"),
    [
        (nn.GELU(), "'embedder.act' \\(GELU\\) cannot be propagated"),
        (nn.ReLU(inplace=True), "'embedder.act' \\(ReLU\\) is in-place"),
    ],
    ids=["unsupported-module", "inplace-relu"],
)
def test_deeplift_rejects_modules_it_cannot_propagate(act: nn.Module, match: str) -> None:
    model = classifier(MlpEmbedder(4, 3, act))
    with pytest.raises(ValueError, match=match):
        attribute(model, torch.randn(2, 4, 3, dtype=torch.float64), "deeplift", "classification")


def test_deeplift_rejects_a_module_used_twice() -> None:
    model = classifier(ReusedReluEmbedder(4, 3))
    with pytest.raises(ValueError, match="'embedder.act' more than once"):
        attribute(model, torch.randn(2, 4, 3, dtype=torch.float64), "deeplift", "traversal")


def test_deeplift_rejects_an_lstm() -> None:
    from voxray.models.bilstm import BiLstm

    model = classifier(BiLstm(12, 8, 6))
    with pytest.raises(ValueError, match="LSTM\\) cannot be propagated"):
        attribute(model, torch.randn(1, 10, 12, dtype=torch.float64), "deeplift", "traversal")


@pytest.mark.parametrize(
    "method", ["gradient_shap", "shapley_sampling"], ids=["gradient_shap", "shapley"]
)
def test_random_methods_are_reproducible_and_leave_the_global_rng_alone(
    tdnn: SpeakerClassifier, method: str, feats: Tensor, params: AttributionConfig
) -> None:
    state = torch.random.get_rng_state()
    first = attribute(tdnn, feats, method, "classification", params=params).maps
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(99)
    assert torch.equal(attribute(tdnn, feats, method, "classification", params=params).maps, first)


def test_mean_embedding_is_the_traversal_scalar(tdnn: SpeakerClassifier, feats: Tensor) -> None:
    with torch.no_grad():
        expected = tdnn.embed(feats).mean(dim=1)
        torch.testing.assert_close(MeanEmbedding(tdnn.embedder)(feats), expected)


def test_bad_inputs_name_the_problem(tdnn: SpeakerClassifier, feats: Tensor) -> None:
    with pytest.raises(ValueError, match="baseline must have the features' shape"):
        attribute(tdnn, feats, "integrated_gradients", "traversal", baseline=torch.ones(1, 24, 12))
    with pytest.raises(ValueError, match="corpus mean"):
        p = AttributionConfig(baseline="mean")
        attribute(tdnn, feats, "integrated_gradients", "traversal", params=p)
    with pytest.raises(ValueError, match="target ids must be in"):
        attribute(tdnn, feats, "saliency", "classification", target=torch.tensor([0, 1, 9]))
    with pytest.raises(ValueError, match=r"\(B, T, F\)"):
        attribute(tdnn, feats[0], "saliency", "traversal")
