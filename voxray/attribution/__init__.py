"""Attribution: Captum methods on the Traversal / Classification pathways of Zhang et al. 2023, the
CAM family of Li et al. 2022 and LRP (Sarvaš 2021), behind one call.

``attribute(model, feats, method, pathway)`` explains a ``(B, T, F)`` batch with the method
registered under ``method`` (see ``voxray.attribution.base``); ``method_pathways`` says which
pathway labels a method writes to attributions/. Importing this package registers every
method.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from voxray.attribution import cam, captum_methods, lrp  # noqa: F401  (registers the methods)
from voxray.attribution.base import (
    ATTRIBUTORS,
    PATHWAYS,
    AttributionResult,
    Attributor,
    Pathway,
    get_attributor,
    methods_with_pathway,
    register,
)
from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier


def method_pathways(method: str, requested: Sequence[str]) -> tuple[Pathway, ...]:
    """The pathway labels ``method`` writes for the ``requested`` Captum pathways.

    Captum methods: the requested ``traversal`` / ``classification`` (in order, without
    repeats); methods with their own label (CAMs: ``('cam',)``, LRP: ``('lrp',)``) return it
    whatever was requested. Raises KeyError for an unknown method, ValueError for an unknown
    pathway.
    """
    cls = get_attributor(method)
    unknown = [p for p in requested if p not in PATHWAYS and p not in cls.pathways]
    if unknown:
        known = ", ".join(dict.fromkeys((*PATHWAYS, *cls.pathways)))
        raise ValueError(
            f"attribution.pathways: unknown {', '.join(map(repr, unknown))} for {method!r} "
            f"(known: {known})"
        )
    if tuple(cls.pathways) != PATHWAYS:
        return tuple(cls.pathways)
    return tuple(dict.fromkeys(Pathway(p) for p in requested))


def attribute(
    model: SpeakerClassifier,
    features: Tensor,
    method: str,
    pathway: str,
    baseline: Tensor | None = None,
    params: AttributionConfig = AttributionConfig(),
    target: Tensor | None = None,
) -> AttributionResult:
    """Explain ``features`` ``(B, T, F)`` with ``method`` along ``pathway`` (a label that
    ``method_pathways`` gives for it); ``target`` ``(B,)`` speaker ids or None for the
    predicted ones; ``baseline`` ``(B, T, F)`` or None for ``params.baseline``.

    Returns maps ``(B, T, F)``, the per-item completeness error (IG, DeepLift) and the explained
    class (classification / cam / lrp).
    """
    cls = get_attributor(method)
    if pathway not in cls.pathways:
        raise ValueError(
            f"attribution method {method!r} has no pathway {pathway!r} "
            f"(it writes: {', '.join(cls.pathways)})"
        )
    return cls(model, params).attribute(features, pathway, target=target, baseline=baseline)


__all__ = [
    "ATTRIBUTORS",
    "PATHWAYS",
    "AttributionResult",
    "Attributor",
    "Pathway",
    "attribute",
    "get_attributor",
    "method_pathways",
    "methods_with_pathway",
    "register",
]
