"""Idempotent Parquet output for Ray Data stages, and the resume logic built on it.

Each write task writes its rows as one file per partition value, named by a hash of the
rows' keys. A retried task (a worker that died, Ray re-running the task) therefore writes
the same name again and replaces its own file instead of adding a duplicate, and a rerun
after a crash first reads the keys already committed and feeds only the rest into the
pipeline. Files appear atomically (``Storage.write_table``), so a reader never sees half
a Parquet file.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from ray.data import Datasink

from voxray.io.storage import Storage, StorageError


def part_name(table: pa.Table, key_columns: tuple[str, ...]) -> str:
    """A deterministic file name from the keys of the rows it holds."""
    h = hashlib.sha1()
    for name in key_columns:
        for value in table.column(name).to_pylist():
            h.update(str(value).encode())
            h.update(b"\0")
    return f"part-{h.hexdigest()[:20]}.parquet"


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
        part = part.select(schema.names).cast(schema)
        storage.write_table("/".join(p for p in (rel_dir, sub, part_name(part, key_columns)) if p), part)
    return table.num_rows


class ParquetSink(Datasink):
    """A Ray Data sink writing idempotent, atomic Parquet parts (see module doc)."""

    def __init__(
        self,
        storage: Storage,
        rel_dir: str,
        schema: pa.Schema,
        key_columns: tuple[str, ...],
        partition: str | None = None,
    ) -> None:
        self.storage = storage
        self.rel_dir = rel_dir
        self.schema = schema
        self.key_columns = key_columns
        self.partition = partition
        self.rows_written = 0

    def write(self, blocks: Iterable[Any], ctx: Any) -> int:
        tables = [b if isinstance(b, pa.Table) else pa.Table.from_pandas(b, preserve_index=False) for b in blocks]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return 0
        table = pa.concat_tables(tables, promote_options="permissive")
        return write_partitioned(self.storage, self.rel_dir, table, self.schema, self.key_columns, self.partition)

    def on_write_complete(self, write_result: Any) -> None:
        results = getattr(write_result, "write_returns", write_result) or []
        self.rows_written = int(sum(r for r in results if isinstance(r, int)))

    @property
    def supports_distributed_writes(self) -> bool:
        return True


def committed_keys(storage: Storage, rel_dir: str, key_columns: tuple[str, ...]) -> set[tuple[Any, ...]]:
    """Keys of the rows already written under ``rel_dir`` (empty when nothing is there)."""
    if not storage.parquet_files(rel_dir):
        return set()
    try:
        t = storage.read_table(rel_dir, columns=list(key_columns))
    except StorageError:
        return set()
    cols = [t.column(c).to_pylist() for c in key_columns]
    return set(zip(*cols))
