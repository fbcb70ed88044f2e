"""Canonizers and the hook context: BatchNorm folding keeps the output (before / during / after,
as zennit's test_merge_batchnorm_consistency), folds only where the graph allows, and every hook,
patched attribute and temporary parameter is gone after the context, also after an error."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
import torch
from torch import Tensor, nn

from voxray.attribution.lrp import MergeBatchNorm, Zero, uniform
from voxray.attribution.lrp.composite import GATE_TYPES
from voxray.attribution.lrp.trace import trace_model
from voxray.config import HeadConfig
from voxray.models import EcapaTdnn, MarginHead, ResNet34SE, SpeakerClassifier
from voxray.testing.modules import hook_count
from voxray.testing.tiny_models import scramble_batchnorm

pytestmark = pytest.mark.usefixtures("one_thread")


def _scramble(model: nn.Module, seed: int = 0) -> nn.Module:
    scramble_batchnorm(model, torch.Generator().manual_seed(seed))
    return model.double().eval()


class ResidualBn(nn.Module):
    """``bn(conv(x)) + conv(x)``: the conv output has a second consumer, so no fold."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm1d(4)
        self.fc = nn.Linear(4 * 7, 2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return self.fc((self.bn(y) + y).flatten(1))


def _resnet() -> nn.Module:
    torch.manual_seed(0)
    emb = ResNet34SE(input_dim=16, channels=4, embedding_dim=8)
    return _scramble(SpeakerClassifier(emb, MarginHead(8, 3, HeadConfig(kind="aam"))))


def _ecapa() -> nn.Module:
    torch.manual_seed(0)
    emb = EcapaTdnn(
        16, 16, 8, mfa_channels=24, attention_channels=8, se_channels=8, res2net_scale=4
    )
    return _scramble(SpeakerClassifier(emb, MarginHead(8, 3, HeadConfig(kind="aam"))))


#: name -> (model builder, input shape, number of BatchNorms that fold)
CASES = {
    "sequential-conv2d": (
        lambda: _scramble(
            nn.Sequential(
                nn.Conv2d(1, 3, 3),
                nn.BatchNorm2d(3),
                nn.ReLU(),
                nn.Flatten(),
                nn.Linear(3 * 4 * 6, 2),
            )
        ),
        (2, 1, 6, 8),
        1,
    ),
    "linear-bn1d": (
        lambda: _scramble(
            nn.Sequential(
                nn.Linear(5, 6, bias=False), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)
            )
        ),
        (3, 5),
        1,
    ),
    # BatchNorm1d normalises dim 1, which for a (B, T, C) Linear output is time, not features
    "linear-3d-bn": (
        lambda: _scramble(
            nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Flatten(), nn.Linear(36, 2))
        ),
        (2, 6, 5),
        0,
    ),
    "conv-relu-bn": (
        lambda: _scramble(
            nn.Sequential(
                nn.Conv1d(3, 4, 3), nn.ReLU(), nn.BatchNorm1d(4), nn.Flatten(), nn.Linear(4 * 5, 2)
            )
        ),
        (2, 3, 7),
        0,
    ),
    "residual-bn": (lambda: _scramble(ResidualBn()), (2, 3, 7), 0),
    # every BatchNorm of ResNet34SE follows its conv: the stem's, bn1/bn2 of the 16 blocks
    # (attributes, not a Sequential) and the 3 shortcuts'
    "resnet34se": (_resnet, (2, 20, 16), 1 + 2 * 16 + 3),
    # ECAPA: Conv -> ReLU -> BN everywhere, pool_bn after the pooling: nothing folds
    "ecapa": (_ecapa, (2, 20, 16), 0),
}


def _overrides(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if "forward" in m.__dict__]


@pytest.mark.parametrize("case", sorted(CASES), ids=sorted(CASES))
def test_merge_batchnorm_consistency(case: str) -> None:
    build, shape, n_folded = CASES[case]
    model = build()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = {n: (p, p.detach().clone()) for n, p in model.named_parameters()}
    with torch.no_grad():
        before = model(x)
    trace = trace_model(model, x, {}, GATE_TYPES)
    with ExitStack() as stack:
        folded = MergeBatchNorm().apply(model, trace, stack)
        with torch.no_grad():
            during = model(x)
        assert len(folded) == n_folded
        assert all(isinstance(bn, nn.modules.batchnorm._BatchNorm) for bn in folded)
        torch.testing.assert_close(during, before, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        after = model(x)
    assert torch.equal(after, before)
    assert dict(model.named_parameters()).keys() == params.keys()
    for name, p in model.named_parameters():
        assert p is params[name][0] and torch.equal(p, params[name][1]), name
    assert not _overrides(model)


def test_batchnorm_in_training_mode_is_refused() -> None:
    model = CASES["sequential-conv2d"][0]().train()
    x = torch.randn(2, 1, 6, 8, dtype=torch.float64)
    trace = trace_model(model, x, {}, GATE_TYPES)
    with pytest.raises(ValueError, match="eval mode"), ExitStack() as stack:
        MergeBatchNorm().apply(model, trace, stack)
    assert model[0].weight.shape == (3, 1, 3, 3) and not _overrides(model)


@pytest.mark.parametrize("case", ["resnet34se", "ecapa"], ids=["resnet34se", "ecapa"])
def test_context_leaves_no_trace(case: str) -> None:
    model = CASES[case][0]()
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
    n_params = len(list(model.parameters()))
    with uniform(Zero()).context(model, x) as rules:
        assert hook_count(model) == len(rules) > 0
        assert bool(_overrides(model)) == (case == "resnet34se")  # the folded BatchNorms
        with torch.no_grad():
            during = model(x)
    if case == "ecapa":  # nothing folds: the rules keep every value bit for bit
        assert torch.equal(during, before)
    else:
        torch.testing.assert_close(during, before, rtol=1e-12, atol=1e-12)
    assert hook_count(model) == 0 and not _overrides(model)
    assert len(list(model.parameters())) == n_params
    with torch.no_grad():
        assert torch.equal(model(x), before)


def test_context_cleans_up_after_an_error() -> None:
    model = CASES["resnet34se"][0]()
    x = torch.randn(2, 20, 16, dtype=torch.float64)
    with torch.no_grad():
        before = model(x)
    with pytest.raises(RuntimeError, match="boom"):
        with uniform(Zero()).context(model, x):
            model(x)
            raise RuntimeError("boom")
    assert hook_count(model) == 0 and not _overrides(model)
    with torch.no_grad():
        assert torch.equal(model(x), before)
