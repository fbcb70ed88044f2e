"""``voxray embed``: full-utterance and overlapping-segment embeddings on an actor pool.

The features are read from features/ (or, with ``embed.from_audio``, computed from the audio
in the actor: ``voxray.pipeline.embed_from_audio``); both embed through
``voxray.pipeline.embed_compute``. The same job embeds masked data for the retrained models
(``condition`` names the data).
"""

from __future__ import annotations

from voxray.config import ResourceConfig
from voxray.pipeline.context import MANIFEST, RunContext, StageResult
from voxray.pipeline.datasets import features_rel, pool_to_sink, read_parquet_dataset
from voxray.pipeline.embed_compute import STAGE, ComputeEmbeddings, embedded, embeddings_sink
from voxray.pipeline.embed_from_audio import embed_from_audio
from voxray.pipeline.front_ends import check_front_end, model_front_end
from voxray.pipeline.model_ref import ModelRef, base_model
from voxray.pipeline.ray_env import actor_resources


def embed_source(
    ctx: RunContext,
    model: ModelRef,
    condition: str,
    source_rel: str,
    where: dict[str, str] | None,
    utt_ids: list[str],
    resources: ResourceConfig,
) -> StageResult:
    """Embed ``utt_ids`` read from ``source_rel`` (rows matching ``where``) with ``model``;
    skips utterances already done."""
    out = ctx.out
    done = embedded(out, model.name, condition)
    todo = sorted(set(utt_ids) - done)
    result = StageResult(
        f"{STAGE}:{model.name}:{condition}",
        inputs=len(set(utt_ids)),
        skipped=len(set(utt_ids)) - len(todo),
    )
    if todo:
        # segment lengths in frames follow the model's own front-end
        frame_shift_ms = model_front_end(ctx, model).build().frame_shift_ms
        ds = read_parquet_dataset(
            out,
            source_rel,
            ["utt_id", "num_frames", "num_bins", "values"],
            todo,
            where,
            rows_per_block=resources.batch_size,
        )
        res = actor_resources(resources)
        pool_to_sink(
            ds,
            ComputeEmbeddings,
            (model, condition, ctx.cfg.embed, frame_shift_ms, res["num_gpus"], ctx.cfg.corpus.s3),
            resources,
            embeddings_sink(out, resources.rows_per_file),
            res,
            total=len(todo),
        )
    final = embedded(out, model.name, condition)
    result.skipped = 0
    result.outputs = len(final & set(utt_ids))
    result.quarantined = 0
    return result.check()


def run_embed(ctx: RunContext) -> StageResult:
    model = base_model(ctx)
    if ctx.cfg.embed.from_audio:
        return embed_from_audio(ctx, model)
    front_end = model_front_end(ctx, model)
    check_front_end(ctx.out, front_end)
    kind = front_end.name
    utt_ids = ctx.out.read_table(MANIFEST, columns=["utt_id"]).column("utt_id").to_pylist()
    available = set(
        ctx.out.read_table(features_rel(kind), columns=["utt_id"]).column("utt_id").to_pylist()
    )
    todo = [u for u in utt_ids if u in available]
    result = embed_source(
        ctx, model, "none", features_rel(kind), None, todo, ctx.cfg.embed.resources
    )
    result.stage = STAGE
    result.info = {"model": model.name, "front_end": kind}
    return result
