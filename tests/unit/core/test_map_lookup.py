"""Attribution maps fetched by key (the mask stage's replacement for a Ray Data join): the
index names the file of every (utterance, pathway), and a read returns exactly the maps asked
for, across files, or names the file that lacks one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from voxray import schema
from voxray.io.storage import Storage
from voxray.pipeline.map_lookup import index_maps, read_maps


def _write_part(s: Storage, name: str, rows: list[tuple[str, str, np.ndarray]]) -> None:
    n = len(rows)
    t = pa.table(
        {
            "utt_id": [u for u, _, _ in rows],
            "model": ["ecapa"] * n,
            "pathway": [p for _, p, _ in rows],
            "num_frames": pa.array([m.shape[0] for _, _, m in rows], pa.int32()),
            "num_bins": pa.array([m.shape[1] for _, _, m in rows], pa.int32()),
            "values": schema.floats_column([m for _, _, m in rows]),
        }
    )
    s.write_table(f"attributions/method=saliency/{name}.parquet", t)


def test_every_map_is_found_in_its_own_file_and_only_asked_maps_return(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    rng = np.random.default_rng(0)
    maps = {
        (f"u{i}", p): rng.standard_normal((3 + i, 4)).astype(np.float32)
        for i in range(5)
        for p in ("traversal", "classification")
    }
    keys = sorted(maps)
    _write_part(s, "part-a", [(u, p, maps[(u, p)]) for u, p in keys[:6]])
    _write_part(s, "part-b", [(u, p, maps[(u, p)]) for u, p in keys[6:]])

    index = index_maps(s, "saliency")
    assert set(index) == set(maps)
    assert {index[k] for k in keys[:6]} == {"attributions/method=saliency/part-a.parquet"}
    assert {index[k] for k in keys[6:]} == {"attributions/method=saliency/part-b.parquet"}

    # one utterance along one pathway only, from both files: its other pathway stays unread
    wanted = [("u0", "traversal"), ("u4", "classification")]
    found = read_maps(s, index, wanted)
    assert set(found) == set(wanted)
    for k in wanted:
        np.testing.assert_array_equal(found[k], maps[k].ravel())

    assert index_maps(s, "deeplift") == {}


def test_a_file_that_lost_an_indexed_map_is_named(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    m = np.ones((2, 2), np.float32)
    _write_part(s, "part-a", [("u0", "traversal", m)])
    index = index_maps(s, "saliency")
    index[("u1", "traversal")] = index[("u0", "traversal")]
    with pytest.raises(KeyError, match="part-a.parquet"):
        read_maps(s, index, [("u1", "traversal")])
