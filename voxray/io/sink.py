"""Idempotent Parquet output for Ray Data stages, and the resume logic built on it.

Each write task writes its rows as one file per partition value, named by a hash of the
rows' keys. A retried task (a worker that died, Ray re-running the task) therefore writes
the same name again and replaces its own file instead of adding a duplicate, and a rerun
after a crash first reads the keys already committed and feeds only the rest into the
pipeline. Files appear atomically (``Storage.write_table``), so a reader never sees half
a Parquet file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
from ray.data import Datasink

# the quarantine and part naming half needs no Ray (voxray.io.quarantine); the stages
# import it from here beside the sink
from voxray.io.quarantine import (
    ERROR_COLUMN,
    QuarantineCause,
    clear_quarantine,
    part_name,
    quarantined_paths,
    release_quarantine,
    retryable_quarantine,
    write_quarantine,
)
from voxray.io.storage import Storage, StorageError
from voxray.schema import SINK_TABLES, conform

__all__ = [
    "ParquetSink",
    "table_sink",
    "QuarantineCause",
    "clear_quarantine",
    "committed_keys",
    "part_name",
    "quarantined_paths",
    "release_quarantine",
    "retryable_quarantine",
    "split_errors",
    "write_partitioned",
    "write_quarantine",
]


def write_partitioned(
    storage: Storage,
    rel_dir: str,
    table: pa.Table,
    schema: pa.Schema,
    key_columns: tuple[str, ...],
    partition: str | None = None,
) -> int:
    """Write ``table`` under ``rel_dir`` (one file per value of ``partition``); returns rows."""
    if table.num_rows == 0:
        return 0
    groups: list[tuple[str, pa.Table]]
    if partition:
        values = table.column(partition)
        groups = [
            (f"{partition}={v}", table.filter(pc.equal(values, v)))
            for v in sorted(set(values.to_pylist()))
        ]
    else:
        groups = [("", table)]
    for sub, part in groups:
        name = part_name(part, key_columns)
        storage.write_table("/".join(p for p in (rel_dir, sub, name) if p), conform(part, schema))
    return table.num_rows


def split_errors(table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """(good rows, quarantine rows) by the optional ``error`` column a stage UDF emits."""
    if ERROR_COLUMN not in table.column_names:
        return table, None
    bad = pc.is_valid(table.column(ERROR_COLUMN))
    return table.filter(pc.invert(bad)), table.filter(bad)


@dataclass(eq=False)
class ParquetSink(Datasink):
    """A Ray Data sink writing idempotent, atomic Parquet parts (see module doc).

    Rows whose ``error`` column is set go to quarantine.parquet under ``stage`` instead.
    ``rows_per_file`` rows (0: whatever a block holds) share one write call and file.
    The write returns are (rows written, rows quarantined) per task. ``progress``, when set,
    is a handle whose ``add_written.remote(rows, seconds)`` each write calls with the rows it
    committed and its seconds (``pipeline.progress.RowCounter``): a stalled stage's message says
    how many rows are left, and the stage's time split what its writes cost.
    """

    storage: Storage
    rel_dir: str
    schema: pa.Schema
    key_columns: tuple[str, ...]
    partition: str | None = None
    #: where quarantined rows go (default: ``rel_dir``).
    stage: str = ""
    rows_per_file: int = 0
    rows_written: int = field(default=0, init=False)
    rows_quarantined: int = field(default=0, init=False)
    progress: Any = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.stage = self.stage or self.rel_dir

    def write(self, blocks: Iterable[Any], ctx: Any) -> tuple[int, int]:
        started = time.perf_counter()
        tables = [
            b if isinstance(b, pa.Table) else pa.Table.from_pandas(b, preserve_index=False)
            for b in blocks
        ]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return (0, 0)
        good, bad = split_errors(pa.concat_tables(tables, promote_options="permissive"))
        quarantined = write_quarantine(self.storage, self.stage, bad) if bad is not None else 0
        written = write_partitioned(
            self.storage, self.rel_dir, good, self.schema, self.key_columns, self.partition
        )
        if self.progress is not None:
            seconds = {"write": time.perf_counter() - started}
            self.progress.add_written.remote(written + quarantined, seconds)
        return (written, quarantined)

    def on_write_complete(self, write_result: Any) -> None:
        results = getattr(write_result, "write_returns", write_result) or []
        pairs = [r for r in results if isinstance(r, tuple)]
        self.rows_written = int(sum(r[0] for r in pairs))
        self.rows_quarantined = int(sum(r[1] for r in pairs))

    @property
    def supports_distributed_writes(self) -> bool:
        return True

    @property
    def min_rows_per_write(self) -> int | None:
        """Ray Data gathers this many rows into one ``write`` call (one file per partition)."""
        return self.rows_per_file or None


def table_sink(
    storage: Storage, rel_dir: str, key_columns: tuple[str, ...], stage: str, rows_per_file: int
) -> ParquetSink:
    """The sink of one of the stages' tables (``schema.SINK_TABLES``: its schema and partition
    column), quarantining under ``stage``."""
    table, partition = SINK_TABLES[rel_dir]
    return ParquetSink(
        storage, rel_dir, table, key_columns, partition or None, stage, rows_per_file
    )


def committed_keys(
    storage: Storage, rel_dir: str, key_columns: tuple[str, ...]
) -> set[tuple[Any, ...]]:
    """Keys of the rows already written under ``rel_dir`` (empty when nothing is there)."""
    if not storage.parquet_files(rel_dir):
        return set()
    try:
        t = storage.read_table(rel_dir, columns=list(key_columns))
    except StorageError:
        return set()
    cols = [t.column(c).to_pylist() for c in key_columns]
    return set(zip(*cols, strict=True))
