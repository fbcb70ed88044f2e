"""Layer-wise Relevance Propagation (Sarvaš 2021): rules (``rules.py``), composites that place them
on a model's layers (``composite.py``), canonizers for model surgery (``canonizers.py``) and the
registered attributors ``lrp_0``, ``lrp_epsilon``, ``lrp_gamma`` (``attributor.py``).

Importing this package registers the attributors.
"""

from __future__ import annotations

from voxray.attribution.lrp.attributor import (
    Lrp0,
    LrpAttributor,
    LrpEpsilon,
    LrpGamma,
    Relevance,
    relevance,
)
from voxray.attribution.lrp.canonizers import (
    DEFAULT_CANONIZERS,
    Canonizer,
    MergeBatchNorm,
)
from voxray.attribution.lrp.composite import (
    Composite,
    LayerGroupComposite,
    UniformComposite,
    epsilon_composite,
    gamma_composite,
    layer_groups,
    uniform,
)
from voxray.attribution.lrp.rules import Detach, Epsilon, Gamma, Pass, Rule, Zero

__all__ = [
    "DEFAULT_CANONIZERS",
    "Canonizer",
    "Composite",
    "Detach",
    "Epsilon",
    "Gamma",
    "LayerGroupComposite",
    "Lrp0",
    "LrpAttributor",
    "LrpEpsilon",
    "LrpGamma",
    "MergeBatchNorm",
    "Pass",
    "Relevance",
    "Rule",
    "UniformComposite",
    "Zero",
    "epsilon_composite",
    "gamma_composite",
    "layer_groups",
    "relevance",
    "uniform",
]
