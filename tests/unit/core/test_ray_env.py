"""Actor pools leave room for the read tasks that feed them (a pool holding every CPU waits
forever for input that is never read: seen as a hang with two actors on two CPUs)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from voxray.config import RayConfig, ResourceConfig
from voxray.faults import InjectedFault
from voxray.pipeline import ray_env


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch):
    def set_cluster(cpus: float, gpus: float = 0.0) -> None:
        monkeypatch.setattr(ray_env, "node_cpus", lambda: [cpus])
        monkeypatch.setattr(ray_env, "cluster_gpus", lambda: gpus)

    return set_cluster


@pytest.mark.parametrize("cpus, concurrency", [(2, 1), (2, 2), (3, 2), (4, 8), (32, 16)])
def test_pool_leaves_a_cpu_for_its_reads(cluster, cpus: float, concurrency: int) -> None:
    cluster(cpus)
    res = ray_env.actor_resources(ResourceConfig(num_cpus=2, concurrency=concurrency))
    assert res["num_cpus"] > 0
    # Ray Data's write tasks ask for a whole CPU; reads ask for DATA_TASK_CPUS
    assert res["num_cpus"] * concurrency + 1.0 <= cpus + 1e-9


def test_roomy_cluster_gets_what_was_asked(cluster) -> None:
    cluster(64, gpus=8)
    res = ray_env.actor_resources(ResourceConfig(num_cpus=2, concurrency=8, num_gpus="auto"))
    assert res == {"num_cpus": 2.0, "num_gpus": 1.0, **ray_env.actor_retries()}


@pytest.mark.parametrize(
    "nodes, wanted, concurrency, expected",
    [
        ([2, 2, 2], 3.0, 2, 1.0),  # cluster-wide: 2.5 CPUs each, more than any node has
        ([2, 2, 2], 2.0, 3, 1.0),  # cluster-wide: 5/3 each, and a node left with no reserve
        ([8, 2], 4.0, 3, 7 / 3),  # all three on the big node: 3.5 each leaves one unplaced
        ([2], 2.0, 2, 0.5),  # one node, as before: 1 CPU of room for two actors
        ([64, 64], 2.0, 8, 2.0),  # roomy: what was asked
        ([1, 1], 1.0, 2, ray_env.DATA_TASK_CPUS / 2),  # one-CPU nodes: the read tasks' share
    ],
)
def test_actor_cpus_leave_the_reserve_on_every_node(
    nodes: list[float], wanted: float, concurrency: int, expected: float
) -> None:
    cpus = ray_env.actor_cpus(nodes, wanted, concurrency)
    assert cpus == pytest.approx(expected)
    rooms = [max(c - ray_env.FEED_RESERVE_CPUS, 0) for c in nodes]
    if any(rooms):  # every actor placed on a node that keeps its reserve
        assert sum(int(r / cpus + 1e-9) for r in rooms) >= concurrency
        assert cpus <= max(rooms)


def test_actor_retries_are_bounded() -> None:
    # Ray Data's default (-1) retries a worker-killing batch forever
    assert all(0 < n < 10 for n in ray_env.actor_retries().values())


def test_auto_gpus_on_a_cpu_cluster(cluster) -> None:
    cluster(2)
    assert ray_env.actor_resources(ResourceConfig(num_gpus="auto"))["num_gpus"] == 0.0


def test_training_source_cached_only_when_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 2**30
    monkeypatch.setattr(ray_env, "cluster_object_store_bytes", lambda: 4.0 * gib)
    assert ray_env.fits_in_object_store(gib)  # a quarter of the store
    assert not ray_env.fits_in_object_store(gib + 1)  # VoxCeleb-size: streamed every epoch
    assert not ray_env.fits_in_object_store(0)  # nothing to cache (or nothing known)


def test_ray_data_is_set_up_for_small_machines() -> None:
    from ray.data import DataContext

    ray_env.configure_ray_data(progress_bars=False, no_progress_timeout_s=-1)
    ctx = DataContext.get_current()
    # a slow batch is not a hang (voxray's stall watch handles lost nodes)
    assert ctx.execution_no_progress_timeout_s == -1
    ray_env.configure_ray_data(False, RayConfig().no_progress_timeout_s)
    assert ctx.execution_no_progress_timeout_s == 4 * 3600
    # DataSourceV2's file listing waits on footer actors that a pool beside it can starve
    assert ctx.use_datasource_v2 is False
    # every stage accounts for every row: no block may be dropped silently
    assert ctx.max_errored_blocks == 0 and ctx.enable_progress_bars is False
    # a failed actor task is retried for an injected fault (tests/reliability), not a real error
    assert ctx.actor_task_retry_on_errors == [InjectedFault]


def test_a_pool_grows_to_max_concurrency_when_one_is_set() -> None:
    from voxray.pipeline.datasets import pool_strategy

    fixed = pool_strategy(ResourceConfig(concurrency=2))
    assert (fixed.min_size, fixed.max_size) == (2, 2)
    growing = pool_strategy(ResourceConfig(concurrency=2, max_concurrency=6))
    assert (growing.min_size, growing.max_size) == (2, 6)


def test_max_concurrency_below_concurrency_fails_naming_the_key() -> None:
    from voxray.config import ConfigError, load_config

    bad = ["embed.resources.concurrency=3", "embed.resources.max_concurrency=2"]
    with pytest.raises(ConfigError, match=r"embed\.resources.*max_concurrency"):
        load_config(overrides=bad)


def test_a_local_start_that_ray_timed_out_is_tried_again(monkeypatch) -> None:
    """Ray's fixed 30 s raylet wait fails on a busy machine: that failure alone is retried."""
    import ray

    from voxray.config import RayConfig

    calls: list[str] = []

    def init(address: str, **kwargs) -> None:
        calls.append(address)
        if len(calls) == 1:
            raise Exception("The current node timed out during startup. This could happen ...")

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    ray_env._start_or_join(RayConfig())
    assert calls == ["local", "local"]

    def broken(address: str, **kwargs) -> None:
        calls.append(address)
        raise Exception("some other failure")

    calls.clear()
    monkeypatch.setattr(ray, "init", broken)
    with pytest.raises(Exception, match="some other failure"):
        ray_env._start_or_join(RayConfig())
    assert calls == ["local"]


def test_actor_threads_share_a_nodes_cores_among_its_actors(monkeypatch) -> None:
    monkeypatch.delenv(ray_env.THREADS_ENV, raising=False)
    # one actor on a 2-core node computes on both cores (Ray's grant of 1 CPU gave it one)
    assert ray_env.actor_threads(ResourceConfig(concurrency=1), [2.0]) == 2
    assert ray_env.actor_threads(ResourceConfig(concurrency=2), [2.0]) == 1
    assert ray_env.actor_threads(ResourceConfig(concurrency=3), [2.0]) == 1  # never below one
    # three 2-core nodes, two actors spread over them: each has a node to itself
    assert ray_env.actor_threads(ResourceConfig(concurrency=2), [2.0, 2.0, 2.0]) == 2
    # the smallest node bounds it (actors may land there); a CPU-less head node does not count
    assert ray_env.actor_threads(ResourceConfig(concurrency=2), [0.0, 8.0, 4.0]) == 4
    assert ray_env.actor_threads(ResourceConfig(concurrency=2, threads=3), [2.0]) == 3
    # a machine shared by several runs says so in the environment; a pool's own setting wins
    monkeypatch.setenv(ray_env.THREADS_ENV, "1")
    assert ray_env.actor_threads(ResourceConfig(concurrency=1), [2.0]) == 1
    assert ray_env.actor_threads(ResourceConfig(concurrency=1, threads=2), [2.0]) == 2


KILLS_ITS_TREE = """
import subprocess, sys, time
from voxray.pipeline import ray_env
tree = subprocess.Popen(["bash", "-c", "sleep 60 & sleep 60 & wait"])
while len(ray_env.descendants(tree.pid)) < 2:  # bash's two sleeps
    time.sleep(0.05)
below = ray_env.descendants(tree.pid)
print(tree.pid, *below)
assert ray_env.stop_local_ray_now() == 3, ray_env.descendants(tree.pid)
"""


def test_the_command_kills_every_process_below_it_at_its_end() -> None:
    """What a command leaves at its end (its local Ray's GCS, raylet, agents, workers: here a
    shell and its two children) is killed at once, grandchildren included."""
    proc = subprocess.run(
        [sys.executable, "-c", KILLS_ITS_TREE], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    pids = [int(p) for p in proc.stdout.split()]
    assert len(pids) == 3
    for pid in pids:  # gone, or a zombie waiting for init to reap it
        try:
            assert ray_env.proc_stat(pid).state == "Z"
        except FileNotFoundError:
            pass
