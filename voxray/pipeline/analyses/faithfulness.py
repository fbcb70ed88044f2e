"""Faithfulness: deletion / insertion curves (Li et al. 2022) with Top-1 and with the
verification score, against random and time-aligned masking, after energy VAD; pixel
flipping (Sarvaš 2021).

Without class labels (a corpus of speakers the model was not trained on) the embedder is
explained (Traversal) and only the verification score is measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from voxray.attribution import get_attributor
from voxray.config import VoxrayConfig
from voxray.eval.faithfulness import (
    cosine_score,
    masking_curves,
    pixel_flipping,
    top1_score,
    trapezoid_auc,
)
from voxray.features import feature_energy
from voxray.pipeline.analyses.crops import (
    Crops,
    analysed_model,
    crop_frames,
    labelled_crops,
    speakers_of,
)
from voxray.pipeline.analyses.explain import (
    explain,
    explainable,
    explained_pathway,
    mean_row,
    write_metrics,
)
from voxray.pipeline.context import RunContext
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.verification_eval import write_curve
from voxray.schema import MetricRow

#: forward passes per model call in the curves: CPU convolutions are memory-bound on big batches
ROWS_PER_CALL = {"cpu": 8, "cuda": 256}


def speech_mask(feats: Tensor, cfg: VoxrayConfig) -> np.ndarray:
    """Energy VAD on the stored features (Li et al. 2022 removes non-speech before
    deletion/insertion).

    Features may be mean-normalised (CMN), which removes absolute levels, so the rule is
    relative: a frame is speech when its log-mel energy is within ``vad_energy_threshold``
    nats (5.5, about 24 dB) of the utterance's loud frames (95th percentile). An item where
    that marks nothing keeps all its frames.
    """
    out = []
    for f in feats:
        e = feature_energy(f).cpu().numpy()
        speech = e > np.percentile(e, 95) - cfg.features.vad_energy_threshold
        out.append(speech if speech.any() else np.ones_like(speech))
    return np.stack(out)


@dataclass
class _Curves:
    """The curves of one model on its crops, and the metric rows and AUCs they add up to."""

    ctx: RunContext
    name: str
    model: torch.nn.Module
    data: Crops
    metrics: list[MetricRow] = field(default_factory=list)
    aucs: dict[str, float] = field(default_factory=dict)
    #: each crop's speaker: the unit its figures' intervals resample.
    speakers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.speakers = speakers_of(self.ctx, self.data.utt_ids)
        with torch.inference_mode():
            self.refs = self.model.embedder(self.data.feats)
        self.speech = speech_mask(self.data.feats, self.ctx.cfg)
        self.rows = ROWS_PER_CALL[self.data.feats.device.type]

    def scorers(self, n: int) -> dict[str, Callable[[Tensor], Tensor]]:
        """Top-1 of the true class (when known) and the verification score, on the first n."""
        out = {"verification": cosine_score(self.model.embedder, self.refs[:n])}
        if self.data.labels is not None:
            out = {"top1": top1_score(self.model, self.data.labels[:n]), **out}
        return out

    def add(self, label: str, x: Tensor, maps: Tensor | None) -> None:
        """Deletion/insertion per scorer and Top-1 pixel flipping (Zhang et al. 2023's random
        reference too) in the order of ``maps``, or of the reference ``label`` when ``maps``
        is None."""
        order = "saliency" if maps is not None else label
        self._masking(label, x, maps, order)
        if self.data.labels is not None and order != "time_aligned":
            self._flipping(label, x, maps)

    def _masking(self, label: str, x: Tensor, maps: Tensor | None, order: str) -> None:
        cfg, fc, n = self.ctx.cfg, self.ctx.cfg.eval.faithfulness, x.shape[0]
        for scorer, fn in self.scorers(n).items():
            with torch.inference_mode():
                curves = masking_curves(
                    x,
                    maps,
                    fn,
                    fc.steps,
                    order=order,
                    speech=self.speech[:n],
                    seed=cfg.seed,
                    max_rows=self.rows,
                )
            for mode, curve in curves.items():
                write_curve(self.ctx, mode, self.name, label, scorer, curve.fractions, curve.scores)
                per_item = [trapezoid_auc(curve.fractions, r) for r in curve.per_item]
                row = MetricRow(self.name, label, "faithfulness", scorer, f"{mode}_auc", curve.auc)
                self.metrics.append(mean_row(self.ctx, row, per_item, self.speakers[:n]))
                if maps is not None:
                    self.aucs[f"{label}:{scorer}:{mode}"] = curve.auc

    def _flipping(self, label: str, x: Tensor, maps: Tensor | None) -> None:
        cfg, fc = self.ctx.cfg, self.ctx.cfg.eval.faithfulness
        flip_order = "relevance" if maps is not None else "random"
        score = self.scorers(x.shape[0])["top1"]
        with torch.inference_mode():
            flips = pixel_flipping(
                x, maps, score, fc.flip_fractions, flip_order, cfg.seed, self.rows
            )
        write_curve(
            self.ctx, "pixel_flipping", self.name, label, "top1", flips.fractions, flips.scores
        )
        n = flips.per_item.shape[0]
        self.metrics.extend(
            mean_row(
                self.ctx,
                MetricRow(self.name, label, "pixel_flipping", "top1", f"acc@{q:g}", s),
                flips.per_item[:, j],
                self.speakers[:n],
            )
            for j, (q, s) in enumerate(zip(flips.fractions, flips.scores, strict=True))
        )


def run_faithfulness(ctx: RunContext) -> dict[str, Any]:
    cfg, fc = ctx.cfg, ctx.cfg.eval.faithfulness
    loaded = analysed_model(ctx)  # without a head: Traversal maps of unlabelled crops
    name = base_model(ctx).name
    data, partly_skipped = labelled_crops(ctx, loaded, fc.max_utterances, crop_frames(cfg))
    labelled = data.labels is not None
    methods, left_out = explainable(
        fc.methods or cfg.attribution.methods, labelled, loaded.classifier
    )
    partly_skipped |= left_out
    curves = _Curves(ctx, name, loaded.classifier.eval(), data)
    for order in ("random", "time_aligned"):
        curves.add(order, data.feats, None)
    for method in methods:
        n = len(data.utt_ids)
        if get_attributor(method).perturbs:
            n = min(n, cfg.attribution.perturbation_max_utterances)
        x, y = data.feats[:n], None if data.labels is None else data.labels[:n]
        maps = explain(curves.model, x, method, y, cfg.attribution)
        curves.add(f"{method}/{explained_pathway(method, labelled)}", x, maps)
    write_metrics(ctx, f"faithfulness-{name}", curves.metrics)
    info: dict[str, Any] = {
        "utterances": len(data.utt_ids),
        "methods": methods,
        "aucs": curves.aucs,
    }
    return info | ({"partly_skipped": partly_skipped} if partly_skipped else {})
