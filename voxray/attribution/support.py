"""Which attribution methods are defined for a model, decided from the method's class and the
model's modules, so a run is refused at configuration time instead of failing (or writing
meaningless maps) per utterance inside the attribute stage.

- The CAM family weights a convolutional feature map (channels x time [x frequency]); a model
  whose ``layers()`` hold no convolution (GE2E's LSTM stack, Lehmann & Stadelmann 2020's BiLSTM) has
  none to weight.
- LRP needs a rule for every module with parameters; there is none for recurrent layers here
  (Arras et al. 2017's LSTM rules are not implemented).
- Captum's DeepLift has no multiplier rule for an LSTM (``deeplift_support``).

Gradient methods (IG, GradientShap, Saliency, Input x Gradient) and the perturbation methods
(Occlusion, Shapley sampling) only need a differentiable or evaluable model: always defined.
"""

from __future__ import annotations

from collections.abc import Iterable

from voxray.attribution.base import Pathway, get_attributor
from voxray.attribution.cam import CamAttributor
from voxray.attribution.captum_methods import DeepLiftAttributor
from voxray.attribution.deeplift_support import check_deeplift_support
from voxray.attribution.lrp.composite import ACTIVATION_TYPES, GATE_TYPES
from voxray.attribution.lrp.layers import LINEAR_TYPES
from voxray.config import ConfigError
from voxray.models.base import SpeakerClassifier
from voxray.models.loaded import conv_layers


def unsupported_reason(method: str, model: SpeakerClassifier) -> str | None:
    """Why ``method`` is not defined for ``model``, or None when it is."""
    cls = get_attributor(method)
    embedder = model.embedder
    arch = type(embedder).__name__
    if issubclass(cls, CamAttributor):
        layers = embedder.layers()
        if not conv_layers(embedder):
            return (
                f"a CAM weights convolutional feature maps and {arch}'s layers "
                f"({', '.join(layers)}) have no convolution"
            )
    if Pathway.LRP in cls.pathways:
        for name, m in model.named_modules():
            has_params = next(m.parameters(recurse=False), None) is not None
            if has_params and not isinstance(m, LINEAR_TYPES + GATE_TYPES + ACTIVATION_TYPES):
                return (
                    f"LRP has no rule for {name!r} ({type(m).__name__}) in {arch} "
                    "(the LSTM rules of Arras et al. 2017 are not implemented)"
                )
    if issubclass(cls, DeepLiftAttributor):
        try:
            check_deeplift_support(embedder)
        except ValueError as exc:
            return str(exc)
    return None


def check_methods(
    methods: Iterable[str],
    model: SpeakerClassifier,
    model_name: str,
    key: str = "attribution.methods",
) -> None:
    """Raise ConfigError naming ``key``, every method in it not defined for ``model`` and the
    ones that are (``model_name`` as the outputs' model column spells it)."""
    methods = list(dict.fromkeys(methods))
    refused = {m: r for m in methods if (r := unsupported_reason(m, model)) is not None}
    if not refused:
        return
    arch = type(model.embedder).__name__
    fine = [m for m in methods if m not in refused]
    lines = "; ".join(f"{m}: {r}" for m, r in refused.items())
    raise ConfigError(
        f"{key}: {', '.join(refused)} not defined for model {model_name!r} "
        f"({arch}): {lines}. Remove them (defined for it among those configured: "
        f"{', '.join(fine) or 'none'})"
    )


def defined_methods(
    methods: Iterable[str], model: SpeakerClassifier
) -> tuple[list[str], dict[str, str]]:
    """``methods`` split into those defined for ``model`` and, for the others, why not: what an
    analysis whose methods come from a default (sanity checks, faithfulness, XAI metrics) runs
    and lists as left out, where a method the user asked for is refused (``check_methods``)."""
    arch = type(model.embedder).__name__
    left_out = {
        m: f"not defined for {arch}: {reason}"
        for m in dict.fromkeys(methods)
        if (reason := unsupported_reason(m, model)) is not None
    }
    return [m for m in dict.fromkeys(methods) if m not in left_out], left_out
