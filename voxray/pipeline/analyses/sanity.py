"""Sanity checks (Adebayo et al. 2018): cascading model-parameter randomisation, and label
randomisation (a model trained on shuffled labels); a method whose maps barely change is
flagged.

Without class labels the embedder is explained (Traversal) and label randomisation, which
needs classes, is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from voxray.eval.sanity import cascading_randomisation, flag_insensitive, label_randomisation
from voxray.models import build_classifier
from voxray.models.checkpoint import LoadedModel
from voxray.pipeline.analyses.crops import (
    analysed_model,
    crop_frames,
    crops,
    labelled_crops,
    speaker_labels,
)
from voxray.pipeline.analyses.explain import explain, explainable, write_metrics
from voxray.pipeline.context import RunContext
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.verification_eval import write_curve
from voxray.schema import MetricRow
from voxray.train.local import fit_classifier


def _shuffled_classifier(ctx: RunContext, loaded: LoadedModel) -> torch.nn.Module:
    """A fresh copy of the model trained on the train split's crops with shuffled labels."""
    cfg, sc = ctx.cfg, ctx.cfg.eval.sanity
    label_of = speaker_labels(loaded)
    train = crops(ctx, loaded.front_end.name, "train", 100000, crop_frames(cfg), label_of)
    assert train.labels is not None
    perm = torch.from_numpy(np.random.default_rng(cfg.seed).permutation(len(train.labels)))
    shuffled = build_classifier(
        loaded.cfg, loaded.input_dim, loaded.classifier.num_classes, **loaded.options
    )
    fit_classifier(
        shuffled,
        train.feats,
        train.labels[perm],
        sc.label_epochs,
        cfg.train.batch_size,
        cfg.train.lr,
        cfg.seed,
    )
    return shuffled


def run_sanity(ctx: RunContext) -> dict[str, Any]:
    cfg, sc = ctx.cfg, ctx.cfg.eval.sanity
    loaded = analysed_model(ctx)  # without a head: Traversal maps of unlabelled crops
    name = base_model(ctx).name
    model = loaded.classifier.eval()
    data, no_classes = labelled_crops(ctx, loaded, sc.max_utterances, crop_frames(cfg))
    labelled = data.labels is not None
    methods, partly_skipped = explainable(sc.methods, labelled, model)
    if sc.label_randomisation and not labelled:
        partly_skipped["label_randomisation"] = no_classes["top1"]
    shuffled = _shuffled_classifier(ctx, loaded) if sc.label_randomisation and labelled else None
    curves: dict[str, Any] = {}
    rows: list[MetricRow] = []
    for method in methods:

        def fn(mdl: torch.nn.Module, x: Tensor, method: str = method) -> Tensor:
            return explain(mdl, x, method, data.labels, cfg.attribution)

        cascade = cascading_randomisation(model, data.feats, fn, seed=cfg.seed)
        curves[method] = cascade
        steps = np.arange(len(cascade.blocks), dtype=np.float64)
        for metric, values in (("spearman", cascade.spearman_abs), ("ssim", cascade.ssim)):
            write_curve(ctx, "sanity_cascading", name, method, metric, steps, np.asarray(values))
        rows += [
            MetricRow(name, method, "sanity", "", "spearman_final", cascade.final.spearman_abs),
            MetricRow(name, method, "sanity", "", "ssim_final", cascade.final.ssim),
        ]
        if shuffled is not None:
            sim = label_randomisation(model, shuffled, data.feats, fn)
            rows.append(MetricRow(name, method, "sanity", "", "label_spearman", sim.spearman_abs))
    flags = flag_insensitive(curves, sc.flag_threshold)
    rows += [MetricRow(name, m, "sanity", "", "flagged", float(f)) for m, f in flags.items()]
    write_metrics(ctx, f"sanity-{name}", rows)
    info: dict[str, Any] = {
        "flagged": [m for m, f in flags.items() if f],
        "blocks": list(next(iter(curves.values())).blocks) if curves else [],
    }
    return info | ({"partly_skipped": partly_skipped} if partly_skipped else {})
