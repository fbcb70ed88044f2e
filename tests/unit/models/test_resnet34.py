"""The plain ResNet34 of Sarvaš 2021 §5: ResNet34SE's topology with the SE gates off, so it
differs from ResNet34SE by exactly the SE parameters, trains, and every attribution method
defined for ResNet34SE is defined for it and runs."""

from __future__ import annotations

import pytest
import torch

from voxray.attribution import ATTRIBUTORS, attribute, method_pathways
from voxray.attribution.support import unsupported_reason
from voxray.config import AttributionConfig, HeadConfig, ModelConfig
from voxray.models import MarginHead, ResNet34, ResNet34SE, build_classifier
from voxray.models.base import SpeakerClassifier, count_parameters
from voxray.models.resnet_se import SELayer2d
from voxray.train.local import fit_classifier

BINS, FRAMES = 24, 30


def _classifier(cls: type[ResNet34]) -> SpeakerClassifier:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        head = MarginHead(16, 3, HeadConfig(kind="softmax"))
        return SpeakerClassifier(cls(BINS, 4, 16), head).eval()


def _utterances(n: int = 2) -> torch.Tensor:
    return torch.randn(n, FRAMES, BINS, generator=torch.Generator().manual_seed(1))


def test_built_from_its_arch_with_the_se_models_shapes() -> None:
    model = build_classifier(ModelConfig(arch="resnet34", channels=4, embedding_dim=16), BINS, 3)
    assert type(model.embedder) is ResNet34
    se = ResNet34SE(BINS, 4, 16).eval()
    x = _utterances()
    shapes: dict[str, list[tuple[int, ...]]] = {}
    for emb in (model.embedder.eval(), se):
        hooks = [
            m.register_forward_hook(
                lambda _m, _i, out, n=n: shapes.setdefault(n, []).append(tuple(out.shape))
            )
            for n, m in emb.layers().items()
        ]
        with torch.no_grad():
            assert emb(x).shape == (2, 16)
        for h in hooks:
            h.remove()
    assert shapes["S4"] == [(2, 32, 3, 4)] * 2 and shapes["pool"] == [(2, 2 * 32 * 3)] * 2
    assert all(a == b for a, b in shapes.values())


def test_no_se_modules_and_exactly_the_se_parameters_fewer() -> None:
    plain, se = ResNet34(BINS, 8, 16), ResNet34SE(BINS, 8, 16)
    assert not any(isinstance(m, SELayer2d) for m in plain.modules())
    gates = [m for m in se.modules() if isinstance(m, SELayer2d)]
    assert len(gates) == sum(ResNet34.blocks_per_stage) == 16
    # by hand: a block of width w has Linear(w, w/8) and Linear(w/8, w), with biases
    by_hand = sum(
        n * (w * (w // 8) + w // 8 + (w // 8) * w + w)
        for w, n in zip((8, 16, 32, 64), ResNet34.blocks_per_stage, strict=True)
    )
    assert sum(count_parameters(g) for g in gates) == by_hand
    assert count_parameters(se) - count_parameters(plain) == by_hand
    # the rest of the state dict is the SE model's, name for name
    assert set(plain.state_dict()) == {k for k in se.state_dict() if ".se." not in k}


def test_trains() -> None:
    torch.manual_seed(0)
    model = _classifier(ResNet34)
    labels = torch.arange(8) % 2
    feats = torch.randn(8, FRAMES, BINS) + 2.0 * labels[:, None, None].float()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = fit_classifier(model, feats, labels, epochs=3, batch_size=4, lr=1e-2)
    assert losses[-1] < losses[0]
    assert not torch.equal(
        before["embedder.stem.0.weight"], model.state_dict()["embedder.stem.0.weight"]
    )


def test_defined_for_the_methods_resnet34se_is_defined_for() -> None:
    plain, se = _classifier(ResNet34), _classifier(ResNet34SE)
    defined = {m for m in ATTRIBUTORS if unsupported_reason(m, plain) is None}
    assert defined == {m for m in ATTRIBUTORS if unsupported_reason(m, se) is None}
    assert {"lrp_epsilon", "grad_cam_pp", "integrated_gradients"} <= defined


#: every method defined for ResNet34SE with its first pathway (classification where it has one).
JOBS = [
    (m, method_pathways(m, ("classification", "traversal"))[0])
    for m in sorted(ATTRIBUTORS)
    if unsupported_reason(m, _classifier(ResNet34SE)) is None
]


@pytest.mark.parametrize(("method", "pathway"), JOBS, ids=[m for m, _ in JOBS])
def test_every_method_of_resnet34se_runs_on_it(method: str, pathway: str) -> None:
    plain = _classifier(ResNet34)
    params = AttributionConfig(ig_steps=8, shap_samples=2, internal_batch_size=16)
    x = _utterances()
    res = attribute(plain, x, method, pathway, params=params)
    assert res.maps.shape == x.shape
    assert torch.isfinite(res.maps).all() and res.maps.abs().max() > 0
