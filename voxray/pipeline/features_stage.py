"""``voxray features``: decode, (resample,) compute every front-end the run's models need on
an actor pool, one ``features/kind=<front-end>/`` partition each (``pipeline.front_ends``).

The manifest is sorted by length before it enters Ray Data, so each batch holds
utterances of similar duration and the batched extractor wastes little on padding.
Undecodable audio (silent, NaN, truncated ...) is quarantined with its reason.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from voxray import schema
from voxray.config import CorpusConfig
from voxray.corpus.audio import AudioError, load_audio
from voxray.faults import maybe_fail
from voxray.features import FrontEndSpec
from voxray.io.sink import committed_keys, quarantined_paths, table_sink
from voxray.io.storage import Storage
from voxray.log import get_logger
from voxray.pipeline.context import FEATURES, MANIFEST, RunContext, StageResult
from voxray.pipeline.datasets import length_sorted_dataset, pool_to_sink
from voxray.pipeline.front_ends import record_front_end, recorded_front_ends, run_front_ends
from voxray.pipeline.ray_env import actor_resources, torch_device

log = get_logger(__name__)
STAGE = "features"
FEATURE_KEYS = ("utt_id", "kind")
#: what the actors hand the sink: features/ rows, their kind, and a failed input's reason.
BATCH = schema.batch_schema(schema.FEATURES, schema.FEATURES_PARTITION)


class ComputeFeatures:
    """map_batches callable: one row per (utterance, front-end), or one error row."""

    def __init__(
        self, data: Storage, corpus: CorpusConfig, specs: list[FrontEndSpec], num_gpus: float
    ) -> None:
        self.data = data
        self.corpus = corpus
        device = torch_device(num_gpus)
        self.extractors = {s.name: s.build(device, corpus.sample_rate) for s in specs}

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        utt_ids = batch.column("utt_id").to_pylist()
        paths = batch.column("path").to_pylist()
        waves: list[np.ndarray] = []
        ok: list[int] = []
        rows: dict[str, list] = {
            k: [] for k in ("utt_id", "kind", "num_frames", "num_bins", "path", "error")
        }
        values: list[np.ndarray] = []

        def add(i: int, kind: str, feats: np.ndarray | None, error: str | None) -> None:
            rows["utt_id"].append(utt_ids[i])
            rows["kind"].append(kind)
            rows["path"].append(paths[i])
            rows["error"].append(error)
            shape = feats.shape if feats is not None else (0, 0)
            rows["num_frames"].append(shape[0])
            rows["num_bins"].append(shape[1])
            values.append(feats if feats is not None else np.zeros(0, np.float32))

        for i, path in enumerate(paths):
            try:
                waves.append(load_audio(self.data, path, self.corpus))
                ok.append(i)
            except (
                AudioError
            ) as exc:  # a bad file; a storage outage is not caught and fails the stage
                add(i, "", None, str(exc))
        for kind, extractor in self.extractors.items():
            feats = extractor.compute(waves, self.corpus.sample_rate) if waves else []
            for i, f in zip(ok, feats, strict=True):
                if f.shape[0] == 0:
                    add(i, kind, None, f"{kind}: no frames (audio shorter than one frame)")
                elif not np.isfinite(f).all():
                    add(i, kind, None, f"{kind}: non-finite feature values")
                else:
                    add(i, kind, f, None)
        return schema.table(BATCH, {**rows, "values": schema.floats_column(values)})


def _compute(ctx: RunContext, specs: list[FrontEndSpec], todo: pa.Table) -> None:
    """Stream the manifest rows ``todo`` (length-sorted batches) through the pool."""
    cfg, out = ctx.cfg, ctx.out
    rc = cfg.features.resources
    res = actor_resources(rc)
    pool_to_sink(
        length_sorted_dataset(todo, rc.batch_size),
        ComputeFeatures,
        (ctx.data, cfg.corpus, specs, res["num_gpus"]),
        rc,
        table_sink(out, FEATURES, FEATURE_KEYS, STAGE, rc.rows_per_file),
        res,
        zero_copy=True,  # the callable only reads its batch: no copy into the actor
        total=todo.num_rows,
    )


def run_features(ctx: RunContext) -> StageResult:
    out = ctx.out
    manifest = out.read_table(MANIFEST, columns=["utt_id", "path", "num_samples"])
    done = committed_keys(out, FEATURES, FEATURE_KEYS)
    quarantined = quarantined_paths(out, STAGE)
    specs = run_front_ends(ctx)
    for spec in specs:
        record_front_end(out, spec)
    kinds = {s.name for s in specs}
    utt_ids = manifest.column("utt_id").to_pylist()
    paths = manifest.column("path").to_pylist()
    todo_mask = [
        not ({(u, k) for k in kinds} <= done) and p not in quarantined
        for u, p in zip(utt_ids, paths, strict=True)
    ]
    todo = manifest.filter(pa.array(todo_mask))
    result = StageResult(STAGE, inputs=manifest.num_rows, skipped=manifest.num_rows - todo.num_rows)
    log.info(
        "features: %d utterances to process (%d already done or quarantined)",
        todo.num_rows,
        result.skipped,
    )
    if todo.num_rows:
        _compute(ctx, specs, todo)
    # account per utterance: done for every kind, or quarantined
    final = committed_keys(out, FEATURES, FEATURE_KEYS)
    final_q = quarantined_paths(out, STAGE)
    complete = sum(1 for u in utt_ids if {(u, k) for k in kinds} <= final)
    q = sum(
        1
        for u, p in zip(utt_ids, paths, strict=True)
        if p in final_q and not {(u, k) for k in kinds} <= final
    )
    result.skipped = 0
    result.outputs, result.quarantined = complete, q
    # every partition of --out that is complete, this run's and earlier ones' (other models')
    covered = [
        k
        for k in recorded_front_ends(out)
        if all((u, k) in final or p in final_q for u, p in zip(utt_ids, paths, strict=True))
    ]
    result.info = {
        "kinds": covered,
        "front_ends": [s.to_dict() for s in specs],
        "rows": len(final),
    }
    return result.check()
