"""One contract for every attribution method (Captum's lesson): small classes, one call.

``Attributor(model, params).attribute(feats, pathway, target, baseline)`` returns maps of
the input's shape ``(B, T, F)`` whatever the method (IG, LRP or a CAM). Methods register
under the snake_case names used in config (``integrated_gradients``, ``layer_cam``,
``lrp_epsilon`` ...); ``voxray.attribution.attribute`` dispatches by name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, ClassVar

from torch import Tensor

from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier

#: Traversal: mean attribution over the N embedding dimensions (000, eq. 5).
#: Classification: the margin head appended, the predicted (or given) speaker's logit.
PATHWAYS = ("traversal", "classification")


@dataclass(frozen=True)
class AttributionResult:
    """Maps ``(B, T, F)`` and, where the method has one, the per-item completeness error."""

    maps: Tensor
    #: |sum(A) - (F(x) - F(x'))| / |F(x) - F(x')| per item (IG-family), else None.
    completeness_error: Tensor | None = None
    #: the class explained per item (classification / cam / lrp), else None.
    target: Tensor | None = None


class Attributor(ABC):
    """Base class: subclasses set ``name``, ``pathways`` and implement ``attribute``."""

    name: ClassVar[str]
    #: the pathway label written to attributions/ for each requested pathway.
    pathways: ClassVar[tuple[str, ...]] = PATHWAYS
    #: True when the method is linear in the explained output, so Traversal can be one call.
    linear_in_output: ClassVar[bool] = False

    def __init__(self, model: SpeakerClassifier, params: AttributionConfig) -> None:
        self.model = model
        self.params = params

    @abstractmethod
    def attribute(
        self,
        feats: Tensor,
        pathway: str,
        target: Tensor | None = None,
        baseline: Tensor | None = None,
    ) -> AttributionResult:
        """Explain ``feats`` (B, T, F) along ``pathway``; ``target`` (B,) class ids or None
        for the predicted class; ``baseline`` (B, T, F) or None for the configured one."""


ATTRIBUTORS: dict[str, type[Attributor]] = {}


def register(cls: type[Attributor]) -> type[Attributor]:
    """Class decorator adding an Attributor to the registry under ``cls.name``."""
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


ForwardFn = Callable[[Tensor], Tensor]
