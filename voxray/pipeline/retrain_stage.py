"""``voxray retrain``: the reliability check of Zhang et al. 2023 — retrain on attribution-masked
data.

For every mask condition a model is trained with the base model's recipe (its epochs,
schedule and augmentation: ``retrain.epochs`` 0) on the masked training data, once per seed of
``retrain.seeds`` and per variant of ``retrain.variants`` (from scratch; ``continue``: from the
base model's weights), then embedded on the masked test data and on the clean test data (both
are reported). The frozen baseline model is also embedded on each masked test set: how much
speaker information the masked features keep without retraining.
"""

from __future__ import annotations

import pyarrow.compute as pc

from voxray.config.retrain_names import retrainings
from voxray.log import get_logger
from voxray.models.checkpoint import load_model
from voxray.pipeline.context import MANIFEST, MASKED, MODELS, RunContext, StageResult
from voxray.pipeline.datasets import features_rel
from voxray.pipeline.embed_stage import EmbedJob, embed_jobs
from voxray.pipeline.model_ref import base_model, trained_model
from voxray.pipeline.train_stage import train_on

log = get_logger(__name__)
STAGE = "retrain"


def run_retrain(ctx: RunContext) -> StageResult:
    cfg, out = ctx.cfg, ctx.out
    base = base_model(ctx)
    loaded = load_model(base.path, cfg.corpus.s3)
    front_end = loaded.front_end
    base_state = loaded.classifier.state_dict() if "continue" in cfg.retrain.variants else None
    kind = front_end.name
    m = out.read_table(MANIFEST, columns=["utt_id", "split"], filter=pc.field("split") == "test")
    test_ids = m.column("utt_id").to_pylist()
    result = StageResult(STAGE, inputs=len(cfg.mask.conditions))
    for cond in cfg.mask.conditions:
        source = f"{MASKED}/method={cond.method}"
        only = {"condition": cond.name}
        jobs = [EmbedJob(base, cond.parts.masked, source, only)]
        for name, variant, k in (
            retrainings(base.name, cfg.retrain, cond) if cfg.retrain.enabled else []
        ):
            if out.exists(f"{MODELS}/{name}/model.pt"):
                log.info("retrain: %s exists, not retrained", name)
            else:
                log.info("retrain: %s on %s", name, cond.name)
                init = base_state if variant == "continue" else None
                seed = cfg.train.seed + k
                train_on(ctx, name, source, only, front_end, cfg.retrain.epochs, seed, init, STAGE)
            model = trained_model(ctx, name)
            jobs.append(EmbedJob(model, cond.parts.masked, source, only))
            jobs.append(EmbedJob(model, "none", features_rel(kind)))
        # every model of the condition on its masked and clean test data: one actor pool
        embed_jobs(ctx, jobs, test_ids, cfg.embed.resources)
    result.outputs = len(cfg.mask.conditions)
    result.info = {
        "models": [
            name
            for c in cfg.mask.conditions
            for name, _, _ in retrainings(base.name, cfg.retrain, c)
        ]
        if cfg.retrain.enabled
        else [],
        "seeds": cfg.retrain.seeds,
        "variants": list(cfg.retrain.variants),
    }
    return result.check()
