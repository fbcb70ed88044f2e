"""``voxray mask``: masked and augmented features from features/ and attributions/.

For each method (and configured pathway) that a mask condition uses, an actor pool reads the
feature rows, fetches each utterance's attribution map by key (voxray.pipeline.map_lookup:
a Ray Data join cost over a minute of fixed shuffle time) and applies every condition of that
attribution (attribution x input, a threshold, Moore-neighbourhood replacement, and their
shuffled-map controls) in one pass, writing masked/ partitioned by method.

Which map masks an utterance is ``voxray.mask.pathway``'s rule: the condition's pathway for
utterances of the model's training speakers, Traversal for every other speaker's (the
Classification pathway explains a training class, which an unseen speaker does not have). The
``pathway`` column of masked/ records the map each row was made with. A ``maps: shuffled``
condition borrows the map of another speaker's utterance of the same group (``donors``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxray import schema
from voxray.config import MaskCondition, MaskConfig
from voxray.eval.intervals import mean_interval
from voxray.eval.leak import nearest_centroid_hits, pooled
from voxray.faults import maybe_fail
from voxray.io.run_state import stage_done
from voxray.io.sink import committed_keys, table_sink
from voxray.io.storage import Storage, StorageError
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
from voxray.pipeline.datasets import features_dataset, features_rel, pool_to_sink
from voxray.pipeline.map_lookup import MapKey, index_maps, read_maps
from voxray.pipeline.model_ref import base_model
from voxray.pipeline.ray_env import actor_resources, actor_retries

log = get_logger(__name__)
STAGE = "mask"
MASK_KEYS = ("utt_id", "condition")
#: what the actors hand the sink: masked/ rows and their method (no row fails alone).
BATCH = schema.batch_schema(schema.MASKED, schema.MASKED_PARTITION, failed=())
#: metrics/ ``list`` of the class-leak rows (voxray.eval.leak).
LEAK_LIST = "leak"


def condition_value(cond: MaskCondition) -> float:
    """The ``threshold`` column: the value its name carries (tau, the Moore fraction), or 0 for
    the plain product."""
    value = cond.parts.value
    return 0.0 if value is None else value


class ApplyMasks:
    """map_batches callable over feature rows: fetches each utterance's map (along the pathway
    ``pathway_of`` gives it) and, for a shuffled control, the map it borrows (``donor_of``)
    from the files ``index`` names (voxray.pipeline.map_lookup), and applies every condition."""

    def __init__(
        self,
        conditions: list[MaskCondition],
        cfg: MaskConfig,
        kind: str,
        maps: tuple[Storage, dict[MapKey, str], dict[str, str], dict[str, str]],
    ) -> None:
        self.conditions = conditions
        self.cfg = cfg
        self.kind = kind
        self.storage, self.index, self.pathway_of, self.donor_of = maps

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        feats = schema.matrices(batch, "values")
        utt_ids = batch.column("utt_id").to_pylist()
        pathways = [self.pathway_of[u] for u in utt_ids]
        own = [(u, p) for u, p in zip(utt_ids, pathways, strict=True)]
        lent = [(self.donor_of[u], p) for u, p in own] if self.donor_of else []
        found = read_maps(self.storage, self.index, own + lent)
        attrs = [found[k].reshape(f.shape) for k, f in zip(own, feats, strict=True)]
        donor_maps = (
            [found[k].reshape(-1, f.shape[1]) for k, f in zip(lent, feats, strict=True)]
            if lent
            else [None] * len(feats)
        )
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
        cols |= {"kind": [self.kind] * len(values), "values": schema.floats_column(values)}
        return schema.table(BATCH, cols)


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


def _map_lookup(
    ctx: RunContext,
    index: dict[MapKey, str],
    conds: list[MaskCondition],
    todo: list[str],
    pathway_of: dict[str, str],
    speaker_of: dict[str, str],
    seen: frozenset[str],
) -> tuple[Storage, dict[MapKey, str], dict[str, str], dict[str, str]]:
    """What ``ApplyMasks`` needs to fetch the maps of ``todo``: the storage, the files of just
    those maps (and, when a condition shuffles maps, of the maps each borrows from another
    speaker), each utterance's pathway and its donor."""
    donor_of: dict[str, str] = {}
    if any(c.maps == "shuffled" for c in conds):
        every = borrowed(pathway_of, speaker_of, seen, ctx.cfg.seed)
        donor_of = {u: every[u] for u in todo}
    needed = {u: pathway_of[u] for u in [*todo, *donor_of.values()]}
    files = {(u, p): index[(u, p)] for u, p in needed.items()}
    return ctx.out, files, needed, donor_of


def _apply_masks(
    ctx: RunContext,
    kind: str,
    conds: list[MaskCondition],
    todo: list[str],
    lookup: tuple[Storage, dict[MapKey, str], dict[str, str], dict[str, str]],
) -> None:
    """The features of ``todo`` through an ``ApplyMasks`` pool into masked/."""
    rc = ctx.cfg.mask.resources
    pool_to_sink(
        features_dataset(ctx.out, kind, todo, rc.batch_size),
        ApplyMasks,
        (conds, ctx.cfg.mask, kind, lookup),
        rc,
        table_sink(ctx.out, MASKED, MASK_KEYS, STAGE, rc.rows_per_file),
        {"num_cpus": min(actor_resources(rc)["num_cpus"], 1.0), **actor_retries()},
        total=len(todo),
    )


def check_maps_exist(ctx: RunContext) -> None:
    """Refuse, before any work, a mask stage whose conditions' methods have no maps in --out
    while the attribute stage, which writes them, has not run there: a single `voxray mask`
    does not run it first (it reported "no Parquet data at masked/..." after loading the
    model). After the attribute stage, a method it left out (one the model cannot explain)
    only leaves its conditions without rows."""
    if stage_done(ctx.out, "attribute"):
        return
    methods = sorted({c.method for c in ctx.cfg.mask.conditions})  # each listed once
    missing = [m for m in methods if not ctx.out.parquet_files(f"{ATTRIBUTIONS}/method={m}")]
    if missing:
        raise StorageError(
            f"stage mask: no attributions of {', '.join(missing)} (mask.conditions) in "
            f"{ctx.out.uri(ATTRIBUTIONS)}: run the attribute stage first (voxray attribute, "
            "or voxray run)"
        )


def run_mask(ctx: RunContext) -> StageResult:
    cfg, out = ctx.cfg, ctx.out
    check_maps_exist(ctx)
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
    utts_of: dict[tuple[str, str], list[str]] = {}
    for (method, configured), conds in by_attr.items():
        index = index_maps(ctx.out, method)
        have = index.keys()
        pathway_of = {u: p for u, p in plan_maps(conds, speaker_of, seen).items() if (u, p) in have}
        utts = sorted(pathway_of)
        utts_of[(method, configured)] = utts
        todo = [u for u in utts if any((u, c.name) not in done for c in conds)]
        result.inputs += len(utts) * len(conds)
        result.skipped += (len(utts) - len(todo)) * len(conds)
        if not todo:
            continue
        log.info("mask: %d utterances x %s", len(todo), ", ".join(c.name for c in conds))
        lookup = _map_lookup(ctx, index, conds, todo, pathway_of, speaker_of, seen)
        _apply_masks(ctx, kind, conds, todo, lookup)
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
    from the raw inputs, each with its speaker-bootstrap interval, and the chance level (one
    over the speakers: the raw inputs of a corpus whose voices are not in the time-averaged
    features sit near it, leave-one-out's bias a little below)."""
    cfg, out = ctx.cfg, ctx.out
    cols = ["utt_id", "num_frames", "num_bins", "values"]
    where = schema.is_in(schema.MANIFEST, "utt_id", utts)
    masked = out.read_table(
        f"{MASKED}/method={cond.method}", cols, where & (pc.field("condition") == cond.name)
    )
    # the raw inputs of the same utterances (those with a map)
    have = schema.is_in(schema.MANIFEST, "utt_id", masked.column("utt_id").to_pylist())
    raw = out.read_table(features_rel(kind), cols, have)
    speakers_in = {speaker_of[u] for u in masked.column("utt_id").to_pylist()}
    if len(speakers_in) < 2:
        return []
    model = base_model(ctx).name
    chance = 1.0 / len(speakers_in)
    rows = [
        schema.MetricRow(
            model, "none", LEAK_LIST, cond.name, "class_chance", chance, n=len(speakers_in)
        )
    ]
    for condition, table in ((cond.parts.masked, masked), ("none", raw)):
        ids = table.column("utt_id").to_pylist()
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
                model,
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
            found[cond.name] = cond_rows[1].value  # after the chance row: the masked inputs
    if rows:
        ctx.out.write_table(f"{METRICS}/mask-leak.parquet", schema.metrics_table(rows))
    return found
