"""``voxray mask``: masked and augmented features from features/ and attributions/.

For each method (and configured pathway) that a mask condition uses, Ray Data joins the
feature rows with each utterance's attribution map on utt_id and an actor applies every
condition of that attribution (attribution x input, a threshold, Moore-neighbourhood
replacement, and their shuffled-map controls) in one pass, writing masked/ partitioned by
method.

Which map masks an utterance is ``voxray.mask.pathway``'s rule: the condition's pathway for
utterances of the model's training speakers, Traversal for every other speaker's (the
Classification pathway explains a training class, which an unseen speaker does not have). The
``pathway`` column of masked/ records the map each row was made with. A ``maps: shuffled``
condition borrows the map of another speaker's utterance of the same group (``donors``),
joined to the utterance under its own utt_id.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from voxray import schema
from voxray.config import MaskCondition, MaskConfig
from voxray.eval.intervals import mean_interval
from voxray.eval.leak import nearest_centroid_hits, pooled
from voxray.faults import maybe_fail
from voxray.io.sink import ParquetSink, committed_keys
from voxray.log import get_logger
from voxray.mask import apply_condition, shuffled_condition
from voxray.mask.pathway import donors, map_pathway, seen_utterances
from voxray.models.checkpoint import load_model
from voxray.pipeline.context import (
    ATTRIBUTIONS,
    MANIFEST,
    MASKED,
    METRICS,
    RunContext,
    StageResult,
)
from voxray.pipeline.datasets import features_rel, pool_to_sink, read_parquet_dataset
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.ray_env import DATA_TASK_CPUS, actor_resources, actor_retries

log = get_logger(__name__)
STAGE = "mask"
MASK_KEYS = ("utt_id", "condition")
#: metrics/ ``list`` of the class-leak rows (voxray.eval.leak).
LEAK_LIST = "leak"


def condition_value(cond: MaskCondition) -> float:
    """The ``threshold`` column: the value its name carries (tau, the Moore fraction), or 0 for
    the plain product."""
    value = cond.parts.value
    return 0.0 if value is None else value


class ApplyMasks:
    """map_batches callable over joined rows: features ``values``, the utterance's map ``attr``
    (made along ``attr_pathway``) and, when a condition is a shuffled control, ``donor_attr``."""

    def __init__(self, conditions: list[MaskCondition], cfg: MaskConfig, kind: str) -> None:
        self.conditions = conditions
        self.cfg = cfg
        self.kind = kind

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        feats = schema.matrices(batch, "values")
        attrs = [
            a.reshape(f.shape)
            for a, f in zip(schema.column_arrays(batch, "attr"), feats, strict=True)
        ]
        donor_maps = (
            [
                a.reshape(-1, f.shape[1])
                for a, f in zip(schema.column_arrays(batch, "donor_attr"), feats, strict=True)
            ]
            if "donor_attr" in batch.column_names
            else [None] * len(feats)
        )
        utt_ids = batch.column("utt_id").to_pylist()
        pathways = batch.column("attr_pathway").to_pylist()
        cols: dict[str, list] = {k: [] for k in ("utt_id", "pathway", "condition")}
        cols |= {"method": [], "threshold": [], "num_frames": [], "num_bins": []}
        values = []
        for cond in self.conditions:
            for u, p, x, a, d in zip(utt_ids, pathways, feats, attrs, donor_maps, strict=True):
                if cond.maps == "shuffled":
                    m = shuffled_condition(x, a, d, cond, self.cfg.normalise)
                else:
                    m = apply_condition(x, a, cond, self.cfg.normalise)
                for key, value in (
                    ("utt_id", u),
                    ("method", cond.method),
                    ("pathway", p),
                    ("condition", cond.name),
                    ("threshold", condition_value(cond)),
                    ("num_frames", m.shape[0]),
                    ("num_bins", m.shape[1]),
                ):
                    cols[key].append(value)
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


def relabel(batch: pa.Table, recipient: dict[str, str]) -> pa.Table:
    """map_batches function: a donor's map rows renamed to the utterance that borrows them."""
    ids = [recipient[u] for u in batch.column("utt_id").to_pylist()]
    return batch.set_column(batch.schema.get_field_index("utt_id"), "utt_id", pa.array(ids))


def attributed(ctx: RunContext, method: str) -> set[tuple[str, str]]:
    """The (utt_id, pathway) pairs with a committed map of ``method``."""
    t = ctx.out.read_table(f"{ATTRIBUTIONS}/method={method}", columns=["utt_id", "pathway"])
    return set(zip(t.column("utt_id").to_pylist(), t.column("pathway").to_pylist(), strict=True))


def read_maps(
    ctx: RunContext, method: str, pathway_of: dict[str, str], columns: list[str]
) -> ray.data.Dataset:
    """The maps of ``method`` for the utterances of ``pathway_of``, each along its pathway."""
    rel = f"{ATTRIBUTIONS}/method={method}"
    parts = [
        read_parquet_dataset(
            ctx.out, rel, columns, [u for u, q in pathway_of.items() if q == p], {"pathway": p}
        )
        for p in sorted(set(pathway_of.values()))
    ]
    return parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]


def plan_maps(
    conds: list[MaskCondition], speaker_of: dict[str, str], seen: frozenset[str]
) -> dict[str, str]:
    """utt_id -> the pathway of the map that masks it under ``conds`` (one method and
    configured pathway, so one answer per utterance)."""
    return {u: map_pathway(conds[0], u in seen) for u in speaker_of}


def borrowed(
    pathway_of: dict[str, str], speaker_of: dict[str, str], seen: frozenset[str], seed: int
) -> dict[str, str]:
    """utt_id -> donor utt_id for the shuffled control, paired within seen and unseen."""
    out: dict[str, str] = {}
    for group in (True, False):
        utts = [u for u in pathway_of if (u in seen) == group]
        if utts:
            out |= donors(utts, speaker_of, seed)
    return out


def _masking_input(
    ctx: RunContext,
    method: str,
    kind: str,
    conds: list[MaskCondition],
    todo: list[str],
    pathway_of: dict[str, str],
    speaker_of: dict[str, str],
    seen: frozenset[str],
) -> ray.data.Dataset:
    """The features of ``todo`` joined with their ``method`` maps (``attr``), and, when a
    condition shuffles maps, with the map each borrows from another speaker (``donor_attr``)."""
    cfg, out = ctx.cfg, ctx.out
    todo_pathway = {u: pathway_of[u] for u in todo}
    feats = read_parquet_dataset(
        out, features_rel(kind), ["utt_id", "num_frames", "num_bins", "values"], todo
    )
    maps = read_maps(ctx, method, todo_pathway, ["utt_id", "pathway", "values"])
    maps = maps.rename_columns({"values": "attr", "pathway": "attr_pathway"})
    parts = max(1, min(8, len(todo) // 64))
    joined = feats.join(maps, join_type="inner", num_partitions=parts, on=("utt_id",))
    if any(c.maps == "shuffled" for c in conds):
        donor_of = borrowed(pathway_of, speaker_of, seen, cfg.seed)
        lent = {donor_of[u]: u for u in todo}
        donor_maps = read_maps(ctx, method, {d: pathway_of[d] for d in lent}, ["utt_id", "values"])
        donor_maps = donor_maps.map_batches(
            relabel,
            fn_kwargs={"recipient": lent},
            batch_format="pyarrow",
            num_cpus=DATA_TASK_CPUS,
        ).rename_columns({"values": "donor_attr"})
        joined = joined.join(donor_maps, join_type="inner", num_partitions=parts, on=("utt_id",))
    return joined


def run_mask(ctx: RunContext) -> StageResult:
    cfg, out = ctx.cfg, ctx.out
    loaded = load_model(base_model(ctx).path, cfg.corpus.s3)
    kind = loaded.front_end.name
    m = out.read_table(MANIFEST, columns=["utt_id", "speaker_id"])
    speaker_of = dict(
        zip(m.column("utt_id").to_pylist(), m.column("speaker_id").to_pylist(), strict=True)
    )
    seen = seen_utterances(speaker_of, loaded.speakers)
    by_attr: dict[tuple[str, str], list[MaskCondition]] = {}
    for c in cfg.mask.conditions:
        by_attr.setdefault((c.method, c.pathway), []).append(c)
    done = committed_keys(out, MASKED, MASK_KEYS)
    result = StageResult(STAGE)
    rc = cfg.mask.resources
    utts_of: dict[tuple[str, str], list[str]] = {}
    for (method, configured), conds in by_attr.items():
        have = attributed(ctx, method)
        pathway_of = {u: p for u, p in plan_maps(conds, speaker_of, seen).items() if (u, p) in have}
        utts = sorted(pathway_of)
        utts_of[(method, configured)] = utts
        todo = [u for u in utts if any((u, c.name) not in done for c in conds)]
        result.inputs += len(utts) * len(conds)
        result.skipped += (len(utts) - len(todo)) * len(conds)
        if not todo:
            continue
        log.info("mask: %d utterances x %s", len(todo), ", ".join(c.name for c in conds))
        joined = _masking_input(ctx, method, kind, conds, todo, pathway_of, speaker_of, seen)
        pool_to_sink(
            joined,
            ApplyMasks,
            (conds, cfg.mask, kind),
            rc,
            ParquetSink(
                out,
                MASKED,
                schema.MASKED,
                MASK_KEYS,
                partition=schema.MASKED_PARTITION,
                stage=STAGE,
                rows_per_file=rc.rows_per_file,
            ),
            {"num_cpus": min(actor_resources(rc)["num_cpus"], 1.0), **actor_retries()},
            total=len(todo),
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
    result.info = {
        "conditions": [c.name for c in cfg.mask.conditions],
        "controls": cfg.mask.controls,
        "leak": measure_leaks(ctx, kind, speaker_of, seen),
    }
    return result.check()


def leak_rows(
    ctx: RunContext, kind: str, cond: MaskCondition, utts: list[str], speaker_of: dict[str, str]
) -> list[schema.MetricRow]:
    """metrics/ rows of ``cond``'s class leak on the training utterances ``utts``: nearest-
    centroid accuracy of recovering the training speaker (the class a Classification map
    explains when the model classifies its own training utterance right) from the masked and
    from the raw inputs, each with its speaker-bootstrap interval."""
    cfg, out = ctx.cfg, ctx.out
    cols = ["utt_id", "num_frames", "num_bins", "values"]
    where = schema.is_in(schema.MANIFEST, "utt_id", utts)
    masked = out.read_table(
        f"{MASKED}/method={cond.method}", cols, where & (pc.field("condition") == cond.name)
    )
    # the raw inputs of the same utterances (those with a map)
    have = schema.is_in(schema.MANIFEST, "utt_id", masked.column("utt_id").to_pylist())
    raw = out.read_table(features_rel(kind), cols, have)
    rows = []
    for condition, table in ((cond.parts.masked, masked), ("none", raw)):
        ids = table.column("utt_id").to_pylist()
        if len({speaker_of[u] for u in ids}) < 2:
            return []
        speakers = [speaker_of[u] for u in ids]
        hits = nearest_centroid_hits(pooled(schema.matrices(table)), speakers)
        ci = mean_interval(
            hits,
            speakers,
            confidence=cfg.eval.intervals.confidence,
            n_resamples=cfg.eval.intervals.resamples,
            seed=cfg.eval.intervals.seed,
        )
        rows.append(
            schema.MetricRow(
                base_model(ctx).name,
                condition,
                LEAK_LIST,
                cond.name,
                "class_recovery",
                ci.value,
                ci_low=ci.ci_low,
                ci_high=ci.ci_high,
                n=ci.n,
            )
        )
    return rows


def measure_leaks(
    ctx: RunContext, kind: str, speaker_of: dict[str, str], seen: frozenset[str]
) -> dict[str, float]:
    """The class leak of every own-map condition (metrics/ list ``leak``, scorer = the
    condition), on a seeded sample of ``mask.leak_utterances`` training utterances; returns
    condition -> masked-input recovery accuracy."""
    cfg = ctx.cfg
    rng = np.random.default_rng(cfg.seed)
    pool = sorted(seen)
    utts = sorted(rng.permutation(pool)[: cfg.mask.leak_utterances].tolist()) if pool else []
    found: dict[str, float] = {}
    rows: list[schema.MetricRow] = []
    for cond in cfg.mask.conditions:
        if cond.maps != "own" or not utts:
            continue
        cond_rows = leak_rows(ctx, kind, cond, utts, speaker_of)
        rows += cond_rows
        if cond_rows:
            found[cond.name] = cond_rows[0].value
    if rows:
        ctx.out.write_table(f"{METRICS}/mask-leak.parquet", schema.metrics_table(rows))
    return found
