"""How the attribution analyses explain a model, and where they write what they measure.

For utterances of the classifier's speakers an analysis explains the classification output
(the model's decision); for others, which it has no class for, the embedder (Traversal),
so only the methods with a Traversal pathway apply (CAM and LRP explain a class).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import Tensor

from voxray import schema
from voxray.attribution import Pathway, attribute, get_attributor, method_pathways
from voxray.attribution.support import defined_methods
from voxray.eval.intervals import mean_interval
from voxray.log import get_logger
from voxray.models.base import SpeakerClassifier
from voxray.pipeline.context import METRICS, RunContext
from voxray.schema import MetricRow

log = get_logger(__name__)


def explained_pathway(method: str, labelled: bool = True) -> Pathway:
    """The pathway the analyses explain with: the classification output (the model's decision)
    for utterances of the classifier's speakers, else the embedder (Traversal)."""
    wanted = Pathway.CLASSIFICATION if labelled else Pathway.TRAVERSAL
    return method_pathways(method, (wanted,))[0]


def explainable(
    methods: Sequence[str], labelled: bool, model: SpeakerClassifier
) -> tuple[list[str], dict[str, str]]:
    """The methods that can explain these utterances with ``model``, and why the others cannot
    (each logged): a method not defined for the model (``defined_methods``), and without class
    labels one with no Traversal pathway (CAM and LRP explain a class)."""
    defined, left_out = defined_methods(methods, model)
    keep = defined
    if not labelled:
        keep = [m for m in defined if Pathway.TRAVERSAL in get_attributor(m).pathways]
        why = (
            "explains the classifier's target speaker, undefined for speakers it was not trained on"
        )
        left_out |= {m: why for m in defined if m not in keep}
    for method, why in left_out.items():
        log.info("%s left out: %s", method, why)
    return keep, left_out


def explain(
    model: torch.nn.Module, feats: Tensor, method: str, target: Tensor | None, params: Any
) -> Tensor:
    """Maps ``(B, T, F)`` of ``method``: for the ``target`` classes, or of the embedder (None)."""
    pathway = explained_pathway(method, labelled=target is not None)
    return attribute(model, feats, method, pathway, params=params, target=target).maps.detach()


def mean_row(
    ctx: RunContext, row: MetricRow, values: Sequence[float], speakers: Sequence[str]
) -> MetricRow:
    """``row`` with the mean of per-utterance ``values`` (hits, AUCs) as its value and that
    mean's speaker-bootstrap interval (``eval.intervals``)."""
    iv = ctx.cfg.eval.intervals
    ci = mean_interval(
        values, speakers, confidence=iv.confidence, n_resamples=iv.resamples, seed=iv.seed
    )
    return replace(row, value=ci.value, ci_low=ci.ci_low, ci_high=ci.ci_high, n=ci.n)


def write_metrics(ctx: RunContext, name: str, rows: list[MetricRow]) -> None:
    """One analysis's metrics/ part (a deterministic name: a rerun replaces it)."""
    ctx.out.write_table(f"{METRICS}/{name}.parquet", schema.metrics_table(rows))
