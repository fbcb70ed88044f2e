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

A pathway that explains a class score (classification, the CAMs, LRP) needs a classification
head; a model without one (CAM++, GE2E) has one only through ``eval.enrolment``.

What the user asked for (a profile, a config file or an override set the key) and cannot be
explained is refused before any work; what only came from a default is left out with its reason
(``left_out_jobs``), which the stage logs and its marker lists for the report.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from voxray.attribution import method_pathways
from voxray.attribution.base import PATHWAYS, Pathway, get_attributor
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


def defined_methods(
    methods: Iterable[str], model: SpeakerClassifier
) -> tuple[list[str], dict[str, str]]:
    """``methods`` split into those defined for ``model`` and, for the others, why not: what an
    analysis whose methods come from a default (sanity checks, faithfulness, XAI metrics) runs
    and lists as left out, where a method the user asked for is refused (``refuse_asked``)."""
    arch = type(model.embedder).__name__
    left_out = {
        m: f"not defined for {arch}: {reason}"
        for m in dict.fromkeys(methods)
        if (reason := unsupported_reason(m, model)) is not None
    }
    return [m for m in dict.fromkeys(methods) if m not in left_out], left_out


#: the pathways that explain a speaker's class score: a model without a classification head has
#: them only through the enrolment head (``eval.enrolment``).
HEAD_PATHWAYS = frozenset({Pathway.CLASSIFICATION, Pathway.CAM, Pathway.LRP})


@dataclass(frozen=True)
class LeftOut:
    """A method, or one of its pathways, that is not computed for a model: why, and which
    configuration key asked for it (refused when the user set that key, else left out)."""

    method: str
    #: None: every pathway of the method.
    pathway: Pathway | None
    why: str
    key: str

    @property
    def what(self) -> str:
        return self.method if self.pathway is None else f"{self.method}/{self.pathway}"

    def covers(self, method: str, pathway: str) -> bool:
        return method == self.method and self.pathway in (None, pathway)


def headless_reason(pathway: Pathway) -> str:
    return (
        f"the {pathway} pathway explains a speaker's class score and the model has no "
        "classification head (eval.enrolment.enabled=true gives it one: cosine to each corpus "
        "speaker's mean embedding)"
    )


def left_out_jobs(
    methods: Iterable[str],
    pathways: Iterable[str],
    model: SpeakerClassifier,
    has_head: bool,
    key: str = "attribution",
) -> list[LeftOut]:
    """What of ``methods`` x ``pathways`` (as ``method_pathways`` pairs them) ``model`` cannot
    explain: a method not defined for it (``unsupported_reason``, blamed on ``key.methods``),
    and without ``has_head`` each head pathway (blamed on ``key.methods`` for the CAMs' and LRP's
    own pathway, on ``key.pathways`` for the Captum methods' classification pathway)."""
    methods = list(dict.fromkeys(methods))
    _, undefined = defined_methods(methods, model)
    out = [LeftOut(m, None, why, f"{key}.methods") for m, why in undefined.items()]
    if has_head:
        return out
    pathways = tuple(pathways)
    for m in methods:
        if m in undefined:
            continue
        own = tuple(get_attributor(m).pathways) != PATHWAYS  # a CAM's or LRP's own label
        for p in method_pathways(m, pathways):
            if p in HEAD_PATHWAYS:
                blamed = f"{key}.methods" if own else f"{key}.pathways"
                out.append(LeftOut(m, p, headless_reason(p), blamed))
    return out


def refuse_asked(
    left_out: Iterable[LeftOut], asked: Collection[str], model: SpeakerClassifier, model_name: str
) -> None:
    """Raise ConfigError for what of ``left_out`` a key in ``asked`` set, naming the keys, each
    method (or method/pathway) refused and why (``model_name`` as the outputs' model column
    spells it)."""
    refused = [lo for lo in left_out if lo.key in asked]
    if not refused:
        return
    arch = type(model.embedder).__name__
    keys = ", ".join(dict.fromkeys(lo.key for lo in refused))
    lines = "; ".join(f"{lo.what}: {lo.why}" for lo in refused)
    raise ConfigError(
        f"{keys}: {', '.join(lo.what for lo in refused)} not defined for model "
        f"{model_name!r} ({arch}): {lines}. Remove them, or leave the key to its default (what "
        "a default holds that the model cannot explain is left out with its reason)"
    )
