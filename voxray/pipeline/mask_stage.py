"""``voxray mask``: masked and augmented features from features/ and attributions/.

For each attribution (method, pathway) that a mask condition uses, Ray Data joins the
feature rows with the attribution rows on utt_id and an actor applies every condition of
that attribution (attribution x input, a threshold, Moore-neighbourhood replacement) in
one pass, writing masked/ partitioned by method.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from ray.data import ActorPoolStrategy

from voxray import schema
from voxray.attribution import method_pathways
from voxray.config import MaskCondition, MaskConfig
from voxray.io.sink import ParquetSink, committed_keys
from voxray.log import get_logger
from voxray.mask import apply_condition
from voxray.models.checkpoint import load_model
from voxray.pipeline.context import ATTRIBUTIONS, MASKED, RunContext, StageResult
from voxray.pipeline.datasets import features_rel, read_parquet_dataset
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.ray_env import actor_resources, actor_retries
from voxray.testing.faults import maybe_fail

log = get_logger(__name__)
STAGE = "mask"
MASK_KEYS = ("utt_id", "condition")


def attribution_pathway(cond: MaskCondition) -> str:
    """The pathway column value the condition's attribution was written under."""
    return method_pathways(cond.method, (cond.pathway,))[0]


class ApplyMasks:
    """map_batches callable over joined rows (features ``values``, attribution ``attr``)."""

    def __init__(self, conditions: list[MaskCondition], cfg: MaskConfig, kind: str) -> None:
        self.conditions = conditions
        self.cfg = cfg
        self.kind = kind

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        feats = schema.matrices(batch, "values")
        attrs = [a.reshape(f.shape) for a, f in zip(schema.column_arrays(batch, "attr"), feats)]
        utt_ids = batch.column("utt_id").to_pylist()
        cols: dict[str, list] = {
            k: []
            for k in (
                "utt_id",
                "method",
                "pathway",
                "condition",
                "threshold",
                "num_frames",
                "num_bins",
            )
        }
        values = []
        for cond in self.conditions:
            for u, x, a in zip(utt_ids, feats, attrs):
                m = apply_condition(x, a, cond, self.cfg.normalise)
                cols["utt_id"].append(u)
                cols["method"].append(cond.method)
                cols["pathway"].append(attribution_pathway(cond))
                cols["condition"].append(cond.name)
                cols["threshold"].append(
                    cond.threshold
                    if cond.rule == "threshold"
                    else cond.top_fraction
                    if cond.rule == "moore"
                    else 0.0
                )
                cols["num_frames"].append(m.shape[0])
                cols["num_bins"].append(m.shape[1])
                values.append(m)
        n = len(values)
        return pa.table(
            {
                "utt_id": pa.array(cols["utt_id"], pa.string()),
                "kind": pa.array([self.kind] * n, pa.string()),
                "method": pa.array(cols["method"], pa.string()),
                "pathway": pa.array(cols["pathway"], pa.string()),
                "condition": pa.array(cols["condition"], pa.string()),
                "threshold": pa.array(cols["threshold"], pa.float64()),
                "num_frames": pa.array(cols["num_frames"], pa.int32()),
                "num_bins": pa.array(cols["num_bins"], pa.int32()),
                "values": schema.floats_column(values),
            }
        )


def attributed_utterances(ctx: RunContext, method: str, pathway: str) -> list[str]:
    rel = f"{ATTRIBUTIONS}/method={method}"
    t = ctx.out.read_table(
        rel, columns=["utt_id", "pathway"], filter=pc.field("pathway") == pathway
    )
    return sorted(set(t.column("utt_id").to_pylist()))


def run_mask(ctx: RunContext) -> StageResult:
    cfg, out = ctx.cfg, ctx.out
    kind = load_model(base_model(ctx).path, cfg.corpus.s3).front_end.name
    by_attr: dict[tuple[str, str], list[MaskCondition]] = {}
    for c in cfg.mask.conditions:
        by_attr.setdefault((c.method, attribution_pathway(c)), []).append(c)
    utts_of = {key: attributed_utterances(ctx, *key) for key in by_attr}
    done = committed_keys(out, MASKED, MASK_KEYS)
    result = StageResult(STAGE)
    rc = cfg.mask.resources
    for (method, pathway), conds in by_attr.items():
        attr_rel = f"{ATTRIBUTIONS}/method={method}"
        utts = utts_of[(method, pathway)]
        todo = [u for u in utts if any((u, c.name) not in done for c in conds)]
        result.inputs += len(utts) * len(conds)
        result.skipped += (len(utts) - len(todo)) * len(conds)
        if not todo:
            continue
        log.info("mask: %d utterances x %s", len(todo), ", ".join(c.name for c in conds))
        feats = read_parquet_dataset(
            out, features_rel(kind), ["utt_id", "num_frames", "num_bins", "values"], todo
        )
        maps = read_parquet_dataset(out, attr_rel, ["utt_id", "values"], todo, {"pathway": pathway})
        maps = maps.rename_columns({"values": "attr"})
        joined = feats.join(
            maps, join_type="inner", num_partitions=max(1, min(8, len(todo) // 64)), on=("utt_id",)
        )
        masked = joined.map_batches(
            ApplyMasks,
            fn_constructor_args=(conds, cfg.mask, kind),
            batch_format="pyarrow",
            batch_size=rc.batch_size,
            compute=ActorPoolStrategy(size=rc.concurrency),
            num_cpus=min(actor_resources(rc)["num_cpus"], 1.0),
            **actor_retries(),
        )
        masked.write_datasink(
            ParquetSink(
                out,
                MASKED,
                schema.MASKED,
                MASK_KEYS,
                partition=schema.MASKED_PARTITION,
                stage=STAGE,
                rows_per_file=rc.rows_per_file,
            )
        )
    final = committed_keys(out, MASKED, MASK_KEYS)
    result.skipped = 0
    result.outputs = sum(
        1
        for key, conds in by_attr.items()
        for u in utts_of[key]
        for c in conds
        if (u, c.name) in final
    )
    result.info = {"conditions": [c.name for c in cfg.mask.conditions]}
    return result.check()
