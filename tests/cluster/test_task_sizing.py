"""A task is sized to one node: on a head without CPUs plus two 2-CPU workers the cluster has 4
CPUs but no task asking for 4 can ever start (the evaluate stage's analyses hung that way)."""

from __future__ import annotations

import pytest

from tests.support.cluster import WORKER_CPUS, LocalCluster
from voxray.pipeline.ray_env import cluster_cpus, largest_node_cpus

pytestmark = pytest.mark.ray


def test_largest_node_not_the_cluster_total() -> None:
    import ray

    cluster = LocalCluster(2)
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        assert cluster_cpus() == 2 * WORKER_CPUS
        assert largest_node_cpus() == WORKER_CPUS
        # a task of the largest node's size runs; one of the cluster's total would never start
        fits = ray.remote(lambda: "ran").options(num_cpus=largest_node_cpus())
        assert ray.get(fits.remote(), timeout=120) == "ran"
    finally:
        ray.shutdown()
        cluster.shutdown()
