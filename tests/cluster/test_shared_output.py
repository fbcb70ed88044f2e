"""Outputs every node can see: a run on a multi-node cluster whose --out is node-local fails
before any work, saying to use s3:// or a shared filesystem; on one node it is accepted.
On one machine every node shares the filesystem, so the worker nodes here are started with
VOXRAY_SIMULATE_NODE_ROOT: their probe reads local paths below a folder of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cluster import LocalCluster
from voxray.io.storage import Storage
from voxray.pipeline.visibility import NODE_ROOT_ENV, OutputNotSharedError, check_output_visible

pytestmark = pytest.mark.ray


def test_node_local_out_is_refused_on_two_nodes(smoke_corpus: Path, tmp_path: Path) -> None:
    envs = [{NODE_ROOT_ENV: str(tmp_path / f"node{i}")} for i in range(2)]
    cluster = LocalCluster(2, worker_env=envs)
    try:
        out = tmp_path / "out"
        proc = cluster.smoke_run(smoke_corpus, out, check=False, timeout=300)
    finally:
        cluster.shutdown()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert f"{out} is not visible from 2 of 3 Ray nodes" in proc.stderr
    assert "s3://" in proc.stderr and "shared filesystem" in proc.stderr
    # refused before any work: no lock taken, no stage started, no probe left behind
    assert not out.exists() or not list(out.iterdir())


def test_node_local_out_is_accepted_on_one_node(tmp_path: Path) -> None:
    import ray

    cluster = LocalCluster(0, head_cpus=1)
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        out = Storage(str(tmp_path / "out"))
        assert check_output_visible(out) == 1
        assert out.find() == []  # the probe is removed
        # the same check refuses the folder once a node that cannot read it joins
        cluster.add_worker({NODE_ROOT_ENV: str(tmp_path / "elsewhere")})
        cluster.cluster.wait_for_nodes()
        with pytest.raises(OutputNotSharedError, match="1 of 2 Ray nodes"):
            check_output_visible(out)
    finally:
        ray.shutdown()
        cluster.shutdown()
