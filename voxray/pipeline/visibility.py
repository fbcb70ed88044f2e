"""Outputs every node can see: checked once, before a run does any work.

Ray Data write tasks run on whichever node holds the block, and Ray Train and Tune write
their checkpoints from the worker nodes. A ``--out`` that is a node-local folder on a
multi-node cluster would scatter Parquet parts and checkpoints over the nodes' disks, and
every later stage would read a different subset. So the driver writes a probe file under
``--out`` and one task pinned to each alive node reads it back; a node that cannot read it
stops the run with a message naming the node. Ray Train's and Tune's storage paths live
under ``--out`` (``models/<name>/ray``, ``tune/ray``), so the same probe covers them.

A node lost just before the command is still listed alive for a while (voxray.nodes): its
probe cannot be scheduled, so it is left out, named in the log, and visibility is judged on
the nodes that answered.
"""

from __future__ import annotations

import os
import uuid

import ray

from voxray.config import ConfigError
from voxray.io.storage import Storage
from voxray.log import get_logger
from voxray.nodes import ask_each_node, listed_alive, node_name, only_driver_node

log = get_logger(__name__)
PROBE_PREFIX = "_probe-"
#: tests only: a node whose raylet has this variable reads local paths below it, as if its
#: disk were its own (on one machine every simulated node shares the same filesystem).
NODE_ROOT_ENV = "VOXRAY_SIMULATE_NODE_ROOT"


class OutputNotSharedError(ConfigError):
    """``--out`` is not the same folder on every node of the cluster."""


class NoWorkerAnsweredError(RuntimeError):
    """Every worker node the cluster lists is gone: a run would have nowhere to work."""


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


def check_output_visible(out: Storage) -> int:
    """Raise OutputNotSharedError unless every node that answers reads the driver's probe
    under ``out`` (NoWorkerAnsweredError when no worker node answers); returns the number of
    nodes that answered (1, unprobed, when the only node is the driver's own)."""
    nodes = listed_alive(ray.nodes())
    if only_driver_node(nodes):
        return 1  # it sees what it writes; a probe would only cost a worker process's start
    token = uuid.uuid4().hex
    rel = f"{PROBE_PREFIX}{token}"
    out.write_text(rel, token)
    try:
        answers = ask_each_node(nodes, _read_probe, out, rel)
    finally:
        out.remove(rel)
    if answers.no_worker_answered():
        raise NoWorkerAnsweredError(
            f"no worker node of the Ray cluster answered the probe of out: {out.uri()} "
            f"({answers.describe_gone()}); wait for the cluster to replace them, or check it "
            "with `ray status`"
        )
    seen = answers.nodes
    blind = [node_name(n) for n, got in answers.answered if got != token]
    if blind:
        raise OutputNotSharedError(
            f"out: {out.uri()} is not visible from {len(blind)} of {len(seen)} Ray nodes "
            f"({', '.join(blind)}): on a multi-node cluster use s3://bucket/prefix or a shared "
            "filesystem mounted at the same path on every node"
        )
    log.info("out: %s is visible from all %d Ray nodes that answered", out.uri(), len(seen))
    return len(seen)
