"""Removing some rows of a dataset folder in place, for a stage whose outputs went stale and
that shares its folder with another stage (attributions/: attribute and trial; embeddings/:
embed and retrain)."""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.parquet as pq

from voxray.io.storage import Storage


def drop_rows(storage: Storage, rel_dir: str, where: pc.Expression) -> int:
    """Remove the rows matching ``where`` from every Parquet file below ``rel_dir``: a file
    left without rows is deleted, one with some is rewritten atomically under its own name
    (a retried write task still replaces it). Returns the rows removed."""
    removed = 0
    for rel in storage.parquet_files(rel_dir):
        with storage.open(rel) as f:
            table = pq.read_table(f)
        kept = table.filter(~where)
        if kept.num_rows == table.num_rows:
            continue
        removed += table.num_rows - kept.num_rows
        if kept.num_rows:
            storage.write_table(rel, kept)
        else:
            storage.remove(rel)
    return removed
