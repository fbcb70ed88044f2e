"""LRP on the speaker models (float64, small widths): the three attributors run on ECAPA-TDNN,
ResNet34SE and AlexNet; Sarvaš 2021's rule placement lands on the layers it names; and, with zero
biases and zero BatchNorm shifts, the documented rules conserve relevance exactly (SE-Res2Block,
SE gate, whole models), the statistics-pooling floor being the one documented absorber."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from voxray.attribution import attribute, get_attributor
from voxray.attribution.hooks import capture_outputs
from voxray.attribution.lrp import (
    Epsilon,
    Gamma,
    LayerGroupComposite,
    Rule,
    Zero,
    relevance,
    uniform,
)
from voxray.config import AttributionConfig, HeadConfig
from voxray.models import AlexNet, BiLstm, EcapaTdnn, MarginHead, ResNet34SE, SpeakerClassifier
from voxray.models.resnet_se import STD_FLOOR
from voxray.testing.modules import hook_count

PARAMS = AttributionConfig()


pytestmark = pytest.mark.usefixtures("one_thread")


def _classifier(embedder: nn.Module, kind: str = "aam", classes: int = 7) -> SpeakerClassifier:
    head = MarginHead(embedder.embedding_dim, classes, HeadConfig(kind=kind, scale=30.0))
    return SpeakerClassifier(embedder, head)


def _finish(model: SpeakerClassifier, seed: int, bias_free: bool) -> SpeakerClassifier:
    """Random non-trivial BatchNorm statistics; ``bias_free`` zeroes every bias and BN shift."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.weight.copy_(0.7 + 0.6 * torch.rand(n, generator=g))
                m.running_mean.copy_(0.0 if bias_free else 0.3 * torch.randn(n, generator=g))
                m.bias.copy_(0.0 if bias_free else 0.2 * torch.randn(n, generator=g))
            elif bias_free and isinstance(getattr(m, "bias", None), Tensor):
                m.bias.zero_()
    return model.double().eval()


def ecapa(bias_free: bool = False) -> SpeakerClassifier:
    torch.manual_seed(0)
    emb = EcapaTdnn(
        40, channels=64, embedding_dim=32, mfa_channels=96, attention_channels=16, se_channels=16
    )
    return _finish(_classifier(emb), 1, bias_free)


def resnet(bias_free: bool = False) -> SpeakerClassifier:
    torch.manual_seed(0)
    return _finish(_classifier(ResNet34SE(24, channels=4, embedding_dim=16)), 2, bias_free)


def alexnet(bias_free: bool = False) -> SpeakerClassifier:
    torch.manual_seed(0)
    emb = AlexNet(64, embedding_dim=32, input_frames=80)
    return _finish(_classifier(emb, kind="softmax", classes=2), 3, bias_free)


#: name -> (builder, (T, F))
MODELS: dict[str, tuple[Callable[..., SpeakerClassifier], tuple[int, int]]] = {
    "ecapa": (ecapa, (60, 40)),
    "resnet34se": (resnet, (40, 24)),
    "alexnet": (alexnet, (80, 64)),
}
METHODS = ("lrp_0", "lrp_epsilon", "lrp_gamma")
RUNS = [(m, k) for m in sorted(MODELS) for k in METHODS]


def feats(name: str, batch: int = 2, seed: int = 4) -> Tensor:
    frames, bins = MODELS[name][1]
    return torch.randn(
        batch, frames, bins, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


@pytest.mark.parametrize(("name", "method"), RUNS, ids=[f"{n}-{m}" for n, m in RUNS])
def test_attributors_run(name: str, method: str) -> None:
    model = MODELS[name][0]()
    x = feats(name)
    with torch.no_grad():
        before = model(x)
    res = attribute(model, x, method, "lrp", params=PARAMS)
    assert res.maps.shape == x.shape and res.maps.dtype == x.dtype
    assert torch.isfinite(res.maps).all() and res.maps.abs().sum() > 0
    assert torch.equal(res.target, before.argmax(dim=1))
    assert hook_count(model) == 0
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_given_target_is_explained() -> None:
    model = alexnet()
    x = feats("alexnet")
    given = torch.tensor([1, 0])
    res = attribute(model, x, "lrp_0", "lrp", params=PARAMS, target=given)
    flipped = attribute(model, x, "lrp_0", "lrp", params=PARAMS, target=1 - given)
    assert torch.equal(res.target, given) and torch.equal(flipped.target, 1 - given)
    torch.testing.assert_close(res.maps, relevance(model, x, given, uniform(Zero())).input)
    assert not torch.allclose(res.maps, flipped.maps)


def _sums(r: Tensor) -> Tensor:
    return r.flatten(1).sum(dim=1)


def _logit(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    with torch.no_grad():
        logits = model(x)
    target = logits.argmax(dim=1)
    return target, logits.gather(1, target[:, None]).squeeze(1)


def test_ecapa_bias_free_lrp0_is_conservative() -> None:
    """Exact up to float64 rounding: every rule on the path (LRP-0 on bias-free layers, z-rule
    sums and splits, constant SE / attention gates, the decomposed std rule, the cosine head
    with a constant norm) conserves, and ECAPA's variance floor (1e-12) is never reached."""
    model = ecapa(bias_free=True)
    emb = model.embedder
    x = feats("ecapa", batch=1)
    target, logit = _logit(model, x)
    layers = {
        "conv1": emb.conv1,
        "block1": emb.block1,
        "se_in": emb.block1.tdnn2,
        "se_out": emb.block1.se,
        "mfa": emb.mfa,
        "pool": emb.pool,
    }
    rel = relevance(model, x, target, uniform(Zero()), layers)
    r = rel.layers
    # one SE-Res2Block: input (conv1's output) and output carry the same total relevance
    torch.testing.assert_close(_sums(r["block1"]), _sums(r["conv1"]), rtol=1e-9, atol=0)
    # the SE gate is a constant: each element keeps its relevance through x * s
    torch.testing.assert_close(r["se_out"], r["se_in"], rtol=1e-9, atol=1e-15)
    for name in ("mfa", "pool"):
        torch.testing.assert_close(_sums(r[name]), logit, rtol=1e-9, atol=0, msg=name)
    torch.testing.assert_close(_sums(rel.input), logit, rtol=1e-9, atol=0)


GAMMA_CASES = {"ecapa-exact": ("ecapa", 0.0, 1e-9), "alexnet-default": ("alexnet", 1e-6, 1e-4)}


@pytest.mark.parametrize("case", sorted(GAMMA_CASES), ids=sorted(GAMMA_CASES))
def test_bias_free_gamma_is_conservative(case: str) -> None:
    """Without bias, gamma's denominators are at least |z| (the added gamma terms have z's sign),
    so without a stabiliser it is exact; the default 1e-6 stabiliser absorbs a little."""
    name, stabilizer, rtol = GAMMA_CASES[case]
    model = MODELS[name][0](bias_free=True)
    x = feats(name, batch=1)
    target, logit = _logit(model, x)
    r = relevance(model, x, target, uniform(Gamma(5.0, stabilizer=stabilizer))).input
    torch.testing.assert_close(_sums(r), logit, rtol=rtol, atol=0)
    if stabilizer > 0:
        assert not torch.equal(_sums(r), logit)


def test_resnet_bias_free_lrp0_is_conservative_up_to_the_std_floor() -> None:
    """Exact through the folded conv/BN stages, the SE gates and the residual sums; at the
    temporal statistics pooling, rows whose variance is below STD_FLOOR output the constant
    floor and keep their std relevance (absorbed, like a bias), as documented."""
    model = resnet(bias_free=True)
    emb = model.embedder
    x = feats("resnet34se", batch=1)
    target, logit = _logit(model, x)
    rel = relevance(model, x, target, uniform(Zero()), {"S4": emb.S4, "pool": emb.pool})
    with capture_outputs({"S4": emb.S4}) as out, torch.no_grad():
        model(x)
    rows = out["S4"][0].flatten(1, 2)
    var = (rows - rows.mean(dim=2, keepdim=True)).pow(2).mean(dim=2)
    channels = rows.shape[1]
    absorbed = (rel.layers["pool"][:, channels:] * (var < STD_FLOOR)).sum(1)
    assert bool((var < STD_FLOOR).any())  # the case is exercised
    torch.testing.assert_close(_sums(rel.layers["pool"]), logit, rtol=1e-9, atol=0)
    torch.testing.assert_close(_sums(rel.layers["S4"]), logit - absorbed, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(_sums(rel.input), _sums(rel.layers["S4"]), rtol=1e-9, atol=0)


def test_alexnet_bias_free_lrp0_is_conservative() -> None:
    """Max pooling routes to the winner, average pooling and the linear layers are bias-free."""
    model = alexnet(bias_free=True)
    x = feats("alexnet")
    target, logit = _logit(model, x)
    r = relevance(model, x, target, uniform(Zero())).input
    torch.testing.assert_close(_sums(r), logit, rtol=1e-9, atol=0)


def _placed(model: SpeakerClassifier, x: Tensor) -> dict[str, str]:
    composite = LayerGroupComposite(lower=Gamma(5.0), middle=Epsilon(0.5), upper=Zero())
    names = {m: n for n, m in model.named_modules()}
    with composite.context(model, x) as rules:
        return {
            names[m]: type(r).__name__
            for m, r in rules.items()
            if isinstance(r, (Gamma, Epsilon, Zero))
        }


def _expected_rule(name: str, lower: tuple[str, ...], upper: tuple[str, ...]) -> str:
    if name.startswith(upper):
        return "Zero"
    return "Gamma" if name.startswith(lower) else "Epsilon"


#: model -> (prefixes that take gamma, prefixes that take LRP-0); the rest of the hidden layers
#: take epsilon. Hand-counted lower thirds of the on-path Conv/Linear layers:
#: ECAPA: conv1 + 3 x (tdnn1 + 7 Res2Net + tdnn2) + mfa = 29 -> 10 = conv1 and block1;
#: ResNet34SE: stem + 2 x 16 + 3 shortcuts = 36 -> 12 = stem, S1 (6), S2.0 (3), S2.1 (2);
#: AlexNet: 5 convolutions -> 2.
PLACEMENT = {
    "ecapa": (
        ("embedder.conv1.", "embedder.block1."),
        ("embedder.pool.", "embedder.pool_bn", "embedder.fc", "head"),
    ),
    "resnet34se": (
        ("embedder.stem.", "embedder.S1.", "embedder.S2.0.", "embedder.S2.1."),
        ("embedder.fc", "head"),
    ),
    "alexnet": (
        ("embedder.conv1.", "embedder.conv2."),
        ("embedder.avgpool", "embedder.fc1", "embedder.fc2", "head"),
    ),
}


@pytest.mark.parametrize("name", sorted(PLACEMENT), ids=sorted(PLACEMENT))
def test_layer_group_placement(name: str) -> None:
    model = MODELS[name][0]()
    placed = _placed(model, feats(name))
    lower, upper = PLACEMENT[name]
    expected = {n: _expected_rule(n, lower, upper) for n in placed}
    assert placed == expected
    assert {"Gamma", "Epsilon", "Zero"} == set(placed.values())
    if name == "resnet34se":  # folded BatchNorms take no rule
        assert not any(".bn" in n or n.endswith("shortcut.1") for n in placed)


@pytest.mark.parametrize(
    ("fraction", "n_gamma"), [(0.0, 0), (0.5, 3), (1.0, 5)], ids=["none", "half", "all"]
)
def test_lower_fraction(fraction: float, n_gamma: int) -> None:
    """AlexNet's five convolutions: ceil(5 f) take gamma, the rest epsilon, fc1/fc2/head LRP-0."""
    model = alexnet()
    composite = LayerGroupComposite(
        lower=Gamma(5.0), middle=Epsilon(0.5), upper=Zero(), lower_fraction=fraction
    )
    with composite.context(model, feats("alexnet")) as rules:
        kinds = [type(rules[m]).__name__ for m in model.modules() if isinstance(m, nn.Conv2d)]
        upper = (model.embedder.fc1, model.embedder.fc2, model.head)
        fcs = {type(rules[m]).__name__ for m in upper}
    assert kinds == ["Gamma"] * n_gamma + ["Epsilon"] * (5 - n_gamma) and fcs == {"Zero"}


def test_epsilon_and_gamma_limits() -> None:
    """``lrp_epsilon`` at epsilon 0 is ``lrp_0``; gamma 0 without stabiliser is LRP-0."""
    model = alexnet()
    x = feats("alexnet")
    zero = attribute(model, x, "lrp_0", "lrp", params=PARAMS).maps
    eps0 = attribute(model, x, "lrp_epsilon", "lrp", params=AttributionConfig(lrp_epsilon=0.0)).maps
    torch.testing.assert_close(eps0, zero, rtol=1e-10, atol=1e-14)
    target = model(x).argmax(dim=1)

    def group(lower: Rule) -> Tensor:
        comp = LayerGroupComposite(lower=lower, middle=Epsilon(0.5), upper=Zero())
        return relevance(model, x, target, comp).input

    torch.testing.assert_close(
        group(Gamma(0.0, stabilizer=0.0)), group(Zero()), rtol=1e-8, atol=1e-14
    )
    assert not torch.allclose(group(Gamma(5.0)), group(Zero()))


def test_errors_name_the_problem() -> None:
    model = ecapa()
    x = feats("ecapa")
    with pytest.raises(ValueError, match="pathway must be 'lrp'"):
        get_attributor("lrp_0")(model, PARAMS).attribute(x, "classification")
    with pytest.raises(ValueError, match="attribution.lrp_epsilon must be >= 0"):
        attribute(model, x, "lrp_epsilon", "lrp", params=AttributionConfig(lrp_epsilon=-1.0))
    with pytest.raises(ValueError, match="attribution.lrp_gamma must be >= 0"):
        attribute(model, x, "lrp_gamma", "lrp", params=AttributionConfig(lrp_gamma=-1.0))
    lstm = _classifier(BiLstm(40, channels=4, embedding_dim=8)).double()
    with pytest.raises(ValueError, match=r"no rule for 'embedder.lstm1.lstm' \(LSTM\)"):
        attribute(lstm, x, "lrp_0", "lrp", params=PARAMS)
    assert hook_count(lstm) == 0
