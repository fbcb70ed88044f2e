"""The Ray nodes that answer now, rather than the ones the GCS lists as alive.

A node lost without drain stays ``Alive`` in ``ray.nodes()`` and its CPUs and GPUs stay in
``ray.cluster_resources()`` until the GCS's health checks give up on it (about 14 s on a
local cluster): a task pinned to it fails with TaskUnschedulableError only then. A command
started in that window pinned its visibility probe to the dead node and failed, and pool
sizes counted the dead node's CPUs, so an actor pool could wait for ever for room that is
gone. Whatever reads the cluster's nodes therefore asks each listed node to run a small
task, and counts only the nodes that answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import NodeDiedError, TaskUnschedulableError, WorkerCrashedError
from ray.remote_function import RemoteFunction
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from voxray.log import get_logger

log = get_logger(__name__)

#: Seconds each node has to answer; all are asked at once, so it also bounds the whole wait.
#: A lost node does not use it up: Ray fails the task pinned to it as soon as the GCS finds
#: the node dead (about 14 s locally). It is long because a live node that is merely slow
#: to start a worker process (a loaded machine) must not be counted as gone: the visibility
#: probe would skip a node that cannot see ``--out``. Only a node neither answering nor
#: found dead waits it out.
NODE_ANSWER_TIMEOUT_S = 180.0
#: Ray's errors for a task whose node is gone or died under it (a task that raised is not one).
NODE_GONE_ERRORS = (TaskUnschedulableError, NodeDiedError, WorkerCrashedError)
#: A resource only the head node has.
HEAD_RESOURCE = "node:__internal_head__"


def node_name(node: dict) -> str:
    """Address and id prefix: simulated nodes on one machine share the address."""
    return f"{node['NodeManagerAddress']} ({node['NodeID'][:8]})"


def is_head(node: dict) -> bool:
    return HEAD_RESOURCE in node.get("Resources", {})


def listed_alive(nodes: list[dict]) -> list[dict]:
    """The nodes the GCS lists as alive (including any it has not yet found dead)."""
    return [n for n in nodes if n.get("Alive")]


def resource_total(nodes: list[dict], resource: str, default: float = 0.0) -> float:
    """``resource`` summed over ``nodes``; ``default`` when none of them has it."""
    values = [float(n["Resources"][resource]) for n in nodes if resource in n["Resources"]]
    return sum(values) if values else default


def resource_largest(nodes: list[dict], resource: str, default: float = 0.0) -> float:
    """The most of ``resource`` one node of ``nodes`` has; ``default`` when none has it."""
    return max((float(n["Resources"].get(resource, 0.0)) for n in nodes), default=default)


@dataclass(frozen=True)
class Answers:
    """What each listed node made of one task: (node, returned value) for the nodes that
    answered, (node, why not) for the nodes counted as gone."""

    answered: list[tuple[dict, Any]] = field(default_factory=list)
    gone: list[tuple[dict, str]] = field(default_factory=list)

    @property
    def nodes(self) -> list[dict]:
        return [n for n, _ in self.answered]

    def no_worker_answered(self) -> bool:
        """Worker (non-head) nodes were listed and not one of them answered: the work of a
        run would have nowhere to go."""
        listed = [n for n, _ in self.answered] + [n for n, _ in self.gone]
        return any(not is_head(n) for n in listed) and all(is_head(n) for n in self.nodes)

    def describe_gone(self) -> str:
        return ", ".join(f"{node_name(n)}: {why}" for n, why in self.gone)


def ask_each_node(
    nodes: list[dict], task: RemoteFunction, *args: Any, timeout_s: float = NODE_ANSWER_TIMEOUT_S
) -> Answers:
    """Run ``task(*args)`` pinned to each of ``nodes``, all at once, and sort the nodes into
    those that answered within ``timeout_s`` and those gone (unschedulable, died under the
    task, or silent); each gone node is logged by name."""
    if not nodes:
        return Answers()
    refs = [
        task.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        ).remote(*args)
        for n in nodes
    ]
    ready = set(ray.wait(refs, num_returns=len(refs), timeout=timeout_s)[0])
    outcomes: list[Any] = []
    for ref in refs:
        if ref not in ready:
            ray.cancel(ref)
            outcomes.append(TimeoutError(f"no answer in {timeout_s:.0f} s"))
            continue
        try:
            outcomes.append(ray.get(ref))
        except NODE_GONE_ERRORS as exc:
            outcomes.append(exc)
    answers = sort_answers(nodes, outcomes)
    for node, why in answers.gone:
        log.warning("Ray node %s is gone (%s): left out", node_name(node), why)
    return answers


def sort_answers(nodes: list[dict], outcomes: list[Any]) -> Answers:
    """Pair each node with its task's outcome: a value is an answer; one of NODE_GONE_ERRORS
    (its type is the reason) or a TimeoutError (its message) makes the node gone."""
    answers = Answers()
    for node, outcome in zip(nodes, outcomes, strict=True):
        if isinstance(outcome, TimeoutError):
            answers.gone.append((node, str(outcome)))
        elif isinstance(outcome, NODE_GONE_ERRORS):
            answers.gone.append((node, type(outcome).__name__))
        else:
            answers.answered.append((node, outcome))
    return answers


@ray.remote(num_cpus=0, max_retries=0)
def _here() -> bool:
    return True


def only_driver_node(nodes: list[dict]) -> bool:
    """The driver's own node is the only one (the embedded local Ray): it is where this code
    runs, so it needs no asking."""
    return [n["NodeID"] for n in nodes] == [ray.get_runtime_context().get_node_id()]


def live_nodes() -> list[dict]:
    """The nodes that answer now (the driver's own node alone is not asked)."""
    nodes = listed_alive(ray.nodes())
    if only_driver_node(nodes):
        return nodes
    return ask_each_node(nodes, _here).nodes
