"""One contract for every attribution method (Captum's lesson): small classes, one call.

``Attributor(model, params).attribute(feats, pathway, target, baseline)`` returns maps of
the input's shape ``(B, T, F)`` whatever the method (IG, LRP or a CAM). Methods register
under the snake_case names used in config (``integrated_gradients``, ``layer_cam``,
``lrp_epsilon`` ...); ``voxray.attribution.attribute`` dispatches by name.

What the pipeline needs to know about a method lives on its class, as Captum keeps
``has_convergence_delta`` / ``multiplies_by_inputs`` on its: the pathways it writes, whether it
perturbs the input or takes gradients, its gradient passes per call and the config fields that
shape its maps. The stages, the benchmarks and the report read these attributes; no other
module keeps a table of method names.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from torch import Tensor

from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier


class Pathway(StrEnum):
    """The value of the ``pathway`` column of attributions/: which output a map explains.

    String-valued, so Parquet, JSON and config hold the plain names (``"traversal"`` ...).
    """

    #: the embedder alone, the mean attribution over the N embedding dimensions (Zhang et al.
    #: 2023, eq. 5).
    TRAVERSAL = "traversal"
    #: the margin head appended: the given (or predicted) speaker's logit.
    CLASSIFICATION = "classification"
    #: a class activation map of the classifier's target speaker at a layer (Li et al. 2022).
    CAM = "cam"
    #: layer-wise relevance of the classifier's target logit (Sarvaš 2021).
    LRP = "lrp"
    #: a verification trial's score cos(e_a, e_b) w.r.t. one side's features, the other side's
    #: embedding fixed (voxray.attribution.trial).
    TRIAL = "trial"


#: The two pathways a Captum method can explain (``attribution.pathways`` in config).
PATHWAYS: tuple[Pathway, ...] = (Pathway.TRAVERSAL, Pathway.CLASSIFICATION)
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(AttributionConfig))


@dataclass(frozen=True)
class AttributionResult:
    """Maps ``(B, T, F)`` and, where the method has one, the per-item completeness error."""

    maps: Tensor
    #: |sum(A) - (F(x) - F(x'))| / |F(x) - F(x')| per item (IG-family), else None.
    completeness_error: Tensor | None = None
    #: the class explained per item (classification / cam / lrp), else None.
    target: Tensor | None = None
    #: trial pathway: the explained score ``s(x)`` and the baseline's ``s(x')`` per item
    #: (the map's sum distributes their difference), else None.
    score: Tensor | None = None
    baseline_score: Tensor | None = None


class Attributor(ABC):
    """Base class: subclasses set the capability attributes below and implement ``explain``.

    ``name``, ``title`` and ``map_params`` have no default: ``register`` refuses a class that
    does not state them, so a new method cannot silently record no parameters.
    """

    #: the snake_case name used in config and in the method column.
    name: ClassVar[str]
    #: the name the papers print (report tables and figure legends).
    title: ClassVar[str]
    #: a column heading where a table has a column per method (Li et al. 2022 Table 2), else
    #: ``title``.
    short_title: ClassVar[str | None] = None
    #: the pathway labels the method can write to attributions/.
    pathways: ClassVar[tuple[Pathway, ...]] = PATHWAYS
    #: what a single-pathway method explains (named when it is given another pathway).
    explains: ClassVar[str] = "its own pathway"
    #: True when the method is linear in the explained output, so Traversal can be one call.
    linear_in_output: ClassVar[bool] = False
    #: True when the method evaluates perturbed copies of the input (forward passes only, no
    #: gradients); its cost grows with its samples, so the attribute stage runs it on
    #: ``attribution.perturbation_max_utterances`` utterances only.
    perturbs: ClassVar[bool] = False
    #: the AttributionConfig fields that shape the maps (recorded in the params column).
    map_params: ClassVar[tuple[str, ...]]

    def __init__(self, model: SpeakerClassifier, params: AttributionConfig) -> None:
        self.model = model
        self.params = params

    @classmethod
    def gradient_passes(cls, params: AttributionConfig) -> int | None:
        """Forward+backward passes of the model per utterance in one call, or None for a
        perturbation method (forwards only)."""
        return None if cls.perturbs else 1

    @classmethod
    def heading(cls) -> str:
        """The short column heading (``short_title``, else ``title``)."""
        return cls.short_title or cls.title

    def attribute(
        self,
        feats: Tensor,
        pathway: str,
        target: Tensor | None = None,
        baseline: Tensor | None = None,
    ) -> AttributionResult:
        """Explain ``feats`` (B, T, F) along ``pathway``; ``target`` (B,) class ids or None
        for the predicted class; ``baseline`` (B, T, F) or None for the configured one."""
        check_features(feats)
        self.check_pathway(pathway)
        return self.explain(feats.detach(), pathway, target, baseline)

    def check_pathway(self, pathway: str) -> None:
        """Raise unless ``pathway`` is the one this single-pathway method writes (the CAMs and
        LRP explain only the classifier; the Captum driver overrides this)."""
        expected = self.pathways[0]
        if pathway != expected:
            raise ValueError(
                f"{self.name} explains {self.explains}: pathway must be "
                f"{expected.value!r}, got {pathway!r}"
            )

    @abstractmethod
    def explain(
        self, x: Tensor, pathway: str, target: Tensor | None, baseline: Tensor | None
    ) -> AttributionResult:
        """``attribute`` on checked, detached features ``x``."""


def check_features(feats: Tensor) -> None:
    """Raise unless ``feats`` is a non-empty ``(B, T, F)`` batch."""
    if feats.dim() != 3 or min(feats.shape) < 1:
        raise ValueError(
            f"attribution: features must be a non-empty (B, T, F) batch, got {tuple(feats.shape)}"
        )


ATTRIBUTORS: dict[str, type[Attributor]] = {}


def _check_capabilities(cls: type[Attributor]) -> None:
    """Raise naming the class when a capability attribute is missing or names no config field."""
    for attr in ("name", "title", "map_params"):
        if not hasattr(cls, attr):
            raise TypeError(f"attribution method {cls.__name__} does not set {attr!r}")
    unknown = [p for p in cls.map_params if p not in _CONFIG_FIELDS]
    if unknown:
        raise TypeError(
            f"attribution method {cls.name!r}: map_params {unknown} are not AttributionConfig "
            "fields"
        )
    if not cls.pathways or not all(isinstance(p, Pathway) for p in cls.pathways):
        raise TypeError(f"attribution method {cls.name!r}: pathways must be Pathway members")


def register(cls: type[Attributor]) -> type[Attributor]:
    """Class decorator adding an Attributor to the registry under ``cls.name``."""
    _check_capabilities(cls)
    if cls.name in ATTRIBUTORS:
        raise ValueError(f"attribution method {cls.name!r} registered twice")
    ATTRIBUTORS[cls.name] = cls
    return cls


def get_attributor(name: str) -> type[Attributor]:
    if name not in ATTRIBUTORS:
        raise KeyError(
            f"unknown attribution method {name!r} (known: {', '.join(sorted(ATTRIBUTORS))})"
        )
    return ATTRIBUTORS[name]


def methods_with_pathway(pathway: Pathway) -> tuple[str, ...]:
    """The registered methods that write ``pathway`` (e.g. the CAMs for ``Pathway.CAM``)."""
    return tuple(sorted(n for n, c in ATTRIBUTORS.items() if pathway in c.pathways))
