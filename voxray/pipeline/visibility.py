"""Outputs every node can see: checked once, before a run does any work.

Ray Data write tasks run on whichever node holds the block, and Ray Train and Tune write
their checkpoints from the worker nodes. A ``--out`` that is a node-local folder on a
multi-node cluster would scatter Parquet parts and checkpoints over the nodes' disks, and
every later stage would read a different subset. So the driver writes a probe file under
``--out`` and one task pinned to each alive node reads it back; a node that cannot read it
stops the run with a message naming the node. Ray Train's and Tune's storage paths live
under ``--out`` (``models/<name>/ray``, ``tune/ray``), so the same probe covers them.
"""

from __future__ import annotations

import os
import uuid

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from voxray.config import ConfigError
from voxray.io.storage import Storage
from voxray.log import get_logger

log = get_logger(__name__)
PROBE_PREFIX = "_probe-"
#: seconds to wait for every node's probe task (a fresh node may need to start a worker).
PROBE_TIMEOUT_S = 180.0
#: tests only: a node whose raylet has this variable reads local paths below it, as if its
#: disk were its own (on one machine every simulated node shares the same filesystem).
NODE_ROOT_ENV = "VOXRAY_SIMULATE_NODE_ROOT"


class OutputNotSharedError(ConfigError):
    """``--out`` is not the same folder on every node of the cluster."""


@ray.remote(num_cpus=0, max_retries=1)
def _read_probe(out: Storage, rel: str) -> str:
    """The probe's content as this node sees it ('' when it cannot read it)."""
    root = os.environ.get(NODE_ROOT_ENV)
    if root and not out.is_s3:
        out = Storage(os.path.join(root, out.path().lstrip("/")), out.s3)
    try:
        return out.read_text(rel)
    except OSError:
        return ""


def _node_name(node: dict) -> str:
    return f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})"


def check_output_visible(out: Storage) -> int:
    """Raise OutputNotSharedError unless every alive node reads the driver's probe under
    ``out``; returns the number of nodes checked (1, unprobed, when the only node is the
    driver's own)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if [n["NodeID"] for n in nodes] == [ray.get_runtime_context().get_node_id()]:
        # the driver's own node is the only one (the embedded local Ray): it sees what it
        # writes, and a probe task would only cost a worker process's start
        return 1
    token = uuid.uuid4().hex
    rel = f"{PROBE_PREFIX}{token}"
    out.write_text(rel, token)
    try:
        refs = [
            _read_probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(out, rel)
            for n in nodes
        ]
        seen = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    finally:
        out.remove(rel)
    blind = [_node_name(n) for n, got in zip(nodes, seen, strict=True) if got != token]
    if blind:
        raise OutputNotSharedError(
            f"out: {out.uri()} is not visible from {len(blind)} of {len(nodes)} Ray nodes "
            f"({', '.join(blind)}): on a multi-node cluster use s3://bucket/prefix or a shared "
            "filesystem mounted at the same path on every node"
        )
    log.info("out: %s is visible from all %d Ray nodes", out.uri(), len(nodes))
    return len(nodes)
