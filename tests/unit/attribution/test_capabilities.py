"""The capability attributes on the Attributor classes say what the methods actually do:
``map_params`` lists exactly the config fields that change a method's maps, ``perturbs`` and
``gradient_passes`` match the gradient-enabled forward passes a call makes, and ``register``
refuses a class that does not state its capabilities."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest
import torch
from torch import Tensor

from voxray.attribution import (
    ATTRIBUTORS,
    Attributor,
    Pathway,
    attribute,
    get_attributor,
    method_pathways,
    methods_with_pathway,
    register,
)
from voxray.config import AttributionConfig
from voxray.testing.tiny_models import tiny_cnn_classifier

METHODS = sorted(ATTRIBUTORS)
#: another value (than the ``params`` fixture's, conftest.py) for every field some method lists
#: in map_params.
OTHER = {
    "baseline": "zeros",
    "ig_steps": 7,
    "shap_samples": 5,
    "shap_stdev": 0.3,
    "shapley_samples": 3,
    "patch_frames": 5,
    "patch_bins": 3,
    "occlusion_frames": 4,
    "occlusion_bins": 3,
    "cam_layers": ("S2",),
    "cam_gamma": 0.0,
    "lrp_epsilon": 3.0,
    "lrp_gamma": 0.5,
}


@pytest.fixture(scope="module")
def model():
    return tiny_cnn_classifier(seed=2).double()


def _maps(model, feats: Tensor, method: str, params: AttributionConfig) -> Tensor:
    pathway = method_pathways(method, (Pathway.CLASSIFICATION,))[0]
    return attribute(model, feats, method, pathway, params=params).maps


def test_every_listed_field_is_known_and_has_another_value() -> None:
    fields = {f.name for f in dataclasses.fields(AttributionConfig)}
    listed = {p for cls in ATTRIBUTORS.values() for p in cls.map_params}
    assert listed <= fields
    assert listed == set(OTHER)  # a new map parameter needs a value to test it with


@pytest.mark.parametrize("method", METHODS)
def test_map_params_are_exactly_the_fields_that_change_the_maps(
    model, feats: Tensor, params: AttributionConfig, method: str
) -> None:
    ref = _maps(model, feats, method, params)
    own = set(get_attributor(method).map_params)
    for field, value in OTHER.items():
        changed = _maps(model, feats, method, dataclasses.replace(params, **{field: value}))
        if field in own:
            assert not torch.allclose(changed, ref), f"{method}: {field} listed, changes nothing"
        else:
            assert torch.equal(changed, ref), f"{method}: {field} changes the maps, not listed"


@pytest.mark.parametrize("method", METHODS)
def test_gradient_passes_count_the_differentiated_forwards(
    model, feats: Tensor, params: AttributionConfig, method: str
) -> None:
    """Rows the embedder sees with gradients enabled, per utterance (the slope between a batch
    of 3 and one of 1, so a fixed per-call cost such as LRP's one-row layer trace is not
    counted): ``gradient_passes``, and none for a perturbation method."""

    def differentiated_rows(x: Tensor) -> int:
        rows = []

        def count(_module, args) -> None:
            if torch.is_grad_enabled() and args[0].requires_grad:
                rows.append(args[0].shape[0])

        handle = model.embedder.register_forward_pre_hook(count)
        try:
            _maps(model, x, method, params)
        finally:
            handle.remove()
        return sum(rows)

    cls = get_attributor(method)
    passes = cls.gradient_passes(params)
    assert (passes is None) == cls.perturbs
    per_utterance = (differentiated_rows(feats) - differentiated_rows(feats[:1])) / 2
    assert per_utterance == (passes or 0), method


def test_pathway_values_are_the_parquet_strings() -> None:
    assert [p.value for p in Pathway][:4] == ["traversal", "classification", "cam", "lrp"]
    assert f"{Pathway.CAM}" == "cam" and Pathway("lrp") is Pathway.LRP
    assert methods_with_pathway(Pathway.CAM) == ("grad_cam_pp", "layer_cam", "score_cam")
    assert methods_with_pathway(Pathway.LRP) == ("lrp_0", "lrp_epsilon", "lrp_gamma")


def test_register_refuses_a_class_without_its_capabilities() -> None:
    class Unstated(Attributor):
        name: ClassVar[str] = "unstated"
        title: ClassVar[str] = "Unstated"

        def explain(self, x, pathway, target, baseline):  # pragma: no cover
            raise NotImplementedError

    with pytest.raises(TypeError, match="does not set 'map_params'"):
        register(Unstated)

    class WrongField(Unstated):
        map_params = ("ig_step",)

    with pytest.raises(TypeError, match=r"map_params \['ig_step'\]"):
        register(WrongField)
    assert "unstated" not in ATTRIBUTORS
