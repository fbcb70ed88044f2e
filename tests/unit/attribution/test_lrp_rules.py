"""LRP rules on plain float64 networks: LRP-0 conservation per layer, LRP-epsilon and LRP-gamma
against zennit 0.5.1 (the peer implementation), the statistics-pooling rule against a
hand-computed case, gates, and the forward value left untouched."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import LayerMapComposite
from zennit.rules import Epsilon as ZennitEpsilon
from zennit.rules import Gamma as ZennitGamma
from zennit.rules import Pass as ZennitPass
from zennit.types import Activation, AvgPool, Convolution
from zennit.types import Linear as ZennitLinear

from voxray.attribution.lrp import Detach, Epsilon, Gamma, Rule, Zero, relevance, uniform
from voxray.models.resnet_se import STD_FLOOR, TemporalStatsPool
from voxray.testing.tiny_models import scramble_batchnorm

#: zennit's merged BatchNorm computes x / sqrt(1 + eps), not the identity; with a negligible
#: eps both implementations fold exactly the same affine map.
BN_EPS = 1e-300


pytestmark = pytest.mark.usefixtures("one_thread")


def _scramble_bn(model: nn.Module, seed: int) -> nn.Module:
    scramble_batchnorm(model, torch.Generator().manual_seed(seed))
    return model.double().eval()


def conv2d_bn_net(seed: int = 0) -> nn.Module:
    """(B, 1, 8, 10) -> (B, 5): Conv2d+BN+ReLU, max pool, Conv2d+BN+ReLU, Linear, ReLU, Linear."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4, eps=BN_EPS),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.BatchNorm2d(6, eps=BN_EPS),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 5, 8),
        nn.ReLU(),
        nn.Linear(8, 5),
    )
    return _scramble_bn(net, seed + 1)


def conv1d_net(seed: int = 0, pool: type[nn.Module] = nn.AvgPool1d) -> nn.Module:
    """(B, 6, 16) -> (B, 5): Conv1d k=5+BN+ReLU, dilated Conv1d+ReLU, pooling, Linear."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv1d(6, 8, 5, padding=2),
        nn.BatchNorm1d(8, eps=BN_EPS),
        nn.ReLU(),
        nn.Conv1d(8, 8, 3, padding=2, dilation=2),
        nn.ReLU(),
        pool(2),
        nn.Flatten(),
        nn.Linear(8 * 8, 5),
    )
    return _scramble_bn(net, seed + 1)


def bias_free_nets() -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    torch.manual_seed(3)
    mlp = nn.Sequential(
        nn.Linear(12, 16, bias=False),
        nn.ReLU(),
        nn.Linear(16, 16, bias=False),
        nn.ReLU(),
        nn.Linear(16, 5, bias=False),
    )
    conv2d = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1, bias=False),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d((2, 2)),
        nn.Flatten(),
        nn.Linear(16, 5, bias=False),
    )
    conv1d = nn.Sequential(
        nn.Conv1d(6, 8, 5, padding=2, padding_mode="reflect", bias=False),
        nn.ReLU(),
        nn.Conv1d(8, 8, 3, dilation=2, padding=2, bias=False),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 16, 5, bias=False),
    )
    return {
        "mlp": (mlp.double().eval(), (4, 12)),
        "conv2d": (conv2d.double().eval(), (4, 1, 8, 10)),
        "conv1d": (conv1d.double().eval(), (4, 6, 16)),
    }


def _weighted(model: nn.Module) -> dict[str, nn.Module]:
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ReLU)
    return {n: m for n, m in model.named_modules() if isinstance(m, kinds)}


NETS = bias_free_nets()


@pytest.mark.parametrize("name", sorted(NETS), ids=sorted(NETS))
def test_lrp0_conserves_the_logit_at_every_layer(name: str) -> None:
    model, shape = NETS[name]
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        logits = model(x)
    target = logits.argmax(dim=1)
    explained = logits.gather(1, target[:, None]).squeeze(1)
    layers = _weighted(model)
    rel = relevance(model, x, target, uniform(Zero()), layers)
    sums = lambda r: r.flatten(1).sum(dim=1)  # noqa: E731
    torch.testing.assert_close(sums(rel.input), explained, rtol=1e-6, atol=0)
    for layer, r in rel.layers.items():
        torch.testing.assert_close(sums(r), explained, rtol=1e-6, atol=0, msg=layer)


def _zennit(model: nn.Module, x: Tensor, target: Tensor, rule: object, pool_rule: object) -> Tensor:
    composite = LayerMapComposite(
        [
            (Activation, ZennitPass()),
            (Convolution, rule),
            (ZennitLinear, rule),
            (AvgPool, pool_rule),
        ],
        canonizers=[SequentialMergeBatchNorm()],
    )
    onehot = torch.eye(5, dtype=x.dtype)[target]
    with Gradient(model, composite) as attributor:
        _, rel = attributor(x.clone(), lambda out: out * onehot)
    return rel


PeerCase = tuple[Callable[[], nn.Module], tuple[int, ...], Rule, Callable[[], object]]
PEER_CASES: dict[str, PeerCase] = {
    "conv2d-epsilon": (conv2d_bn_net, (3, 1, 8, 10), Epsilon(0.5), lambda: ZennitEpsilon(0.5)),
    "conv2d-gamma": (conv2d_bn_net, (3, 1, 8, 10), Gamma(5.0), lambda: ZennitGamma(5.0)),
    "conv2d-gamma0.25": (conv2d_bn_net, (3, 1, 8, 10), Gamma(0.25), lambda: ZennitGamma(0.25)),
    "conv1d-epsilon": (conv1d_net, (3, 6, 16), Epsilon(0.5), lambda: ZennitEpsilon(0.5)),
    "conv1d-epsilon0.01": (conv1d_net, (3, 6, 16), Epsilon(0.01), lambda: ZennitEpsilon(0.01)),
    "conv1d-gamma": (
        lambda: conv1d_net(pool=nn.MaxPool1d),
        (3, 6, 16),
        Gamma(5.0),
        lambda: ZennitGamma(5.0),
    ),
}


@pytest.mark.parametrize("case", sorted(PEER_CASES), ids=sorted(PEER_CASES))
def test_rules_match_zennit(case: str) -> None:
    build, shape, rule, peer = PEER_CASES[case]
    model = build()
    # signed inputs: the first layer exercises gamma's negative-input terms
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.tensor([0, 3, 1])
    expected = _zennit(model, x, target, peer(), peer())
    got = relevance(model, x, target, uniform(rule)).input
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-12 * float(expected.abs().max()))


def test_epsilon_absorbs_and_zero_does_not() -> None:
    """Sanity of the comparison: on a biased net epsilon shrinks the total relevance."""
    model = conv1d_net()
    x = torch.randn(3, 6, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    target = torch.tensor([0, 1, 2])
    r0 = relevance(model, x, target, uniform(Zero())).input.flatten(1).sum(1).abs()
    r_eps = relevance(model, x, target, uniform(Epsilon(5.0))).input.flatten(1).sum(1).abs()
    assert bool((r_eps < r0).all())


class StatsNet(nn.Module):
    """(B, C, F', T) -> TSP mean/std (B, 2 C F') -> bias-free Linear to 3 logits."""

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.pool = TemporalStatsPool()
        self.fc = nn.Linear(2 * rows, 3, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(x))


def test_statistics_rule_by_hand() -> None:
    """Mean: z-rule, ``x_t / (T mu) R_mu``; std: LRP on centering, square, mean and root,
    ``x_t (x_t - mu) / (T var) R_std``; a constant row's std is the floor, its relevance
    absorbed."""
    frames = 6
    x = torch.tensor(
        [
            [
                [
                    [0.5, 1.0, 2.0, 0.0, 1.5, 3.0],
                    [1.0, -2.0, 0.5, 0.7, 0.2, 1.1],
                    [0.4, 0.4, 0.4, 0.4, 0.4, 0.4],
                ]
            ]
        ],  # constant: std is the floor, absorbed
        dtype=torch.float64,
    )
    net = StatsNet(3).double()
    with torch.no_grad():
        net.fc.weight.copy_(torch.tensor([[0.3, -0.2, 0.5, 0.7, 0.4, -0.6]] * 3))
    rel = relevance(net, x, torch.tensor([0]), uniform(Zero())).input[0, 0]

    w = net.fc.weight[0].detach()
    expected = torch.zeros_like(rel)
    for i, row in enumerate(x[0, 0]):
        mean = row.mean()
        var = (row - mean).pow(2).mean()
        std = var.clamp(min=STD_FLOOR).sqrt()
        expected[i] = row / frames / mean * (mean * w[i])
        if var > STD_FLOOR:
            expected[i] += row * (row - mean) / frames / var * (std * w[3 + i])
    torch.testing.assert_close(rel, expected, rtol=1e-10, atol=1e-14)
    # the first two rows conserve their mean's and std's relevance exactly
    pooled = net.pool(x)[0]
    totals = pooled[[0, 1]] * w[[0, 1]] + pooled[[3, 4]] * w[[3, 4]]
    torch.testing.assert_close(rel[:2].sum(dim=1), totals, rtol=1e-10, atol=0)


def test_detached_gate_passes_all_relevance_to_the_signal() -> None:
    """y = x * sigmoid(v . x): with the gate a constant, R_x = R_y element by element."""

    class Gated(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gate = nn.Linear(4, 4)
            self.sigmoid = nn.Sigmoid()
            self.out = nn.Linear(4, 2, bias=False)

        def forward(self, x: Tensor) -> Tensor:
            return self.out(x * self.sigmoid(self.gate(x)))

    torch.manual_seed(0)
    net = Gated().double()
    x = torch.randn(5, 4, dtype=torch.float64)
    target = torch.zeros(5, dtype=torch.long)
    rel = relevance(net, x, target, uniform(Zero()), {"out": net.out})
    gated = x * torch.sigmoid(net.gate(x)).detach()
    expected = gated * net.out.weight[0].detach()  # LRP-0 of the bias-free output layer
    torch.testing.assert_close(rel.input, expected, rtol=1e-12, atol=0)
    # the rule itself: a Detach'd module's output is a constant
    gate = torch.sigmoid(x.clone().requires_grad_(True))
    assert gate.requires_grad and not Detach().hook(net.sigmoid, (x,), gate).requires_grad


@pytest.mark.parametrize(
    "rule", [Zero(), Epsilon(0.5), Gamma(5.0)], ids=["zero", "epsilon", "gamma"]
)
def test_forward_value_identical_while_hooked(rule: Rule) -> None:
    model, shape = NETS["conv1d"]
    x = torch.randn(*shape, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
    with uniform(rule).context(model, x):
        during = model(x.clone().requires_grad_(True))
    assert torch.equal(during, before)


def test_invalid_parameters_and_modules() -> None:
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        Epsilon(-0.1)
    with pytest.raises(ValueError, match="gamma must be >= 0"):
        Gamma(-1.0)

    class Recurrent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 3, batch_first=True)

        def forward(self, x: Tensor) -> Tensor:
            return self.lstm(x)[0][:, -1]

    net = Recurrent()
    with pytest.raises(ValueError, match=r"no rule for 'lstm' \(LSTM\)"):
        with uniform(Zero()).context(net, torch.randn(1, 5, 4)):
            pass
    assert not net.lstm._forward_hooks
