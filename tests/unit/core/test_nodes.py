"""Counting only the Ray nodes that answer (issue #32): a node lost without drain is still
listed alive for a while, and neither the visibility probe nor the pool sizes may count it.
The pure parts, over ``ray.nodes()``-shaped dicts, without Ray."""

from __future__ import annotations

import pytest
from ray.exceptions import NodeDiedError, TaskUnschedulableError, WorkerCrashedError

from voxray import nodes
from voxray.config import ResourceConfig
from voxray.pipeline import ray_env


def _node(node_id: str, cpus: float, gpus: float = 0.0, head: bool = False, alive: bool = True):
    resources = {"CPU": cpus, "memory": 1e9, "object_store_memory": 2e8}
    if gpus:
        resources["GPU"] = gpus
    if head:
        resources[nodes.HEAD_RESOURCE] = 1.0
    return {
        "NodeID": node_id * 7,
        "NodeManagerAddress": "10.0.0.1",
        "Alive": alive,
        "Resources": resources,
    }


HEAD = _node("h0000000", 0, head=True)
A = _node("a1111111", 2)
B = _node("b2222222", 2, gpus=1)


def test_listed_alive_keeps_what_the_gcs_says() -> None:
    dead = _node("d3333333", 8, alive=False)
    assert nodes.listed_alive([HEAD, A, dead, B]) == [HEAD, A, B]


def test_resource_totals_and_largest() -> None:
    assert nodes.resource_total([HEAD, A, B], "CPU") == 4.0
    assert nodes.resource_total([HEAD, A], "GPU") == 0.0
    assert nodes.resource_total([HEAD, A, B], "GPU") == 1.0
    assert nodes.resource_total([], "CPU", default=1.0) == 1.0
    assert nodes.resource_largest([HEAD, A, _node("c4444444", 6)], "CPU") == 6.0
    assert nodes.resource_largest([], "CPU", default=1.0) == 1.0


def test_node_name_tells_nodes_of_one_machine_apart() -> None:
    assert nodes.node_name(A) == "10.0.0.1 (a1111111)"
    assert nodes.node_name(A) != nodes.node_name(B)


def test_sort_answers_drops_the_nodes_that_are_gone() -> None:
    silent = _node("c4444444", 2)
    dead = _node("d3333333", 2)
    crashed = _node("e5555555", 2)
    answers = nodes.sort_answers(
        [HEAD, A, B, silent, dead, crashed],
        [
            "tok",
            "tok",
            TaskUnschedulableError("The node specified ... doesn't exist any more"),
            TimeoutError("no answer in 180 s"),
            NodeDiedError("node died"),
            WorkerCrashedError(),
        ],
    )
    assert answers.answered == [(HEAD, "tok"), (A, "tok")]
    assert answers.nodes == [HEAD, A]
    assert [(n["NodeID"], why) for n, why in answers.gone] == [
        (B["NodeID"], "TaskUnschedulableError"),
        (silent["NodeID"], "no answer in 180 s"),
        (dead["NodeID"], "NodeDiedError"),
        (crashed["NodeID"], "WorkerCrashedError"),
    ]
    assert "10.0.0.1 (b2222222): TaskUnschedulableError" in answers.describe_gone()
    assert not answers.no_worker_answered()


def test_an_empty_answer_is_still_an_answer() -> None:
    # a live node that cannot read the probe answers '' and must be judged, not dropped
    answers = nodes.sort_answers([A, B], ["", "tok"])
    assert answers.answered == [(A, ""), (B, "tok")] and answers.gone == []


def test_sort_answers_needs_one_outcome_per_node() -> None:
    with pytest.raises(ValueError):
        nodes.sort_answers([A, B], ["tok"])


@pytest.mark.parametrize(
    "answered, gone, expected",
    [
        ([HEAD], [A, B], True),  # every worker lost: the head alone answers
        ([], [A], True),
        ([HEAD, B], [A], False),  # one worker lost, one left
        ([HEAD], [], False),  # no worker listed at all (an autoscaler may add them)
        ([A], [HEAD], False),
    ],
)
def test_no_worker_answered(answered: list, gone: list, expected: bool) -> None:
    answers = nodes.Answers([(n, "tok") for n in answered], [(n, "gone") for n in gone])
    assert answers.no_worker_answered() is expected


def test_pool_sizes_count_only_the_nodes_that_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    # the GCS still lists B, lost a moment ago, with its 2 CPUs: only HEAD and A answer
    monkeypatch.setattr(ray_env, "live_nodes", lambda: [HEAD, A])
    assert ray_env.cluster_cpus() == 2.0
    assert ray_env.cluster_gpus() == 0.0
    assert ray_env.largest_node_cpus() == 2.0
    assert ray_env.cluster_object_store_bytes() == 4e8
    res = ray_env.actor_resources(ResourceConfig(num_cpus=2, concurrency=2, num_gpus="auto"))
    # two actors and the feeding write task fit on the 2 CPUs that are left, with no GPU
    assert res["num_cpus"] * 2 + ray_env.FEED_RESERVE_CPUS <= 2.0 and res["num_gpus"] == 0.0


def test_training_counts_only_gpus_that_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from voxray.train import trainer

    monkeypatch.setattr(trainer, "live_nodes", lambda: [HEAD, A])  # B, the GPU node, is lost
    assert trainer.resolve_use_gpu("auto") is False
    monkeypatch.setattr(trainer, "live_nodes", lambda: [HEAD, A, B])
    assert trainer.resolve_use_gpu("auto") is True
