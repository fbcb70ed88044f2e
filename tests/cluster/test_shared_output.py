"""Outputs every node can see: a run on a multi-node cluster whose --out is node-local fails
before any work, saying to use s3:// or a shared filesystem; on one node it is accepted.
On one machine every node shares the filesystem, so the worker nodes here are started with
VOXRAY_SIMULATE_NODE_ROOT: their probe reads local paths below a folder of their own.
A node lost without drain just before the probe is left out, not waited on (issue #32)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.cluster import WORKER_CPUS, LocalCluster
from voxray.io.storage import Storage
from voxray.pipeline import ray_env
from voxray.pipeline.visibility import (
    NODE_ROOT_ENV,
    NoWorkerAnsweredError,
    OutputNotSharedError,
    check_output_visible,
)


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


def _lose_worker(cluster: LocalCluster) -> str:
    """Remove a worker node without drain, as kill_worker does; its id, which the GCS still
    lists as alive for a while (asserted, or the test would not be testing the window)."""
    import ray

    node = cluster.node_running("")
    cluster.cluster.remove_node(node, allow_graceful=False)
    assert any(n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes())
    return node.node_id


def test_a_node_lost_just_before_the_probe_is_left_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import ray

    cluster = LocalCluster(2)
    nodes_log = logging.getLogger("voxray.nodes")
    nodes_log.addHandler(caplog.handler)  # voxray's logger may not propagate to the root
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        out = Storage(str(tmp_path / "out"))
        assert check_output_visible(out) == 3  # the head and both workers
        lost = _lose_worker(cluster)
        # a stage starts at once: the probe and its pool sizing, both in the window
        with ThreadPoolExecutor(2) as pool:
            cpus = pool.submit(ray_env.cluster_cpus)
            checked = pool.submit(check_output_visible, out)
            assert checked.result() == 2  # the head and the worker left
            assert cpus.result() == WORKER_CPUS  # not the lost node's as well
        gone = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
        assert gone and all(f"({lost[:8]})" in m for m in gone), gone
        assert out.find() == []  # the probe is removed
        # the last worker lost too: no worker answers, and the message says so
        last = _lose_worker(cluster)
        with pytest.raises(NoWorkerAnsweredError, match=f"no worker node.*{last[:8]}"):
            check_output_visible(out)
    finally:
        nodes_log.removeHandler(caplog.handler)
        ray.shutdown()
        cluster.shutdown()
