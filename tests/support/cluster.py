"""A multi-node Ray cluster on one machine for tests (``ray.cluster_utils.Cluster``): a head
that holds no work (0 CPUs) and worker nodes with WORKER_CPUS each, as separate raylets with
their own object stores, so a node can be killed the way a spot preemption kills it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

#: small object stores: the corpora here are tiny and the machine is shared.
STORE_BYTES = 160 * 1024 * 1024
#: CPUs of each worker node. Not 1: Ray Data's write tasks ask for one whole CPU, and two
#: half-CPU pool actors on two one-CPU nodes leave no node with a whole CPU free (seen: the
#: attribute pool idle for minutes on such a cluster).
WORKER_CPUS = 2


def _forget_current_cluster(address: str) -> None:
    """Cluster records itself as this machine's current Ray (/tmp/ray/ray_current_cluster),
    where any ``ray.init()`` without an address would join it: take that record back."""
    from ray._private.utils import get_ray_address_file

    record = Path(get_ray_address_file(None))
    if record.is_file() and record.read_text().strip() == address:
        record.unlink()


class LocalCluster:
    """A head (0 CPUs unless told) plus worker nodes; ``kill_worker`` removes one without grace;
    ``worker_env`` sets environment variables of each worker node's raylet and workers;
    ``worker_gpus`` gives each worker node that many GPUs as Ray counts them, real or not (a
    pool that asks for one GPU per actor then fits one actor on each node); None: those found."""

    def __init__(
        self,
        workers: int,
        worker_env: list[dict[str, str]] | None = None,
        head_cpus: int = 0,
        worker_gpus: int | None = None,
    ) -> None:
        import ray
        from ray.cluster_utils import Cluster

        if ray.is_initialized():
            ray.shutdown()  # the session's local Ray: this process connects to one Ray at a time
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={
                "num_cpus": head_cpus,
                "include_dashboard": False,
                "object_store_memory": STORE_BYTES,
            },
        )
        _forget_current_cluster(self.cluster.address)
        self.worker_gpus = worker_gpus
        envs = worker_env or [{} for _ in range(workers)]
        for env in envs:
            self.add_worker(env)
        self.cluster.wait_for_nodes()

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_worker(self, env: dict[str, str] | None = None):
        gpus = {} if self.worker_gpus is None else {"num_gpus": self.worker_gpus}
        return self.cluster.add_node(
            num_cpus=WORKER_CPUS, object_store_memory=STORE_BYTES, env_vars=env or None, **gpus
        )

    def actors(self, actor_class: str) -> list[tuple[str, str]]:
        """(state, node id) of every actor, alive or not, whose class name contains
        ``actor_class`` (Ray Data's ``MapWorker``, Ray Train's ``RayTrainWorker``)."""
        table = self.cluster.global_state.actor_table(None)
        return [
            (a["State"], a["Address"]["NodeID"])
            for a in table.values()
            if actor_class in a["ActorClassName"]
        ]

    def hosts(self, actor_class: str) -> set[str]:
        """The nodes hosting an alive ``actor_class`` actor now (see ``actors``)."""
        return {node for state, node in self.actors(actor_class) if state == "ALIVE"}

    def node_running(self, actor_class: str):
        """A worker node hosting an alive ``actor_class`` actor, else any worker node."""
        hosts = self.hosts(actor_class)
        workers = sorted(self.cluster.worker_nodes, key=lambda n: n.unique_id)
        return next((n for n in workers if n.node_id in hosts), workers[0])

    def kill_worker(self, actor_class: str = "") -> str:
        """Kill a worker node's processes at once (no graceful drain), as a preemption would:
        one hosting an ``actor_class`` actor when there is one. Returns its node id."""
        node = self.node_running(actor_class)
        self.cluster.remove_node(node, allow_graceful=False)
        return node.node_id

    def smoke_run(self, corpus: Path, out: Path, **kwargs: Any) -> subprocess.CompletedProcess:
        """``voxray run --profile smoke`` on this cluster (through RAY_ADDRESS); ``kwargs`` go to
        ``run_cli`` (check, timeout)."""
        from tests.support.pipeline import run_profile

        return run_profile(corpus, out, "smoke", env={"RAY_ADDRESS": self.address}, **kwargs)

    def shutdown(self) -> None:
        self.cluster.shutdown()
