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
from enum import Enum
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
from ray.data import Datasink

from voxray.io.storage import Storage, StorageError
from voxray.schema import conform


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
        name = part_name(part, key_columns)
        storage.write_table("/".join(p for p in (rel_dir, sub, name) if p), conform(part, schema))
    return table.num_rows


QUARANTINE_DIR = "quarantine.parquet"
ERROR_COLUMN = "error"
CAUSE_COLUMN = "cause"


class QuarantineCause(str, Enum):
    """Why a row is in quarantine, which decides whether recomputing it can help."""

    #: a property of the input file (undecodable, silent, wrong rate, non-finite features):
    #: recomputing gives the same answer, so it is never retried.
    INPUT = "input"
    #: the computation failed deterministically for this item (a method not defined for the
    #: model, a non-finite result): worth retrying after a code or configuration change.
    COMPUTE = "compute"
    #: the item did not fit in memory even alone: worth retrying on a bigger machine.
    RESOURCES = "resources"


def split_errors(table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """(good rows, quarantine rows) by the optional ``error`` column a stage UDF emits."""
    if ERROR_COLUMN not in table.column_names:
        return table, None
    bad = pc.is_valid(table.column(ERROR_COLUMN))
    return table.filter(pc.invert(bad)), table.filter(bad)


def write_quarantine(
    storage: Storage, stage: str, rows: pa.Table, cause: QuarantineCause = QuarantineCause.INPUT
) -> int:
    """Append quarantine rows (``path``, ``error`` and optionally ``cause``, else ``cause``
    for every row) of ``stage`` as one idempotent part."""
    if rows is None or rows.num_rows == 0:
        return 0
    from voxray.schema import QUARANTINE

    causes = (
        rows.column(CAUSE_COLUMN)
        if CAUSE_COLUMN in rows.column_names
        else pa.array([cause.value] * rows.num_rows, pa.string())
    )
    q = pa.table(
        {
            "path": rows.column("path"),
            "stage": pa.array([stage] * rows.num_rows, pa.string()),
            "reason": rows.column(ERROR_COLUMN),
            "cause": causes,
        }
    ).cast(QUARANTINE)
    storage.write_table(f"{QUARANTINE_DIR}/{stage}-{part_name(q, ('path', 'reason'))}", q)
    return q.num_rows


class ParquetSink(Datasink):
    """A Ray Data sink writing idempotent, atomic Parquet parts (see module doc).

    Rows whose ``error`` column is set go to quarantine.parquet under ``stage`` instead.
    ``rows_per_file`` rows (0: whatever a block holds) share one write call and file.
    The write returns are (rows written, rows quarantined) per task.
    """

    def __init__(
        self,
        storage: Storage,
        rel_dir: str,
        schema: pa.Schema,
        key_columns: tuple[str, ...],
        partition: str | None = None,
        stage: str = "",
        rows_per_file: int = 0,
    ) -> None:
        self.storage = storage
        self.rows_per_file = rows_per_file
        self.rel_dir = rel_dir
        self.schema = schema
        self.key_columns = key_columns
        self.partition = partition
        self.stage = stage or rel_dir
        self.rows_written = 0
        self.rows_quarantined = 0

    def write(self, blocks: Iterable[Any], ctx: Any) -> tuple[int, int]:
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


def _stage_parts(storage: Storage, stage: str) -> list[str]:
    return [
        f for f in storage.parquet_files(QUARANTINE_DIR) if f.split("/")[-1].startswith(f"{stage}-")
    ]


def clear_quarantine(storage: Storage, stage: str) -> None:
    """Forget a stage's quarantine rows (a stage that recomputes everything rewrites them)."""
    for f in _stage_parts(storage, stage):
        storage.remove(f)


def quarantined_paths(storage: Storage, stage: str) -> set[str]:
    """Paths already quarantined by ``stage`` (so a rerun does not retry them forever)."""
    files = _stage_parts(storage, stage)
    if not files:
        return set()
    import pyarrow.parquet as pq

    paths: set[str] = set()
    for f in files:
        with storage.open(f) as fh:
            paths.update(pq.read_table(fh, columns=["path"]).column("path").to_pylist())
    return paths


def _retryable(table: pa.Table) -> pa.Array:
    """Rows whose cause is not the input file's; rows written before causes existed (no
    ``cause`` column, or null) count as retryable: they may be transient failures."""
    if CAUSE_COLUMN not in table.column_names:
        return pa.array([True] * table.num_rows)
    return pc.fill_null(pc.not_equal(table.column(CAUSE_COLUMN), QuarantineCause.INPUT.value), True)


def retryable_quarantine(storage: Storage, stage: str) -> set[str]:
    """Paths ``stage`` quarantined for a reason that is not a property of the input file."""
    import pyarrow.parquet as pq

    paths: set[str] = set()
    for f in _stage_parts(storage, stage):
        with storage.open(f) as fh:
            t = pq.read_table(fh)
        paths.update(t.filter(_retryable(t)).column("path").to_pylist())
    return paths


def release_quarantine(storage: Storage, stage: str) -> set[str]:
    """Take ``stage``'s retryable rows out of quarantine so the stage computes them again;
    returns their paths. Each part is rewritten atomically without them (or removed), so a
    crash leaves every row either still quarantined or free to be recomputed by a rerun."""
    import pyarrow.parquet as pq

    released: set[str] = set()
    for f in _stage_parts(storage, stage):
        with storage.open(f) as fh:
            t = pq.read_table(fh)
        retry = _retryable(t)
        if not pc.any(retry).as_py():
            continue
        released.update(t.filter(retry).column("path").to_pylist())
        keep = t.filter(pc.invert(retry))
        if keep.num_rows:
            storage.write_table(f, keep)
        else:
            storage.remove(f)
    return released


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
