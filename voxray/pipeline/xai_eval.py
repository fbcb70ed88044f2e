"""The evaluate stage's Quantus step: every configured method on each of its pathways, measured
by the metric families of ``voxray.eval.xai_metrics`` on a sample of test utterances.

The sample is fixed-length centre crops (``train.segment_s``) of test utterances taken
round-robin over speakers, so one batch holds them all; a second sample of as many crops is
the trial pathway's reference bank (each crop explained against its most similar reference).
Each (method, pathway) is one job on an actor pool whose actors load the model once; the rows
go to ``metrics/xai-<model>.parquet``, one per utterance, map kind (``condition``: real, random,
inverted; see ``voxray.eval.xai_meta``) and metric, with the metric's family, ``method/pathway``,
the utterance and its speaker.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import ray
import torch
from ray.data import ActorPoolStrategy

from voxray import schema
from voxray.attribution import get_attributor, method_pathways
from voxray.attribution.base import PATHWAYS, Pathway
from voxray.attribution.support import defined_methods
from voxray.attribution.trial import TRIAL_METHODS
from voxray.config import AttributionConfig, VoxrayConfig, XaiMetricsConfig
from voxray.eval.xai_metrics import ExplainedModel, measure, voxray_explain
from voxray.log import get_logger
from voxray.models.checkpoint import load_model
from voxray.pipeline.analyses.crops import crops
from voxray.pipeline.context import METRICS, RunContext
from voxray.pipeline.model_ref import ModelRef, base_model
from voxray.pipeline.ray_env import actor_resources, torch_device
from voxray.train.data import segment_frames

log = get_logger(__name__)
#: the list column of XAI rows: the sample they were measured on.
SAMPLE = "xai_sample"


def xai_jobs(cfg: VoxrayConfig, has_head: bool) -> list[tuple[str, str]]:
    """(method, pathway) pairs to measure: each method's pathways among ``eval.xai.pathways``
    (a CAM or LRP method's own when ``classification`` is asked for), plus ``trial`` for the
    trial methods; without a classification head, only Traversal and trial."""
    xc = cfg.eval.xai
    captum = tuple(p for p in xc.pathways if p in PATHWAYS)
    jobs: list[tuple[str, str]] = []
    for method in xc.methods or cfg.attribution.methods:
        cls = get_attributor(method)
        if tuple(cls.pathways) == PATHWAYS:
            jobs += [(method, p) for p in method_pathways(method, captum)]
        elif Pathway.CLASSIFICATION in xc.pathways:
            jobs += [(method, p) for p in cls.pathways]
        if Pathway.TRIAL in xc.pathways and method in TRIAL_METHODS:
            jobs.append((method, Pathway.TRIAL.value))
    if not has_head:
        jobs = [(m, p) for m, p in jobs if p in (Pathway.TRAVERSAL, Pathway.TRIAL)]
    return list(dict.fromkeys((m, str(p)) for m, p in jobs))


class MeasureXai:
    """map_batches callable: the metrics of each (method, pathway) row of the batch."""

    def __init__(
        self,
        model: ModelRef,
        feats: np.ndarray,
        utts: list[tuple[str, str]],
        bank_feats: np.ndarray,
        cfg: XaiMetricsConfig,
        params: AttributionConfig,
        seed: int,
        num_gpus: float,
        s3: object,
    ) -> None:
        self.device = torch_device(num_gpus)
        self.model = load_model(model.path, s3).classifier.to(self.device).eval()
        self.name = model.name
        # copies: arrays from Ray's object store are read-only, which torch warns about
        self.feats = torch.tensor(feats, device=self.device)
        self.utts = utts  # (utt_id, speaker_id) of each crop
        with torch.no_grad():
            self.bank = self.model.embedder(torch.tensor(bank_feats, device=self.device))
        self.cfg, self.params, self.seed = cfg, params, seed

    def __call__(self, batch: dict[str, np.ndarray]) -> pd.DataFrame:
        rows = []
        for method, pathway in zip(batch["method"], batch["pathway"], strict=True):
            bank = self.bank if pathway == Pathway.TRIAL else None
            wrapper = ExplainedModel(self.model, pathway, bank)
            kwargs = {"method": method, "params": self.params}
            results = measure(
                wrapper,
                self.feats,
                self.cfg,
                voxray_explain,
                kwargs,
                self.seed,
                baseline=self.params.baseline,
            )
            rows += [
                {
                    "model": self.name,
                    "condition": r.kind,
                    "list": SAMPLE,
                    "scorer": "",
                    "metric": r.metric,
                    "value": value,
                    "family": r.family,
                    "method": f"{method}/{pathway}",
                    "utt_id": utt,
                    "speaker_id": spk,
                }
                for r in results
                for value, (utt, spk) in zip(r.values, self.utts, strict=True)
            ]
        return pd.DataFrame(rows)


def run_xai(ctx: RunContext) -> dict[str, Any]:
    cfg, xc = ctx.cfg, ctx.cfg.eval.xai
    ref = base_model(ctx)
    loaded = load_model(ref.path, cfg.corpus.s3)
    jobs = xai_jobs(cfg, loaded.has_head)
    _, left_out = defined_methods([m for m, _ in jobs], loaded.classifier)
    for method, why in left_out.items():
        log.info("evaluate: xai metrics: %s left out: %s", method, why)
    jobs = [(m, p) for m, p in jobs if m not in left_out]
    if not jobs:
        why = "no method of eval.xai.methods defined for the model has an eval.xai.pathways one"
        return {"skipped": why} | ({"partly_skipped": left_out} if left_out else {})
    frames = segment_frames(cfg.train.segment_s, cfg.features.frame_shift_ms)
    sample = crops(ctx, loaded.front_end.name, "test", 2 * xc.max_utterances, frames, lambda _: 0)
    n = min(xc.max_utterances, len(sample.utt_ids) // 2)
    if n < 2:
        return {"skipped": f"{len(sample.utt_ids)} test utterances: too few for a sample of two"}
    feats, bank = sample.feats[:n].numpy(), sample.feats[n : 2 * n].numpy()
    m = ctx.out.read_table(schema.MANIFEST_PATH, columns=["utt_id", "speaker_id"])
    speaker = dict(
        zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True)
    )
    utts = [(u, str(speaker[u])) for u in sample.utt_ids[:n]]
    rc = xc.resources
    res = actor_resources(rc)
    log.info("evaluate: xai metrics of %d method/pathway pairs on %d crops", len(jobs), n)
    ds = ray.data.from_items([{"method": m, "pathway": p} for m, p in jobs])
    table = ds.map_batches(
        MeasureXai,
        fn_constructor_args=(
            ref,
            feats,
            utts,
            bank,
            xc,
            cfg.attribution,
            cfg.seed,
            res["num_gpus"],
            cfg.corpus.s3,
        ),
        batch_format="numpy",
        batch_size=1,
        compute=ActorPoolStrategy(size=min(rc.concurrency, len(jobs))),
        **res,
    ).to_pandas()
    ctx.out.write_table(
        f"{METRICS}/xai-{ref.name.replace('/', '_')}.parquet",
        schema.table(
            schema.METRICS,
            {
                **{c: table[c].astype(str).tolist() for c in table.columns if c != "value"},
                "value": table["value"].astype("float64").tolist(),  # NaN: not defined
            },
        ),
    )
    return {
        "utterances": sample.utt_ids[:n],
        "jobs": [f"{m}/{p}" for m, p in jobs],
        "rows": len(table),
    } | ({"partly_skipped": left_out} if left_out else {})
