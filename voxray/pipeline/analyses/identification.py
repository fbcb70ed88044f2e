"""Identification: Top-1 of the classification model on its speakers' held-out utterances
(VoxCeleb1's identification split 3 when the manifest has it)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc
import torch

from voxray import schema
from voxray.config import VoxrayConfig
from voxray.pipeline.analyses.crops import analysed_model, speaker_labels, unknown_speakers
from voxray.pipeline.analyses.explain import mean_row, write_metrics
from voxray.pipeline.context import MANIFEST, RunContext
from voxray.pipeline.datasets import read_features
from voxray.pipeline.model_ref import base_model
from voxray.schema import MetricRow

#: held-out utterances scored at most.
MAX_UTTERANCES = 1000


def _list_name(cfg: VoxrayConfig, has_split: bool) -> str:
    """The list the Top-1 is reported under: utterances the model trained on are marked as
    such, since Top-1 on them is not a held-out figure."""
    if has_split and cfg.train.exclude_iden_test:
        return "iden_split3"
    return "iden_split3_seen" if has_split else "train_seen"


def run_identification(ctx: RunContext) -> dict[str, Any]:
    loaded = analysed_model(ctx, enrol=False)
    if not loaded.has_head:
        return {"skipped": "the model has no classification head"}
    m = ctx.out.read_table(
        MANIFEST, columns=["utt_id", "iden_split"], filter=pc.field("split") == "train"
    )
    iden_test = [
        u
        for u, s in zip(
            m.column("utt_id").to_pylist(), m.column("iden_split").to_pylist(), strict=True
        )
        if s == 3
    ]
    label_of = speaker_labels(loaded)
    ids = [u for u in (iden_test or m.column("utt_id").to_pylist()) if label_of(u) is not None][
        :MAX_UTTERANCES
    ]
    if not ids:
        return {"skipped": unknown_speakers(loaded, "the train split")}
    t = read_features(ctx.out, loaded.front_end.name, ids)
    model = loaded.classifier.eval()
    hits, speakers = [], []
    with torch.inference_mode():
        for u, x in zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True):
            hits.append(int(model(torch.from_numpy(x)[None]).argmax(1).item() == label_of(u)))
            speakers.append(str(label_of(u)))
    lst = _list_name(ctx.cfg, bool(iden_test))
    name = base_model(ctx).name
    top1 = MetricRow(name, "none", lst, "", "top1", float("nan"))
    write_metrics(
        ctx,
        f"identification-{loaded.name}",
        [
            mean_row(ctx, top1, hits, speakers) if hits else top1,
            MetricRow(name, "none", lst, "", "utterances", float(len(hits)), n=len(hits)),
        ],
    )
    return {"top1": float(np.mean(hits)) if hits else None, "utterances": len(hits), "list": lst}
