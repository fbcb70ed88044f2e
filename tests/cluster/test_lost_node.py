"""A node lost without a replacement never hangs a stage (issue 29), and each node keeps its own
CPU free of an actor pool, on a local multi-node Ray (a head with no CPUs, two 2-CPU workers).

The features pool asks for one GPU per actor and each worker node has one (as Ray counts them),
so the lost node's actor has nowhere to restart while the survivor's holds its GPU: the case
that waited for ever. The stage must either finish on the surviving node with every row, or
stop within its stall timeout (plus the time to notice) naming the lost node and the rows left:
stalled, or failed with Ray's error for the actor gone with the node.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support.cluster import WORKER_CPUS, LocalCluster
from tests.support.pipeline import accounts_for_inputs, start_cli
from voxray.config import ResourceConfig
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.pipeline import ray_env

#: the stage's stall timeout here (resources.stall_timeout_s; 300 s by default).
STALL_S = 20
#: on top of it: the survivor's last batches before the stage goes idle, the GCS finding the
#: node dead, the watch's node reads (every 5 s), the pool's stop and the command's exit, on a
#: loaded 2-core machine. A hang runs past it.
SLACK_S = 100
#: every batch sleeps this long on the worker nodes, so the node dies mid-stage.
SLOW = {"VOXRAY_SLOW_BATCH_S": "1.0"}
FEATURES = [
    "--profile",
    "smoke",
    "features.resources.batch_size=4",
    "features.resources.rows_per_file=4",
    "features.resources.concurrency=2",
    "features.resources.num_gpus=1",
    f"features.resources.stall_timeout_s={STALL_S}",
]


def _features_losing_a_node(corpus: Path, out: Path) -> tuple[int, str, float, str]:
    """``voxray features`` on a fresh cluster; once some rows are written, one worker node is
    removed without drain and none replaces it. (exit code, stderr tail, seconds from the loss
    to the command's end, the lost node's id)."""
    cluster = LocalCluster(2, worker_env=[SLOW, SLOW], worker_gpus=1)
    try:
        args = ("features", "--data-root", str(corpus), "--out", str(out), *FEATURES)
        proc = start_cli(*args, env={"RAY_ADDRESS": cluster.address})
        _wait_for_rows(proc, out)
        lost = cluster.kill_worker("MapWorker")
        lost_at = time.monotonic()
        try:
            _, stderr = proc.communicate(timeout=STALL_S + SLACK_S + 120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        return proc.returncode, stderr[-3000:], time.monotonic() - lost_at, lost
    finally:
        cluster.shutdown()


def _wait_for_rows(proc: subprocess.Popen, out: Path) -> None:
    """Until the features stage has written some rows (the command still running)."""
    deadline = time.monotonic() + 600
    while not list(out.glob("features/**/part-*.parquet")):
        assert proc.poll() is None, "features ended before a node could be lost"
        assert time.monotonic() < deadline, "features wrote nothing in 600 s"
        time.sleep(0.2)


# --full only until it passes in a whole default run (not yet seen passing on a quiet machine)
@pytest.mark.slow
def test_a_node_lost_without_replacement_finishes_or_fails_within_the_bound(
    smoke_corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    code, stderr, elapsed, lost = _features_losing_a_node(smoke_corpus, out)
    outcome = "completed" if code == 0 else "stopped"
    print(f"lost node {lost[:8]}: {outcome} {elapsed:.0f} s after the loss (exit {code})")
    assert elapsed < STALL_S + SLACK_S, f"{elapsed:.0f} s: hung?\n{stderr}"
    if code == 0:  # finished on the surviving node: every utterance, none left out
        info = stage_info(Storage(str(out)), "features")
        assert accounts_for_inputs(info) and info["inputs"] > 0, info
        utts = pq.read_table(out / "manifest.parquet", columns=["utt_id"]).num_rows
        assert info["outputs"] == utts
        return
    error = "voxray: LostNodeError: stage features: "
    line = next((line for line in stderr.splitlines() if line.startswith(error)), stderr)
    print(line)
    assert "after losing Ray node " in line and f"({lost[:8]})" in line, line
    assert " left to compute, " in line and "rerun to resume" in line, line
    # stalled for its timeout, or failed with Ray's error for the actor gone with the node
    stalled = f"(resources.stall_timeout_s={STALL_S}) after losing" in line
    assert stalled or "failed with " in line, line


def test_the_reserved_cpu_is_kept_free_on_every_node() -> None:
    """Two actors wanting 2 CPUs each get 1 each (counted cluster-wide, 4 - 1 CPUs would give
    them 1.5, leaving each node half a CPU): once both are placed, a task wanting the whole
    reserved CPU still runs on each worker node."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    cluster = LocalCluster(2)
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        res = ray_env.actor_resources(ResourceConfig(num_cpus=2, concurrency=2, num_gpus=0))
        assert res["num_cpus"] == WORKER_CPUS - ray_env.FEED_RESERVE_CPUS

        @ray.remote
        class Holder:
            def node(self) -> str:
                return ray.get_runtime_context().get_node_id()

        # spread, as Ray Data places a pool's actors
        holder = Holder.options(num_cpus=res["num_cpus"], scheduling_strategy="SPREAD")
        holders = [holder.remote() for _ in range(2)]
        hosts = ray.get([h.node.remote() for h in holders], timeout=120)
        workers = {n.node_id for n in cluster.cluster.worker_nodes}
        assert set(hosts) == workers  # one actor on each worker node
        reserve = ray.remote(num_cpus=ray_env.FEED_RESERVE_CPUS)(lambda: "ran")
        pinned = [
            reserve.options(scheduling_strategy=NodeAffinitySchedulingStrategy(w, soft=False))
            for w in sorted(workers)
        ]
        assert ray.get([t.remote() for t in pinned], timeout=120) == ["ran", "ran"]
    finally:
        ray.shutdown()
        cluster.shutdown()
