"""``voxray train``: Ray Train on the training speakers' features (VoxCeleb1 verification
split: the speakers the trial lists never name). The retrain stage reuses ``train_on``
with masked data."""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import ray

from voxray import schema
from voxray.config import replace
from voxray.features import FrontEndSpec
from voxray.log import get_logger
from voxray.nodes import live_nodes
from voxray.pipeline.context import MANIFEST, METRICS, MODELS, RunContext, StageResult
from voxray.pipeline.datasets import FEATURE_COLUMNS, features_rel, read_parquet_dataset
from voxray.pipeline.front_ends import trained_front_end
from voxray.pipeline.ray_env import DATA_TASK_CPUS, fits_in_object_store
from voxray.pipeline.stall import LostNodeError, StallWatch, failed_with, lost_node_message
from voxray.train.data import validation_split
from voxray.train.trainer import TrainResult, train_model

log = get_logger(__name__)
STAGE = "train"
#: Bytes of a cached training source's block (Ray Data's own target_max_block_size).
TRAIN_BLOCK_BYTES = 128 * 2**20


def add_labels(batch: pa.Table, index: dict[str, int]) -> pa.Table:
    """map_batches function: the speaker index from the utt_id (``speaker/video/file``).

    A plain function (not an actor), so Ray Data fuses it into the read tasks and the
    training pipeline holds no CPU beside the train workers' and one read task's.
    """
    labels = [index[u.split("/", 1)[0]] for u in batch.column("utt_id").to_pylist()]
    return batch.append_column("label", pa.array(labels, pa.int64()))


def training_utterances(ctx: RunContext) -> tuple[list[str], list[str]]:
    """(utt_ids, sorted speakers) of the training split (without iden_split 3 if configured)."""
    filt = pc.field("split") == "train"
    if ctx.cfg.train.exclude_iden_test:
        filt = filt & (pc.field("iden_split") != 3)
    m = ctx.out.read_table(MANIFEST, columns=["utt_id", "speaker_id"], filter=filt)
    return m.column("utt_id").to_pylist(), sorted(set(m.column("speaker_id").to_pylist()))


def cache_for_epochs(ds: ray.data.Dataset, values_bytes: int, num_workers: int) -> ray.data.Dataset:
    """``ds`` in the object store, in as few blocks as the training workers and Ray Data's
    block size allow: each block is one crop task per epoch, and Ray Data's Parquet reader
    makes dozens of small ones (42 for the demo's 3 files), whose tasks beside the training
    worker made its epochs 2.2x slower on 2 cores."""
    blocks = max(num_workers, math.ceil(values_bytes / TRAIN_BLOCK_BYTES))
    return ds.repartition(blocks).materialize()


def _training_dataset(
    ctx: RunContext,
    name: str,
    source_rel: str,
    where: dict[str, str] | None,
    utt_ids: list[str],
    speakers: list[str],
) -> tuple[ray.data.Dataset, int]:
    """The labelled training rows of ``source_rel`` (cached when they fit), and their count."""
    filt = schema.is_in(schema.MANIFEST, "utt_id", utt_ids)
    for key, value in (where or {}).items():
        filt = filt & (pc.field(key) == value)
    sizes = ctx.out.read_table(source_rel, columns=["num_frames", "num_bins"], filter=filt)
    rows = sizes.num_rows
    ds = read_parquet_dataset(ctx.out, source_rel, FEATURE_COLUMNS, utt_ids, where)
    ds = ds.map_batches(
        add_labels,
        fn_kwargs={"index": {s: i for i, s in enumerate(speakers)}},
        batch_format="pyarrow",
        num_cpus=DATA_TASK_CPUS,
    )
    values_bytes = 4 * int(pc.sum(pc.multiply(sizes["num_frames"], sizes["num_bins"])).as_py() or 0)
    if fits_in_object_store(values_bytes):
        # read, filtered and labelled once, not once per epoch (a masked/ source holds every
        # condition of its method: each epoch read all of them again)
        log.info("train %s: %.0f MiB of features cached for its epochs", name, values_bytes / 2**20)
        ds = cache_for_epochs(ds, values_bytes, ctx.cfg.train.num_workers)
    return ds, rows


def train_on(
    ctx: RunContext,
    name: str,
    source_rel: str,
    where: dict[str, str] | None,
    front_end: FrontEndSpec,
    epochs: int = 0,
    seed: int | None = None,
    init_state: dict[str, Any] | None = None,
    stage: str = STAGE,
) -> TrainResult:
    """Train a model called ``name`` on the training utterances under ``source_rel`` (rows
    matching ``where``), features of ``front_end`` (recorded with the model), with
    train.epochs / train.seed unless given, from ``init_state``'s weights where given."""
    cfg = ctx.cfg
    utt_ids, speakers = training_utterances(ctx)
    if len(speakers) < 2:
        raise ValueError(
            f"training needs at least 2 speakers in the train split, found {len(speakers)}"
        )
    train_cfg = replace(
        cfg.train,
        epochs=epochs or cfg.train.epochs,
        seed=cfg.train.seed if seed is None else seed,
    )
    val_ds = None
    if train_cfg.patience:
        index = {s: i for i, s in enumerate(speakers)}
        labels = {u: index[u.split("/", 1)[0]] for u in utt_ids}
        val_ids = validation_split(labels, train_cfg.val_fraction, train_cfg.seed)
        held = set(val_ids)
        utt_ids = [u for u in utt_ids if u not in held]
        val_ds, _ = _training_dataset(
            ctx, f"{name} (validation)", source_rel, where, val_ids, speakers
        )
    ds, rows = _training_dataset(ctx, name, source_rel, where, utt_ids, speakers)
    extractor = front_end.build()
    input_dim = extractor.num_bins
    with lost_nodes_named(f"{stage} {name}", "its checkpoints are kept: rerun to resume"):
        result = train_model(
            train_cfg,
            cfg.model,
            ds,
            num_classes=len(speakers),
            input_dim=input_dim,
            storage_path=ctx.out.uri(f"{MODELS}/{name}/ray"),
            name=name,
            speakers=speakers,
            out_storage=ctx.out,
            model_rel_dir=f"{MODELS}/{name}",
            frame_shift_ms=extractor.frame_shift_ms,
            front_end=front_end,
            num_rows=rows,
            data_task_cpus=DATA_TASK_CPUS,
            init_state=init_state,
            val_ds=val_ds,
            stage=stage,
        )
    write_train_metrics(ctx, name, result)
    return result


@contextmanager
def lost_nodes_named(label: str, resume: str) -> Iterator[None]:
    """A failure inside, while a node alive at its start is lost, raised again as
    LostNodeError naming ``label``, the node and how to go on (``resume``): Ray Train says
    only that a worker group failed (``WorkerGroupError`` and its workers' trace)."""
    seen = StallWatch(label, None, 0.0, since=0.0)
    seen.nodes(ray.nodes())
    try:
        yield
    except Exception as exc:
        lost = seen.lost(live_nodes())
        if not lost:
            raise
        raise LostNodeError(lost_node_message(seen.label, failed_with(exc), lost, resume)) from exc


def write_train_metrics(ctx: RunContext, name: str, result: TrainResult) -> None:
    last = result.history[-1] if result.history else {}
    rows = [
        schema.MetricRow(name, "none", "train", "", metric, float(value))
        for metric, value in (
            ("train_loss", last.get("loss")),
            ("train_top1", last.get("accuracy")),
            ("train_seconds", result.seconds),
            ("train_epochs", len(result.history)),
            # the epoch whose weights were kept (early stopping; else absent: the last)
            ("train_best_epoch", last.get("best_epoch")),
        )
        if value is not None
    ]
    ctx.out.write_table(
        f"{METRICS}/train-{name.replace('/', '_')}.parquet", schema.metrics_table(rows)
    )


def run_train(ctx: RunContext) -> StageResult:
    front_end = trained_front_end(ctx.cfg)
    utt_ids, speakers = training_utterances(ctx)
    result = train_on(ctx, ctx.cfg.train.name, features_rel(front_end.name), None, front_end)
    log.info(
        "train: %s on %d utterances of %d speakers in %.0f s",
        ctx.cfg.train.name,
        len(utt_ids),
        len(speakers),
        result.seconds,
    )
    return StageResult(
        STAGE,
        inputs=len(utt_ids),
        outputs=len(utt_ids),
        info={
            "model": ctx.cfg.train.name,
            "speakers": len(speakers),
            "epochs": len(result.history),
            "seconds": round(result.seconds, 1),
        },
    ).check()
