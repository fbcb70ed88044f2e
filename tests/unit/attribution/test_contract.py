"""One table over every registered method: maps of the input's shape, finite, deterministic,
batch == per-item, and the model left as it was (hooks removed, train/eval and requires_grad
flags restored, no parameter gradients, identical output)."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from voxray.attribution import ATTRIBUTORS, attribute, method_pathways
from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier
from voxray.testing.modules import hook_count
from voxray.testing.tiny_models import tiny_cnn_classifier, tiny_tdnn_classifier

METHODS = sorted(ATTRIBUTORS)
BUILDERS = {"tdnn": tiny_tdnn_classifier, "cnn": tiny_cnn_classifier}


def jobs() -> list[tuple[str, str]]:
    return [(m, p) for m in METHODS for p in method_pathways(m, ("traversal", "classification"))]


JOBS = jobs()


@pytest.mark.parametrize("model_name", sorted(BUILDERS), ids=sorted(BUILDERS))
@pytest.mark.parametrize(("method", "pathway"), JOBS, ids=[f"{m}-{p}" for m, p in JOBS])
def test_method_contract(
    model_name: str, method: str, pathway: str, feats: Tensor, params: AttributionConfig
) -> None:
    model: SpeakerClassifier = BUILDERS[model_name](seed=1).double()
    with torch.no_grad():
        before = model(feats)
    model.train()
    model.head.weight.requires_grad_(False)  # a mix of flags must come back as it was
    flags = [p.requires_grad for p in model.parameters()]
    hooks = hook_count(model)

    res = attribute(model, feats, method, pathway, params=params)

    assert res.maps.shape == feats.shape and res.maps.dtype == feats.dtype
    assert torch.isfinite(res.maps).all()
    assert all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert hook_count(model) == hooks
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(feats), before)

    again = attribute(model, feats, method, pathway, params=params)
    assert torch.equal(again.maps, res.maps)
    for i in range(feats.shape[0]):
        one = attribute(
            model,
            feats[i : i + 1],
            method,
            pathway,
            params=params,
            target=None if res.target is None else res.target[i : i + 1],
        )
        torch.testing.assert_close(one.maps, res.maps[i : i + 1], rtol=1e-6, atol=1e-10)


def test_every_configured_method_is_registered() -> None:
    assert set(AttributionConfig().methods) <= set(ATTRIBUTORS)
    assert {"lrp_0", "lrp_epsilon", "lrp_gamma"} <= set(ATTRIBUTORS)


def test_method_pathways() -> None:
    both = ("traversal", "classification")
    assert method_pathways("integrated_gradients", both) == both
    assert method_pathways("saliency", ("classification", "classification")) == ("classification",)
    assert method_pathways("layer_cam", ("traversal", "classification")) == ("cam",)
    assert method_pathways("score_cam", ()) == ("cam",)
    with pytest.raises(ValueError, match="unknown 'tranversal'"):
        method_pathways("saliency", ("tranversal",))
    with pytest.raises(KeyError, match="unknown attribution method 'gradcam'"):
        method_pathways("gradcam", ("traversal",))
