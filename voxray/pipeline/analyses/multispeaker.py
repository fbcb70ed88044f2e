"""The multi-speaker test: Li et al. 2022's A-B, A-B-A, B-A-B, A-B-C localisation and
recognition (Table 2), with the CAM methods' maps of single layers and of cumulative
averages from the top."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from voxray import schema
from voxray.attribution import Pathway, get_attributor
from voxray.attribution.cam_layers import to_input_grid
from voxray.attribution.hooks import inference_state
from voxray.config import AttributionConfig
from voxray.eval import multispeaker
from voxray.eval.faithfulness import trapezoid_auc
from voxray.models.checkpoint import LoadedModel
from voxray.pipeline.analyses.crops import (
    analysed_model,
    crop_frames,
    labelled_rows,
    speaker_labels,
    unknown_speakers,
)
from voxray.pipeline.analyses.explain import mean_row, write_metrics
from voxray.pipeline.analyses.faithfulness import ROWS_PER_CALL
from voxray.pipeline.context import MANIFEST, RunContext
from voxray.pipeline.datasets import read_features
from voxray.pipeline.model_ref import base_model
from voxray.schema import MetricRow

#: utterances per speaker the mixtures are made of.
PER_SPEAKER = 4
#: the pooling and embedding layers (ECAPA/ResNet pool and fc, CAM++'s dense): no time axis.
EMBEDDING_LAYERS = ("pool", "fc", "dense")


def layer_specs(layers: list[str]) -> list[str]:
    """Single layers, then cumulative averages from the top (Li et al. 2022: S4, S4+S3, S4+S3+S2,
    ...)."""
    top_down = layers[::-1]
    return layers + ["+".join(top_down[: k + 1]) for k in range(1, len(top_down))]


def _speaker_utterances(
    ctx: RunContext, loaded: LoadedModel
) -> tuple[dict[str, list[np.ndarray]], dict[str, int]]:
    """The first train-split feature matrices of each speaker, and the model's class of each
    speaker it has one for; for an enrolment head, of the corpus's speakers in any split, away
    from the utterances their centres are made of (a corpus of real voices may have no train
    split)."""
    label_of = speaker_labels(loaded)
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "speaker_id"], filter=labelled_rows(loaded))
    per_speaker: dict[str, list[str]] = {}
    for u, s in sorted(
        zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True)
    ):
        per_speaker.setdefault(s, [])
        if len(per_speaker[s]) < PER_SPEAKER:
            per_speaker[s].append(u)
    t = read_features(ctx.out, loaded.front_end.name, [u for v in per_speaker.values() for u in v])
    mats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))
    utterances = {s: [mats[u] for u in v if u in mats] for s, v in per_speaker.items()}
    labels = {s: c for s, v in per_speaker.items() if v and (c := label_of(v[0])) is not None}
    return utterances, labels


def _saliency(
    methods: list[str], layers: list[str], params: AttributionConfig
) -> Callable[[torch.nn.Module, Tensor, Tensor], dict[str, dict[str, Tensor]]]:
    """method -> layer -> maps on the input grid, for ``multispeaker.run_multispeaker``."""

    def saliency_fn(
        model_: torch.nn.Module, feats: Tensor, targets: Tensor
    ) -> dict[str, dict[str, Tensor]]:
        out = {}
        frames, bins = feats.shape[1:]
        for mth in methods:
            with inference_state(model_):
                raw = get_attributor(mth)(model_, params).layer_maps(
                    feats.detach(), targets, layers
                )
            out[mth] = {k: to_input_grid(v, frames, bins).detach() for k, v in raw.items()}
        return out

    return saliency_fn


def cam_layers(loaded: LoadedModel, wanted: tuple[str, ...]) -> list[str]:
    """The layers the CAMs read: ``wanted`` (``eval.multispeaker.layers``, each checked to be a
    convolutional layer of the model), or every convolutional one but those without a time
    axis (``EMBEDDING_LAYERS``)."""
    conv = loaded.capabilities.conv_layers
    unknown = [n for n in wanted if n not in conv]
    if unknown:
        raise ValueError(
            f"eval.multispeaker.layers: {', '.join(unknown)} not convolutional layers of "
            f"{loaded.name!r} (those are: {', '.join(conv)})"
        )
    return list(wanted) or [n for n in conv if n not in EMBEDDING_LAYERS]


def _metric_rows(
    ctx: RunContext, name: str, cases: tuple[str, ...], rows: list[multispeaker.MultiSpeakerRow]
) -> list[MetricRow]:
    """Top-1 of the unmasked mixtures once per case, then each row's masked Top-1, precision
    and recall, each with its speaker-bootstrap interval over the target speakers."""
    metrics: list[MetricRow] = []
    for case in cases:
        first = next((r for r in rows if r.case == case), None)
        if first is not None:
            row = MetricRow(name, "original", "multispeaker", "", "top1", 0.0, case=case)
            metrics.append(_with_interval(ctx, row, first, "top1_original"))
    for r in rows:
        cond = f"{r.method}@{r.layer_spec}"
        metrics += [
            _with_interval(
                ctx, MetricRow(name, cond, "multispeaker", "", metric, 0.0, case=r.case), r, key
            )
            for metric, key in (
                ("top1", "top1_masked"),
                ("precision", "precision"),
                ("recall", "recall"),
            )
        ]
    return metrics


def _with_interval(
    ctx: RunContext, row: MetricRow, result: multispeaker.MultiSpeakerRow, key: str
) -> MetricRow:
    """``row`` valued with the mean of ``result``'s per-trial ``key`` and its interval."""
    return mean_row(ctx, row, result.per_trial[key], [str(s) for s in result.speakers])


def _curve_rows(
    ctx: RunContext, name: str, curves: list[multispeaker.MixtureCurves]
) -> list[MetricRow]:
    """Li et al. 2022 Fig. 4 as metrics rows: per method (and the random reference) and mode,
    the Top-1 at each masked fraction (``deletion@0.1``) and the AUC (``deletion_auc``), each
    the mean over the mixtures with its interval over the target speakers."""
    out: list[MetricRow] = []
    for c in curves:
        cond = c.method if c.method == multispeaker.RANDOM else f"{c.method}@{c.layer_spec}"
        speakers = [str(s) for s in c.speakers]
        for mode, curve in c.curves.items():
            per_item = {
                f"{mode}@{q:g}": curve.per_item[:, j] for j, q in enumerate(curve.fractions)
            }
            per_item[f"{mode}_auc"] = np.array(
                [trapezoid_auc(curve.fractions, r) for r in curve.per_item]
            )
            out += [
                mean_row(
                    ctx,
                    MetricRow(name, cond, "multispeaker", "top1", m, 0.0, case=c.case),
                    v,
                    speakers,
                )
                for m, v in per_item.items()
            ]
    return out


def run_multispeaker(ctx: RunContext) -> dict[str, Any]:
    cfg, mc = ctx.cfg, ctx.cfg.eval.multispeaker
    loaded = analysed_model(ctx)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    name = base_model(ctx).name
    utterances, labels = _speaker_utterances(ctx, loaded)
    if not labels:
        return {"skipped": unknown_speakers(loaded, "the train split")}
    layers = cam_layers(loaded, mc.layers)
    methods = [mth for mth in mc.methods if Pathway.CAM in get_attributor(mth).pathways]
    saliency = _saliency(methods, layers, cfg.attribution)
    rows = multispeaker.run_multispeaker(
        loaded.classifier.eval(),
        utterances,
        labels,
        mc.cases,
        saliency,
        np.random.default_rng(cfg.seed),
        mc.trials_per_case,
        crop_frames(cfg, mc.segment_s),
        layer_specs(layers),
    )
    metrics = _metric_rows(ctx, name, mc.cases, rows)
    if multispeaker.CURVE_CASE in mc.cases:
        metrics += _curve_rows(
            ctx, name, _mixture_curves(ctx, loaded, utterances, labels, saliency, layers)
        )
    write_metrics(ctx, f"multispeaker-{name}", metrics)
    return {"rows": len(rows), "layers": layers, "methods": methods}


def _mixture_curves(
    ctx: RunContext,
    loaded: LoadedModel,
    utterances: dict[str, list[np.ndarray]],
    labels: dict[str, int],
    saliency: multispeaker.SaliencyFn,
    layers: list[str],
) -> list[multispeaker.MixtureCurves]:
    """Li et al. 2022 §4.3 / Fig. 4: deletion and insertion on fresh B-A-B mixtures (as many as
    a case of the table), with each CAM's maps of all layers averaged (Table 2's best
    setting, S4+S3+S2+S1) and ``eval.faithfulness.steps`` steps."""
    cfg, mc = ctx.cfg, ctx.cfg.eval.multispeaker
    model = loaded.classifier.eval()
    return multispeaker.mixture_curves(
        model,
        utterances,
        labels,
        saliency,
        np.random.default_rng(cfg.seed + 1),
        mc.trials_per_case,
        crop_frames(cfg, mc.segment_s),
        layer_specs(layers)[-1],
        cfg.eval.faithfulness.steps,
        max_rows=ROWS_PER_CALL[multispeaker.model_device(model).type],
    )
