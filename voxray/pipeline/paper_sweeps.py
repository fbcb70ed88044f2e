"""The tune stage's 003 sweeps (Lehmann & Stadelmann 2020): the LSTM width (section 4.2,
Fig. 2; ``tune.lstm_width``) and the evaluation segment length (section 4.3, Fig. 3;
``tune.segment_length``), each a Ray Tune grid over its values, resumable like the masking
sweep.

Both score the same test trials (the first trial list, both sides of each trial within
``tune.sweep_utterances`` utterances). Each writes its trials' reports to tune/<sweep>.parquet
and one metrics/ row per value and scorer (EER with its speaker-bootstrap interval) to
metrics/tune-<sweep>.parquet: list ``lstm_width`` / ``segment_length``, condition
``width=<w>`` / ``segment_s=<s>`` (``voxray.train.sweep_eval``).
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pyarrow.compute as pc

from voxray import schema
from voxray.log import get_logger
from voxray.models.checkpoint import load_model
from voxray.pipeline.context import MANIFEST, METRICS, PAPER_SWEEPS, TUNE, RunContext
from voxray.pipeline.datasets import read_features
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.sweep_inputs import model_factory, model_state, pick_trials
from voxray.train.data import segment_frames, validation_split
from voxray.train.segment_sweep import SegmentData, segment_trial
from voxray.train.sweep_eval import SweepTest, metric_rows
from voxray.train.trainer import ray_storage
from voxray.train.tune import result_rows
from voxray.train.width_sweep import WidthData, width_trial

log = get_logger(__name__)


def _features(ctx: RunContext, kind: str, ids: list[str]) -> dict[str, Any]:
    t = read_features(ctx.out, kind, ids)
    return dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))


def _test(ctx: RunContext, kind: str) -> SweepTest:
    trials, utts = pick_trials(ctx, ctx.cfg.tune.sweep_utterances)
    if len({t[0] for t in trials}) < 2:
        raise ValueError(
            "tune: the first trial list has no target/non-target pair within "
            f"tune.sweep_utterances={ctx.cfg.tune.sweep_utterances}; raise it"
        )
    return SweepTest(_features(ctx, kind, utts), trials)


def width_data(ctx: RunContext) -> WidthData:
    """The training speakers' features (capped), their labels and validation split."""
    cfg = ctx.cfg
    loaded = load_model(base_model(ctx).path, cfg.corpus.s3)
    kind = loaded.front_end.name
    m = ctx.out.read_table(MANIFEST, columns=["utt_id"], filter=pc.field("split") == "train")
    ids = sorted(m.column("utt_id").to_pylist())
    cap = cfg.tune.lstm_width.max_train_utterances
    ids = ids[:: max(1, len(ids) // cap)][:cap] if cap else ids
    feats = _features(ctx, kind, ids)
    speakers = {s: i for i, s in enumerate(sorted({u.split("/")[0] for u in feats}))}
    labels = {u: speakers[u.split("/")[0]] for u in feats}
    return WidthData(
        model_cfg=loaded.cfg,
        input_dim=loaded.input_dim,
        train_feats=feats,
        train_labels=labels,
        val_ids=validation_split(labels, cfg.tune.lstm_width.val_fraction, cfg.seed),
        segment_frames=segment_frames(cfg.train.segment_s, cfg.features.frame_shift_ms),
        test=_test(ctx, kind),
    )


def segment_data(ctx: RunContext) -> SegmentData:
    loaded = load_model(base_model(ctx).path, ctx.cfg.corpus.s3)
    return SegmentData(
        model_state=model_state(loaded),
        model_factory=model_factory(loaded),
        test=_test(ctx, loaded.front_end.name),
        frame_shift_ms=ctx.cfg.features.frame_shift_ms,
    )


def _grid(ctx: RunContext, name: str, trainable: Any, param: str, values: list[Any]) -> Any:
    """Run (or resume) one grid sweep over ``param``; its ResultGrid."""
    from ray import tune

    storage, fs = ray_storage(ctx.out.uri(f"{TUNE}/ray"), ctx.out)
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    path = f"{storage}/{name}"
    if tune.Tuner.can_restore(path, **fs):
        log.info("tune: resuming the interrupted %s sweep at %s", name, path)
        return tune.Tuner.restore(path, trainable=trainable, resume_errored=True, **fs).fit()
    return tune.Tuner(
        trainable,
        param_space={param: tune.grid_search(values)},
        tune_config=tune.TuneConfig(max_concurrent_trials=ctx.cfg.tune.max_concurrent),
        run_config=tune.RunConfig(name=name, storage_path=storage, verbose=0, **fs),
    ).fit()


def _write(ctx: RunContext, name: str, param: str, results: Any) -> dict[str, Any]:
    """tune/<name>.parquet and metrics/tune-<name>.parquet of a finished sweep."""
    rows = result_rows(results, "eer")
    ctx.out.write_table(
        f"{TUNE}/{name}.parquet",
        schema.table(schema.TUNE, {k: [r[k] for r in rows] for k in schema.TUNE.names}),
    )
    done = [(r.config[param], r.metrics) for r in results if not r.error and r.metrics]
    metrics = metric_rows(base_model(ctx).name, name, param, done)
    ctx.out.write_table(f"{METRICS}/tune-{name}.parquet", schema.metrics_table(metrics))
    return {"trials": len(results), "done": len(done)}


def run_paper_sweeps(ctx: RunContext) -> dict[str, Any]:
    """Run the enabled 003 sweeps; their info by sweep name (empty when none is enabled)."""
    from ray import tune

    cfg = ctx.cfg
    width, segment = PAPER_SWEEPS
    info: dict[str, Any] = {}
    iv = cfg.eval.intervals
    if cfg.tune.lstm_width.enabled:
        sweep = cfg.tune.lstm_width
        fn = functools.partial(width_trial, sweep=sweep, train=cfg.train, intervals=iv)
        trainable = tune.with_parameters(fn, data=width_data(ctx))
        results = _grid(ctx, width, trainable, "width", list(sweep.widths))
        info[width] = _write(ctx, width, "width", results)
    if cfg.tune.segment_length.enabled:
        fn = functools.partial(segment_trial, sweep=cfg.tune.segment_length, intervals=iv)
        trainable = tune.with_parameters(fn, data=segment_data(ctx))
        lengths = list(cfg.tune.segment_length.lengths_s)
        results = _grid(ctx, segment, trainable, "segment_s", lengths)
        info[segment] = _write(ctx, segment, "segment_s", results)
    return info
