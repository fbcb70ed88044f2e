"""Quarantine rows (inputs a stage could not use, each with its reason and a cause that says
whether recomputing it can help) and the deterministic names of idempotent Parquet parts.
Ray-free, so a stage run without Ray (the manifest on one machine) writes them too;
``voxray.io.sink`` writes the Ray Data stages' rows with them."""

from __future__ import annotations

import hashlib
from enum import Enum

import pyarrow as pa
import pyarrow.compute as pc

from voxray.io.storage import Storage


def part_name(table: pa.Table, key_columns: tuple[str, ...]) -> str:
    """A deterministic file name from the keys of the rows it holds."""
    h = hashlib.sha1()
    for name in key_columns:
        for value in table.column(name).to_pylist():
            h.update(str(value).encode())
            h.update(b"\0")
    return f"part-{h.hexdigest()[:20]}.parquet"


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
