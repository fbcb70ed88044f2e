"""ParquetSink under Ray Data: rows_per_file gathers batch-sized blocks into fewer files
(one per partition value), losing and duplicating nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from voxray import schema
from voxray.io.sink import ParquetSink, committed_keys
from voxray.io.storage import Storage

KEYS = ("utt_id", "kind")


def _block(ids: list[str], kind: str) -> pa.Table:
    mats = [np.full((3, 2), i, np.float32) for i in range(len(ids))]
    n = len(ids)
    return pa.table(
        {
            "utt_id": ids,
            "kind": [kind] * n,
            "num_frames": pa.array([3] * n, pa.int32()),
            "num_bins": pa.array([2] * n, pa.int32()),
            "values": schema.floats_column(mats),
        }
    )


@pytest.mark.parametrize(("rows_per_file", "files_per_kind"), [(0, 10), (16, 5), (24, 4)])
def test_rows_per_file(ray_local, tmp_path: Path, rows_per_file: int, files_per_kind: int) -> None:
    ids = [f"id{i:05d}" for i in range(40)]
    # ten blocks of eight rows, four of each kind (two partitions); a write takes whole blocks
    blocks = [
        pa.concat_tables([_block(ids[i : i + 4], "fbank"), _block(ids[i : i + 4], "mfcc")])
        for i in range(0, 40, 4)
    ]
    s = Storage(str(tmp_path))
    sink = ParquetSink(
        s,
        "features",
        schema.FEATURES,
        KEYS,
        partition="kind",
        stage="features",
        rows_per_file=rows_per_file,
    )
    ray_local.data.from_arrow(blocks).write_datasink(sink)
    for kind in ("fbank", "mfcc"):
        assert len(s.parquet_files(f"features/kind={kind}")) == files_per_kind
    assert s.read_table("features").num_rows == 80
    assert committed_keys(s, "features", KEYS) == {(u, k) for u in ids for k in ("fbank", "mfcc")}
