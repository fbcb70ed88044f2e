"""Audio to embeddings in one actor pass: decode, the model's own front-end, embedding.

Evaluating a pretrained model needs no features/ on disk: the staged path (features stage,
a Parquet round trip, then embed) pays a second actor pool, the feature matrices through the
object store and their write and read. Here one actor per slot decodes a batch of manifest
rows, computes the model's front-end (``LoadedModel.front_end``) batched, and embeds exactly
as the embed stage does (``embed_compute.ComputeEmbeddings.embed_rows``: same length buckets, same
segments), so both paths write the same embeddings/ rows. Segment embeddings are computed only
when the run evaluates with a segment scorer: nothing else reads them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from voxray.config import CorpusConfig, EmbedConfig
from voxray.corpus.audio import AudioError, load_audio
from voxray.faults import maybe_fail
from voxray.io.sink import quarantined_paths, table_sink
from voxray.io.storage import Storage
from voxray.pipeline.context import EMBEDDINGS, MANIFEST, RunContext, StageResult
from voxray.pipeline.datasets import length_sorted_dataset, pool_to_sink
from voxray.pipeline.embed_compute import EMBED_KEYS, STAGE, ComputeEmbeddings, embedded
from voxray.pipeline.embed_plan import base_embed_config
from voxray.pipeline.front_ends import model_front_end
from voxray.pipeline.model_ref import ModelRef
from voxray.pipeline.ray_env import actor_resources


class EmbedFromAudio(ComputeEmbeddings):
    """map_batches callable over manifest rows (utt_id, path): embeddings/ rows, and one
    ``error`` row (quarantined by the sink) per file that cannot be used."""

    def __init__(
        self,
        model: ModelRef,
        cfg: EmbedConfig,
        frame_shift_ms: float,
        num_gpus: float,
        data: Storage,
        corpus: CorpusConfig,
    ) -> None:
        super().__init__(model, "none", cfg, frame_shift_ms, num_gpus, corpus.s3)
        self.extractor = self.front_end.build(self.device, corpus.sample_rate)
        self.data = data
        self.corpus = corpus

    def __call__(self, batch: pa.Table) -> pa.Table:
        maybe_fail(STAGE)
        decoded: list[tuple[str, str, np.ndarray]] = []
        bad: list[tuple[str, str]] = []  # (path, reason)
        with self.clock.part("decode"):
            for u, p in zip(
                batch.column("utt_id").to_pylist(), batch.column("path").to_pylist(), strict=True
            ):
                try:
                    decoded.append((u, p, load_audio(self.data, p, self.corpus)))
                except AudioError as exc:  # a bad file; a storage outage fails the stage
                    bad.append((p, str(exc)))
        waves = [w for _, _, w in decoded]
        with self.clock.part("front-end"):
            feats = self.extractor.compute(waves, self.corpus.sample_rate) if waves else []
        utt_ids, mats = [], []
        for (u, p, _), f in zip(decoded, feats, strict=True):
            if f.shape[0] and np.isfinite(f).all():
                utt_ids.append(u)
                mats.append(f)
            else:
                bad.append((p, f"{p}: no frames or non-finite {self.extractor.name} features"))
        table = self.embed_rows(utt_ids, mats)
        table = table.append_column("path", pa.nulls(table.num_rows, pa.string()))
        table = table.append_column("error", pa.nulls(table.num_rows, pa.string()))
        if not bad:
            return table
        failed = {f.name: pa.nulls(len(bad), f.type) for f in table.schema}
        failed["path"] = pa.array([p for p, _ in bad], pa.string())
        failed["error"] = pa.array([r for _, r in bad], pa.string())
        return pa.concat_tables([table, pa.table(failed, schema=table.schema)])


def embed_from_audio(ctx: RunContext, model: ModelRef) -> StageResult:
    """Embed every manifest utterance not yet embedded by ``model`` straight from its audio;
    undecodable files go to quarantine under the embed stage."""
    out = ctx.out
    cfg = base_embed_config(ctx)
    manifest = out.read_table(MANIFEST, columns=["utt_id", "path", "num_samples"])
    utt_ids = manifest.column("utt_id").to_pylist()
    paths = manifest.column("path").to_pylist()

    def accounted() -> tuple[set[str], set[str]]:
        return embedded(out, model.name, "none"), quarantined_paths(out, STAGE)

    done, quarantined = accounted()
    todo_mask = [
        u not in done and p not in quarantined for u, p in zip(utt_ids, paths, strict=True)
    ]
    todo = manifest.filter(pa.array(todo_mask))
    shares: dict[str, float] = {}
    if todo.num_rows:
        rc = cfg.resources
        res = actor_resources(rc)
        frame_shift_ms = model_front_end(ctx, model).build().frame_shift_ms
        shares = pool_to_sink(
            length_sorted_dataset(todo, rc.batch_size),
            EmbedFromAudio,
            (model, cfg, frame_shift_ms, res["num_gpus"], ctx.data, ctx.cfg.corpus),
            rc,
            table_sink(out, EMBEDDINGS, EMBED_KEYS, STAGE, rc.rows_per_file),
            res,
            zero_copy=True,
            total=todo.num_rows,
        )
    done, quarantined = accounted()
    result = StageResult(STAGE, inputs=len(utt_ids))
    result.outputs = sum(1 for u in utt_ids if u in done)
    result.quarantined = sum(
        1 for u, p in zip(utt_ids, paths, strict=True) if u not in done and p in quarantined
    )
    result.info = {"model": model.name, "from_audio": True, "segments": cfg.segments}
    if shares:
        result.info["time_split"] = shares
    return result.check()
