"""``voxray embed``: full-utterance and overlapping-segment embeddings on an actor pool.

The features are read from features/ (or, with ``embed.from_audio``, computed from the audio
in the actor: ``voxray.pipeline.embed_from_audio``); both embed through
``voxray.pipeline.embed_compute``. The same job embeds masked data for the retrained models
(``condition`` names the data).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from voxray import schema
from voxray.config import EmbedConfig, ResourceConfig
from voxray.faults import maybe_fail
from voxray.io.sink import table_sink
from voxray.pipeline.context import EMBEDDINGS, MANIFEST, RunContext, StageResult
from voxray.pipeline.datasets import (
    FEATURE_COLUMNS,
    featured_utterances,
    features_rel,
    pool_to_sink,
    read_parquet_dataset,
)
from voxray.pipeline.embed_compute import EMBED_KEYS, STAGE, ComputeEmbeddings, embedded_by
from voxray.pipeline.embed_from_audio import embed_from_audio
from voxray.pipeline.embed_plan import base_embed_config, embeds_from_audio
from voxray.pipeline.front_ends import check_front_end, model_front_end
from voxray.pipeline.model_ref import ModelRef, base_model
from voxray.pipeline.ray_env import DATA_TASK_CPUS, actor_resources
from voxray.pipeline.time_split import PartClock


@dataclass(frozen=True)
class EmbedJob:
    """One (model, data) pair to embed: ``model`` on the rows of ``source_rel`` that match
    ``where``, written under ``condition``."""

    model: ModelRef
    condition: str
    source_rel: str
    where: dict[str, str] | None = None


class EmbedJobs:
    """map_batches callable over rows tagged with a ``job`` index: each job's rows go to that
    job's ``ComputeEmbeddings`` (its model loaded on first use, once per actor). Several
    (model, data) pairs so share one actor pool: the retrain stage embeds the masked and the
    clean test data with every retrained model of a condition in one pass instead of paying
    a pool's start-up (actors importing torch and loading a model) for each."""

    def __init__(self, jobs: list[tuple], num_gpus: float) -> None:
        self.jobs = jobs
        self.num_gpus = num_gpus
        self.actors: dict[int, ComputeEmbeddings] = {}
        self.clock = PartClock()  # every job's parts in one split (pipeline/time_split.py)

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        tags = np.asarray(batch.column("job").to_numpy())
        parts = []
        for j in sorted(set(tags.tolist())):
            if j not in self.actors:
                model, condition, cfg, frame_shift_ms, s3 = self.jobs[j]
                self.actors[j] = ComputeEmbeddings(
                    model, condition, cfg, frame_shift_ms, self.num_gpus, s3
                )
                self.actors[j].clock = self.clock
            with self.clock.part("arrow"):
                rows = batch.filter(pa.array(tags == j))
                mats = schema.matrices(rows)
            parts.append(self.actors[j].embed_rows(rows.column("utt_id").to_pylist(), mats))
        return pa.concat_tables(parts)


def tag_job(batch: pa.Table, job: int) -> pa.Table:
    """map_batches function: the feature columns of ``batch``, tagged with its job index."""
    cols = batch.select(FEATURE_COLUMNS)
    return cols.append_column("job", pa.array([job] * cols.num_rows, pa.int32()))


def _embed_live(
    ctx: RunContext,
    jobs: list[EmbedJob],
    todo: list[list[str]],
    live: list[int],
    resources: ResourceConfig,
    cfg: EmbedConfig,
) -> dict[str, float]:
    """The ``live`` jobs (those with utterances left) through one pool: their features tagged
    with the job's index among them, each actor holding every job's model. Returns the pool's
    time split."""
    out = ctx.out
    res = actor_resources(resources)
    parts = [
        read_parquet_dataset(
            out,
            jobs[k].source_rel,
            FEATURE_COLUMNS,
            todo[k],
            jobs[k].where,
            rows_per_block=resources.batch_size,
        ).map_batches(
            tag_job, fn_kwargs={"job": n}, batch_format="pyarrow", num_cpus=DATA_TASK_CPUS
        )
        for n, k in enumerate(live)
    ]
    # segment lengths in frames follow each model's own front-end
    specs = [
        (
            jobs[k].model,
            jobs[k].condition,
            cfg,
            model_front_end(ctx, jobs[k].model).build().frame_shift_ms,
            ctx.cfg.corpus.s3,
        )
        for k in live
    ]
    return pool_to_sink(
        parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0],
        EmbedJobs,
        (specs, res["num_gpus"]),
        resources,
        table_sink(out, EMBEDDINGS, EMBED_KEYS, STAGE, resources.rows_per_file),
        res,
        total=sum(len(todo[k]) for k in live),
    )


def embed_jobs(
    ctx: RunContext,
    jobs: list[EmbedJob],
    utt_ids: list[str],
    resources: ResourceConfig,
    cfg: EmbedConfig | None = None,
) -> list[StageResult]:
    """Embed ``utt_ids`` for every job in one actor pool (with ``cfg``, by default the run's
    ``embed``), skipping utterances a job has already committed; one result per job."""
    cfg = cfg or ctx.cfg.embed
    out = ctx.out
    wanted = set(utt_ids)
    before = embedded_by(out)
    todo = [sorted(wanted - before.get((j.model.name, j.condition), set())) for j in jobs]
    results = [
        StageResult(
            f"{STAGE}:{j.model.name}:{j.condition}",
            inputs=len(wanted),
            skipped=len(wanted) - len(t),
        )
        for j, t in zip(jobs, todo, strict=True)
    ]
    live = [k for k, t in enumerate(todo) if t]
    shares = _embed_live(ctx, jobs, todo, live, resources, cfg) if live else {}
    after = embedded_by(out)
    for j, result in zip(jobs, results, strict=True):
        result.skipped = 0
        result.outputs = len(after.get((j.model.name, j.condition), set()) & wanted)
        result.quarantined = 0
        if shares:
            result.info["time_split"] = shares
        result.check()
    return results


def run_embed(ctx: RunContext) -> StageResult:
    model = base_model(ctx)
    if embeds_from_audio(ctx):
        return embed_from_audio(ctx, model)
    front_end = model_front_end(ctx, model)
    check_front_end(ctx.out, front_end)
    kind = front_end.name
    utt_ids = ctx.out.read_table(MANIFEST, columns=["utt_id"]).column("utt_id").to_pylist()
    available = featured_utterances(ctx.out, kind)
    todo = [u for u in utt_ids if u in available]
    job = EmbedJob(model, "none", features_rel(kind))
    cfg = base_embed_config(ctx)
    (result,) = embed_jobs(ctx, [job], todo, cfg.resources, cfg)
    result.stage = STAGE
    result.info = {**result.info, "model": model.name, "front_end": kind}
    result.info["segments"] = cfg.segments
    return result
