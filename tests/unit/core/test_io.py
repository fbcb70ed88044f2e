"""Storage, atomic Parquet parts, idempotent sink writes, resume keys, the output lock,
redaction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from voxray import schema
from voxray.io.run_state import (
    OutputLock,
    OutputLockedError,
    mark_stage_done,
    stage_done,
    stage_info,
)
from voxray.io.sink import (
    ParquetSink,
    committed_keys,
    part_name,
    quarantined_paths,
    table_sink,
    write_partitioned,
    write_quarantine,
)
from voxray.io.storage import Storage, StorageError
from voxray.log import redact


def _features(ids: list[str], kind: str = "fbank") -> pa.Table:
    mats = [np.full((3, 2), i, np.float32) for i in range(len(ids))]
    return pa.table(
        {
            "utt_id": ids,
            "kind": [kind] * len(ids),
            "num_frames": pa.array([3] * len(ids), pa.int32()),
            "num_bins": pa.array([2] * len(ids), pa.int32()),
            "values": schema.floats_column(mats),
        }
    )


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    s.write_text("a/b.txt", "hello")
    s.write_text("a/b.txt", "world")
    assert s.read_text("a/b.txt") == "world"
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.txt"]


def test_find_skips_hidden_and_temporary(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    s.write_table("d/part-1.parquet", _features(["x"]))
    (tmp_path / "d" / ".tmp-123-part-2.parquet").write_bytes(b"half a file")
    (tmp_path / "d" / "_stages").mkdir()
    (tmp_path / "d" / "_stages" / "x.parquet").write_bytes(b"")
    assert s.parquet_files("d") == ["d/part-1.parquet"]
    assert s.read_table("d").num_rows == 1


def test_relative_rejects_outside(tmp_path: Path) -> None:
    s = Storage(str(tmp_path / "root"))
    with pytest.raises(StorageError, match="outside"):
        s.relative(str(tmp_path / "elsewhere" / "f"))


def test_unsupported_scheme() -> None:
    with pytest.raises(StorageError, match="unsupported storage URI"):
        _ = Storage("gs://bucket/x").fs


def test_partitioned_write_and_hive_read(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    t = pa.concat_tables([_features(["a", "b"], "fbank"), _features(["a"], "mfcc")])
    write_partitioned(s, "features", t, schema.FEATURES, ("utt_id", "kind"), partition="kind")
    assert sorted(p.name for p in (tmp_path / "features").iterdir()) == ["kind=fbank", "kind=mfcc"]
    back = s.read_table("features").to_pandas()
    assert sorted(zip(back.utt_id, back.kind, strict=True)) == [
        ("a", "fbank"),
        ("a", "mfcc"),
        ("b", "fbank"),
    ]
    assert committed_keys(s, "features", ("utt_id", "kind")) == {
        ("a", "fbank"),
        ("a", "mfcc"),
        ("b", "fbank"),
    }


def test_rewriting_the_same_rows_replaces_not_duplicates(tmp_path: Path) -> None:
    """A retried write task produces the same part name, so rows are never duplicated."""
    s = Storage(str(tmp_path))
    t = _features(["a", "b"])
    for _ in range(3):
        write_partitioned(s, "features", t, schema.FEATURES, ("utt_id", "kind"), partition="kind")
    assert s.read_table("features").num_rows == 2
    assert part_name(t, ("utt_id",)) == part_name(_features(["a", "b"]), ("utt_id",))
    assert part_name(t, ("utt_id",)) != part_name(_features(["a", "c"]), ("utt_id",))


def test_sink_routes_errors_to_quarantine(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    t = _features(["good", "bad"]).append_column("path", pa.array(["wav/g.wav", "wav/b.wav"]))
    t = t.append_column("error", pa.array([None, "silent audio"], pa.string()))
    sink = ParquetSink(
        s, "features", schema.FEATURES, ("utt_id", "kind"), partition="kind", stage="features"
    )
    assert sink.write([t], None) == (1, 1)
    assert committed_keys(s, "features", ("utt_id", "kind")) == {("good", "fbank")}
    q = s.read_table("quarantine.parquet").to_pylist()
    # a decoding/probing error is the file's own: cause "input", never retried
    assert q == [
        {"path": "wav/b.wav", "stage": "features", "reason": "silent audio", "cause": "input"}
    ]
    assert quarantined_paths(s, "features") == {"wav/b.wav"}
    assert quarantined_paths(s, "manifest") == set()


def test_a_batch_of_the_batch_schema_is_split_by_the_sink(tmp_path: Path) -> None:
    """The attribute actors' batch schema: the contract's columns (optional ones null), the
    partition column and a failed row's path, reason and cause, which the sink routes to
    quarantine with that cause while the good row lands in its method's partition."""
    batch = schema.batch_schema(
        schema.ATTRIBUTIONS, schema.ATTRIBUTIONS_PARTITION, (*schema.FAILED_ROW, "cause")
    )
    assert batch.names[: len(schema.ATTRIBUTIONS)] == schema.ATTRIBUTIONS.names
    assert batch.names[len(schema.ATTRIBUTIONS) :] == ["method", "path", "error", "cause"]
    assert schema.batch_schema(schema.MASKED, "method", failed=()).names[-1] == "method"
    maps = [np.ones((3, 2), np.float32), np.zeros(0, np.float32)]
    t = schema.table(
        batch,
        {
            "utt_id": ["good", "bad"],
            "model": ["m", "m"],
            "method": ["saliency", "saliency"],
            "pathway": ["traversal", "traversal"],
            "params": ["{}", "{}"],
            "target": [-1, -1],
            "num_frames": [3, 0],
            "num_bins": [2, 0],
            "values": schema.floats_column(maps),
            "freq_profile": schema.floats_column([np.ones(2, np.float32), maps[1]]),
            "completeness_error": [0.1, None],
            "path": ["attr/good", "attr/bad"],
            "error": [None, "saliency/traversal: not finite"],
            "cause": [None, "compute"],
        },
    )
    assert t.column("list").null_count == 2  # the trial pathway's columns, null here
    keys = ("utt_id", "method", "pathway")
    s = Storage(str(tmp_path))
    sink = table_sink(s, schema.ATTRIBUTIONS_PATH, keys, "attribute", 0)
    assert (sink.schema, sink.partition) == (schema.ATTRIBUTIONS, "method")
    assert sink.write([t], None) == (1, 1)
    assert committed_keys(s, "attributions", keys) == {("good", "saliency", "traversal")}
    assert [r["cause"] for r in s.read_table("quarantine.parquet").to_pylist()] == ["compute"]
    with pytest.raises(KeyError, match="error"):
        schema.table(batch, {n: [] for n in batch.names if n != "error"})


def test_quarantine_parts_are_idempotent(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    rows = pa.table({"path": ["x"], "error": ["bad"]})
    write_quarantine(s, "manifest", rows)
    write_quarantine(s, "manifest", rows)
    assert s.read_table("quarantine.parquet").num_rows == 1


def test_stage_markers(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    assert not stage_done(s, "features")
    mark_stage_done(s, "features", {"outputs": 3})
    assert stage_done(s, "features") and stage_info(s, "features")["outputs"] == 3


def test_lock_refuses_a_second_run(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    with OutputLock(s):
        code = (
            "from voxray.io.storage import Storage; from voxray.io.run_state import OutputLock; "
            "OutputLock(Storage(%r)).acquire()" % str(tmp_path)
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0 and "another voxray run is writing to this --out" in proc.stderr
    assert not (tmp_path / "_lock.json").exists()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import json
    import socket

    (tmp_path / "_lock.json").write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": 0})
    )
    with OutputLock(s):
        assert json.loads((tmp_path / "_lock.json").read_text())["pid"] == os.getpid()
    live = {"pid": os.getppid(), "host": socket.gethostname(), "since": 0}
    (tmp_path / "_lock.json").write_text(json.dumps(live))
    with pytest.raises(OutputLockedError, match=f"held by pid {os.getppid()}"):
        OutputLock(s).acquire()


def test_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-VALUE-xyz")
    text = "failed with key s3cr3t-VALUE-xyz at s3://AKIA:s3cr3t@bucket/x"
    out = redact(text)
    assert "s3cr3t" not in out and "***" in out


def test_forced_rerun_clears_part_markers_but_a_crash_keeps_them(tmp_path: Path) -> None:
    from voxray.io.run_state import clear_stage

    s = Storage(str(tmp_path))
    mark_stage_done(s, "evaluate.verification", {})
    clear_stage(s, "evaluate")  # the stage never completed: an interrupted run resumes its parts
    assert stage_done(s, "evaluate.verification")
    mark_stage_done(s, "evaluate", {})
    clear_stage(s, "evaluate")  # complete and run again: every part is redone
    assert not stage_done(s, "evaluate.verification") and not stage_done(s, "evaluate")


def test_s3_reads_see_parts_another_process_wrote(tmp_path: Path, s3_endpoint: str) -> None:
    """Ray workers write parts into prefixes the driver has listed already; a cached listing
    made the driver's read of its own attributions fail with FileNotFoundError."""
    from tests.support.s3 import create_bucket, upload_tree
    from voxray.config import S3Config

    create_bucket("voxray-io", s3_endpoint)
    store = Storage("s3://voxray-io/run", S3Config(endpoint_url=s3_endpoint))
    write_partitioned(store, "features", _features(["a"]), schema.FEATURES, ("utt_id",))
    assert store.read_table("features").num_rows == 1  # the prefix is listed once
    other = Storage(str(tmp_path / "other"))
    write_partitioned(other, "features", _features(["b", "c"]), schema.FEATURES, ("utt_id",))
    upload_tree(tmp_path / "other", "s3://voxray-io/run", s3_endpoint)  # another client
    assert len(store.parquet_files("features")) == 2
    assert sorted(store.read_table("features").column("utt_id").to_pylist()) == ["a", "b", "c"]
