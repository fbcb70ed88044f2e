"""Ray Data datasets over our Parquet outputs, and the batching helpers the actors share."""

from __future__ import annotations

import time
from typing import Any, Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data import ActorPoolStrategy

from voxray.config import ResourceConfig
from voxray.io.sink import ParquetSink
from voxray.io.storage import Storage, StorageError
from voxray.log import get_logger
from voxray.pipeline.context import FEATURES, MANIFEST, RunContext
from voxray.pipeline.progress import CountRows, run_watched
from voxray.pipeline.ray_env import DATA_TASK_CPUS, actor_threads, node_cpus
from voxray.pipeline.time_split import describe_split, split_fractions
from voxray.schema import FEATURES as FEATURES_SCHEMA
from voxray.schema import MANIFEST as MANIFEST_SCHEMA
from voxray.schema import is_in, matrices, value_set

log = get_logger(__name__)
#: the columns that hold one utterance's feature matrix.
FEATURE_COLUMNS = ["utt_id", "num_frames", "num_bins", "values"]


def read_parquet_dataset(
    storage: Storage,
    rel: str,
    columns: list[str] | None = None,
    utt_ids: Iterable[str] | None = None,
    where: Mapping[str, str] | None = None,
    task_cpus: float | None = None,
    rows_per_block: int | None = None,
) -> "ray.data.Dataset":
    """A Ray dataset over the committed files below ``rel`` (temporary names never read),
    optionally only the rows of ``utt_ids`` whose columns equal ``where``'s values.
    ``task_cpus`` is the read tasks' CPU request (DATA_TASK_CPUS by default): small, because
    beside an actor pool or a Ray Train run that holds most CPUs, reads asking for a whole CPU
    would never be scheduled. ``rows_per_block`` cuts the stream into blocks of at most that
    many rows: a block is the unit one actor takes, and Ray Data packs small Parquet files
    into one big block, which would leave every actor of a pool but one idle."""
    from ray.data.expressions import col

    files = storage.parquet_files(rel)
    if not files:
        raise StorageError(
            f"no Parquet data at {storage.uri(rel)}: run the stage that writes it first"
        )
    task_cpus = DATA_TASK_CPUS if task_cpus is None else task_cpus
    kwargs: dict[str, Any] = {
        "filesystem": storage.arrow_fs(),
        "partitioning": None,
        "num_cpus": task_cpus,
    }
    if columns:
        kwargs["columns"] = list(dict.fromkeys([*columns, *(where or {})]))
    ds = ray.data.read_parquet([storage.path(f) for f in files], **kwargs)
    predicate = None
    if utt_ids is not None:
        wanted = sorted(set(utt_ids))
        if not wanted:  # Ray types an empty value list as null, which Arrow refuses
            return ds.limit(0)
        # a list, not an Arrow array: Ray hands the predicate to the Parquet reader as a list
        predicate = col("utt_id").is_in(value_set(MANIFEST_SCHEMA, "utt_id", wanted).to_pylist())
    for name, value in (where or {}).items():
        term = col(name) == value
        predicate = term if predicate is None else predicate & term
    if predicate is not None:
        ds = ds.filter(expr=predicate, num_cpus=task_cpus)
    if columns and where:
        ds = ds.select_columns(columns)
    if rows_per_block:
        ds = ds.repartition(target_num_rows_per_block=rows_per_block)
    return ds


def pool_strategy(rc: ResourceConfig) -> ActorPoolStrategy:
    """``rc.concurrency`` actors, or, with a larger ``rc.max_concurrency``, a pool that Ray
    Data grows to it while rows wait and room appears (nodes added mid-stage are used)."""
    if rc.max_concurrency > rc.concurrency:
        return ActorPoolStrategy(min_size=rc.concurrency, max_size=rc.max_concurrency)
    return ActorPoolStrategy(size=rc.concurrency)


def pool_to_sink(
    ds: "ray.data.Dataset",
    fn: type,
    fn_args: tuple[Any, ...],
    rc: ResourceConfig,
    sink: ParquetSink,
    res: Mapping[str, Any],
    zero_copy: bool = False,
    total: int | None = None,
) -> dict[str, float]:
    """Every actor-pool stage's core: ``fn`` (a map_batches callable class, whose constructor
    loads the model once per actor) on a pool of actors (``pool_strategy``), ``rc.batch_size``
    rows a call, its rows written through ``sink``. ``res`` are the actors' resources (the stages
    compute them first: their constructors need the GPUs granted); ``zero_copy`` when ``fn``
    only reads its batch. ``total``, the rows of ``ds``, gives the progress line its ETA. A pool
    idle for ``rc.stall_timeout_s`` after one of its nodes was lost stops with LostNodeError
    (``progress.run_watched``) instead of waiting for ever. Returns (and logs) the pool's time
    split: each part's share of its slot time (``pipeline.time_split``)."""

    def write(counter: Any) -> None:
        sink.progress = counter
        ds.map_batches(
            CountRows,
            fn_constructor_args=(fn, fn_args, counter, actor_threads(rc, node_cpus())),
            batch_format="pyarrow",
            batch_size=rc.batch_size,
            zero_copy_batch=zero_copy,
            compute=pool_strategy(rc),
            **res,
        ).write_datasink(sink)

    started = time.monotonic()
    seconds = run_watched(f"stage {sink.stage}", total, rc.stall_timeout_s, write)
    shares = split_fractions(seconds, time.monotonic() - started, rc.concurrency)
    log.info("stage %s: time split over its actors: %s", sink.stage, describe_split(shares))
    return shares


def features_rel(kind: str) -> str:
    return f"{FEATURES}/kind={kind}"


def featured_utterances(storage: Storage, kind: str) -> set[str]:
    """The utterances with stored features of ``kind``: what a stage downstream can work on."""
    rel = features_rel(kind)
    return set(storage.read_table(rel, columns=["utt_id"]).column("utt_id").to_pylist())


def features_dataset(
    storage: Storage, kind: str, utt_ids: Iterable[str], rows_per_block: int
) -> "ray.data.Dataset":
    """The feature matrices of ``kind`` for ``utt_ids``, as the actor-pool stages stream them:
    blocks of ``rows_per_block`` rows (their batch size), so every actor of the pool gets work."""
    rel = features_rel(kind)
    return read_parquet_dataset(
        storage, rel, FEATURE_COLUMNS, utt_ids, rows_per_block=rows_per_block
    )


def utterances(
    ctx: RunContext, split: str | None = None, columns: list[str] | None = None
) -> pa.Table:
    """Manifest rows (optionally one split) as an Arrow table."""
    filt = pc.field("split") == split if split else None
    return ctx.out.read_table(MANIFEST, columns=columns, filter=filt)


def read_features(storage: Storage, kind: str, utt_ids: Iterable[str] | None = None) -> pa.Table:
    """Feature rows of one kind (optionally only some utterances), on the driver."""
    filt = is_in(FEATURES_SCHEMA, "utt_id", utt_ids) if utt_ids is not None else None
    return storage.read_table(features_rel(kind), columns=FEATURE_COLUMNS, filter=filt)


def equal_length_groups(lengths: list[int], max_group: int, max_frames: int = 0) -> list[list[int]]:
    """Indices grouped by identical length (so no padding changes a model's output), at most
    ``max_group`` per group and, if ``max_frames`` is set, at most that many frames in all (but
    at least one input): on a CPU a forward over many frames runs slower per frame."""
    by_len: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_len.setdefault(int(n), []).append(i)
    groups = []
    for n, idx in by_len.items():
        size = max(1, min(max_group, max_frames // max(n, 1))) if max_frames else max_group
        groups += [idx[j : j + size] for j in range(0, len(idx), size)]
    return groups


def length_sorted_batches(todo: pa.Table, batch_size: int) -> list[pa.Table]:
    """``todo`` (manifest rows) cut into batches of similar lengths, which fill equal-length
    groups, longest first: a pool's last batches are then its shortest, so no actor is left
    working through a long batch while the others idle.

    One Arrow block per batch, cut here: a repartition would need CPU tasks that an actor pool
    holding every CPU never lets run (a deadlock on a small machine)."""
    todo = todo.sort_by([("num_samples", "descending")])
    return [todo.slice(i, batch_size) for i in range(0, todo.num_rows, batch_size)]


def length_sorted_dataset(todo: pa.Table, batch_size: int) -> "ray.data.Dataset":
    """``length_sorted_batches`` as a dataset of those blocks, built on the driver: Ray
    Data's ``from_arrow`` asks a remote task for each block's metadata (0.6 s, and it takes
    the workers Ray started ahead for the stage's actors)."""
    return ray.data.from_blocks(length_sorted_batches(todo, batch_size))


def dataset_mean(storage: Storage, rel: str, max_rows: int = 2000) -> np.ndarray:
    """Mean feature vector per bin over (a deterministic sample of) a features dataset."""
    total = np.zeros(0)
    frames = 0
    rows = 0
    for batch in storage.iter_batches(rel, columns=["num_frames", "num_bins", "values"]):
        for m in matrices(batch):
            total = m.sum(0) if total.size == 0 else total + m.sum(0)
            frames += m.shape[0]
            rows += 1
        if rows >= max_rows:
            break
    if frames == 0:
        raise StorageError(f"no features at {storage.uri(rel)} to average")
    return (total / frames).astype(np.float32)


__all__ = [
    "read_parquet_dataset",
    "features_rel",
    "features_dataset",
    "featured_utterances",
    "FEATURE_COLUMNS",
    "utterances",
    "read_features",
    "equal_length_groups",
    "length_sorted_batches",
    "length_sorted_dataset",
    "dataset_mean",
]
