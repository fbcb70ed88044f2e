"""Attribution maps fetched by key inside a stage's actors, not joined by Ray Data.

The mask stage needs each utterance's map (and, for a shuffled control, another speaker's)
beside its features. A Ray Data join hash-shuffles both sides through aggregator actors,
which costs 70-90 s before its first row on 2 CPUs whatever the size (measured with Ray 2.60:
18 rows, 72 s; the mask stage paid two joins per method). Instead the driver indexes which
committed file holds each map (one scan of two columns and the file name), and an actor reads,
per batch, only the files that hold that batch's maps.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

import numpy as np

from voxray import schema
from voxray.io.storage import Storage
from voxray.pipeline.context import ATTRIBUTIONS

#: (utt_id, pathway): one map of one method.
MapKey = tuple[str, str]


def index_maps(storage: Storage, method: str) -> dict[MapKey, str]:
    """(utt_id, pathway) -> the committed Parquet file (relative to ``storage``) holding that
    map of ``method``; empty when the method has no maps yet."""
    rel = f"{ATTRIBUTIONS}/method={method}"
    if not storage.parquet_files(rel):
        return {}
    t = storage.dataset(rel).to_table(columns=["utt_id", "pathway", "__filename"])
    return {
        (u, p): storage.relative(f)
        for u, p, f in zip(
            t.column("utt_id").to_pylist(),
            t.column("pathway").to_pylist(),
            t.column("__filename").to_pylist(),
            strict=True,
        )
    }


def read_maps(
    storage: Storage, index: Mapping[MapKey, str], keys: Iterable[MapKey]
) -> dict[MapKey, np.ndarray]:
    """The flat map values of ``keys``: one filtered read per file of ``index`` they sit in."""
    by_file: dict[str, set[MapKey]] = defaultdict(set)
    for key in keys:
        by_file[index[key]].add(key)
    found: dict[MapKey, np.ndarray] = {}
    for rel, wanted in by_file.items():
        where = schema.is_in(schema.ATTRIBUTIONS, "utt_id", sorted({u for u, _ in wanted}))
        t = storage.read_table(rel, columns=["utt_id", "pathway", "values"], filter=where)
        for u, p, v in zip(
            t.column("utt_id").to_pylist(),
            t.column("pathway").to_pylist(),
            schema.column_arrays(t, "values"),
            strict=True,
        ):
            if (u, p) in wanted:
                found[(u, p)] = v
        missing = wanted - found.keys()
        if missing:
            raise KeyError(
                f"{storage.uri(rel)} lacks the maps it was indexed for: {sorted(missing)}"
            )
    return found
