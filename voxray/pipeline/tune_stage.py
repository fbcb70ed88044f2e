"""``voxray tune``: the Ray Tune sweep (see voxray.train.tune) with ASHA, resumable, and the
003 sweeps the profile enables (voxray.pipeline.paper_sweeps).

The subset of utterances is chosen from the trial lists (both sides of each trial until
the budget is spent) so the frozen-model EER is defined. A sweep interrupted mid-way is
resumed with ``Tuner.restore`` (finished trials are not run again). Results go to
tune/results.parquet and the best configuration to tune/best.yaml.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np
import pyarrow.compute as pc
import yaml

from voxray import schema
from voxray.log import get_logger
from voxray.models.checkpoint import load_model
from voxray.pipeline.context import MANIFEST, TUNE, RunContext, StageResult
from voxray.pipeline.datasets import read_features
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.paper_sweeps import run_paper_sweeps
from voxray.pipeline.ray_env import cluster_gpus
from voxray.pipeline.sweep_inputs import model_factory, model_state, pick_trials
from voxray.train.data import segment_frames
from voxray.train.trainer import ray_storage
from voxray.train.tune import (
    OBJECTIVES,
    TuneData,
    best_overlay,
    check_sweep,
    result_rows,
    run_trial,
    search_space,
)

log = get_logger(__name__)
STAGE = "tune"


def build_data(ctx: RunContext) -> TuneData:
    cfg = ctx.cfg
    model = base_model(ctx)
    loaded = load_model(model.path, cfg.corpus.s3)
    kind = loaded.front_end.name
    trials, test_utts = pick_trials(ctx, cfg.tune.max_utterances)
    test = read_features(ctx.out, kind, test_utts)
    train_feats: dict[str, np.ndarray] = {}
    labels: dict[str, int] = {}
    if cfg.tune.objective == "retrain_eer":
        m = ctx.out.read_table(
            MANIFEST,
            columns=["utt_id", "speaker_id"],
            filter=pc.field("split") == "train",
        )
        ids = sorted(m.column("utt_id").to_pylist())[: cfg.tune.max_utterances * 4]
        speakers = {s: i for i, s in enumerate(loaded.speakers)}
        t = read_features(ctx.out, kind, ids)
        train_feats = dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))
        labels = {u: speakers[u.split("/")[0]] for u in train_feats}
    return TuneData(
        model_state=model_state(loaded),
        model_factory=model_factory(loaded),
        test_feats=dict(zip(test.column("utt_id").to_pylist(), schema.matrices(test), strict=True)),
        trials=trials,
        train_feats=train_feats,
        train_labels=labels,
        segment_frames=segment_frames(cfg.train.segment_s, cfg.features.frame_shift_ms),
    )


def _tuner(ctx: RunContext, trainable: Any, metric: str, mode: str) -> Any:
    """The sweep's Tuner: the interrupted one restored from --out when there is one, else a
    new one (ASHA on epochs, seeded random search)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    cfg = ctx.cfg
    storage, fs = ray_storage(ctx.out.uri(f"{TUNE}/ray"), ctx.out)
    # Tune's newer console output prints its experiment header and result paths even at
    # verbose=0 (about ten lines); the classic one is silent at 0 (unless the user chose)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    path = f"{storage}/sweep"
    if tune.Tuner.can_restore(path, **fs):
        log.info("tune: resuming the interrupted sweep at %s", path)
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True, **fs)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=search_space(cfg.tune),
            tune_config=tune.TuneConfig(
                metric=metric,
                mode=mode,
                num_samples=cfg.tune.num_samples,
                max_concurrent_trials=cfg.tune.max_concurrent,
                scheduler=ASHAScheduler(
                    time_attr="epoch",
                    max_t=max(cfg.tune.max_epochs, 1),
                    grace_period=min(cfg.tune.grace_period, max(cfg.tune.max_epochs, 1)),
                ),
                search_alg=BasicVariantGenerator(random_state=cfg.tune.seed),
            ),
            # verbose=0: Tune's status tables are printed, not logged (the stage logs its result)
            run_config=tune.RunConfig(
                name="sweep",
                storage_path=storage,
                verbose=0,
                failure_config=tune.FailureConfig(max_failures=cfg.tune.max_failures),
                **fs,
            ),
        )
    return tuner


def run_tune(ctx: RunContext) -> StageResult:
    from ray import tune

    cfg = ctx.cfg
    paper = run_paper_sweeps(ctx)
    if not cfg.tune.enabled:
        return StageResult(STAGE, info={"enabled": False, **paper})
    metric, mode = OBJECTIVES[cfg.tune.objective]
    check_sweep(cfg.tune)
    data = build_data(ctx)
    if len({t[0] for t in data.trials}) < 2:
        raise ValueError(
            f"tune: the first trial list has no usable target/non-target pair within "
            f"tune.max_utterances={cfg.tune.max_utterances}; raise it"
        )
    trainable = tune.with_parameters(
        functools.partial(
            run_trial,
            tune_cfg=cfg.tune,
            attr_cfg=cfg.attribution,
            mask_cfg=cfg.mask,
            train_cfg=cfg.train,
        ),
        data=data,
    )
    trainable = tune.with_resources(trainable, {"cpu": 1, "gpu": 1 if cluster_gpus() > 0 else 0})
    tuner = _tuner(ctx, trainable, metric, mode)
    results = tuner.fit()
    rows = result_rows(results, metric)
    ctx.out.write_table(
        f"{TUNE}/results.parquet",
        schema.table(schema.TUNE, {k: [r[k] for r in rows] for k in schema.TUNE.names}),
    )
    best = results.get_best_result(metric=metric, mode=mode, filter_nan_and_inf=True)
    overlay = best_overlay(best.config, cfg.attribution)
    ctx.out.write_text(
        f"{TUNE}/best.yaml",
        "# best configuration of the sweep; use: voxray retrain --config best.yaml\n"
        + yaml.safe_dump(overlay, sort_keys=False),
    )
    ok = sum(1 for r in results if not r.error)
    return StageResult(
        STAGE,
        inputs=len(results),
        outputs=ok,
        quarantined=len(results) - ok,
        info={
            **paper,
            "objective": cfg.tune.objective,
            "best": best.config,
            metric: best.metrics.get(metric),
        },
    ).check()
