"""A lost node never hangs a stage (issue 29): the stall watch's decision over a progress history
and ``ray.nodes()``-shaped lists (continue, or stop with a message naming the node and the rows
left), and the stop of a pool thread blocked in a polling loop, as Ray Data's consumer is.
No Ray."""

from __future__ import annotations

import threading
import time

import pytest

from voxray.config import ConfigError, ResourceConfig, load_config
from voxray.pipeline.progress import PoolStopped, _PoolThread
from voxray.pipeline.stall import Done, StallWatch


def _node(node_id: str, address: str, alive: bool = True) -> dict:
    return {"NodeID": node_id * 7, "NodeManagerAddress": address, "Alive": alive, "Resources": {}}


HEAD = _node("h0000000", "10.0.0.1")
A = _node("a1111111", "10.0.0.2")
B = _node("b2222222", "10.0.0.3")
A_DEAD = {**A, "Alive": False}


def _watch(total: int | None = 24, timeout_s: float = 60.0) -> StallWatch:
    watch = StallWatch("stage features", total, timeout_s, since=0.0)
    watch.nodes([HEAD, A, B])
    watch.rows(Done(10, 8), now=5.0)
    return watch


def test_idle_past_the_timeout_with_a_node_lost_stops_naming_node_and_rows_left() -> None:
    watch = _watch()
    assert watch.verdict([HEAD, A_DEAD, B], now=64.0) is None  # idle 59 s: not yet
    message = watch.verdict([HEAD, A_DEAD, B], now=66.0)
    assert message is not None
    assert message.startswith("stage features: no rows done for 61 s")
    assert "resources.stall_timeout_s=60" in message
    assert "10.0.0.2 (a1111111)" in message and "b2222222" not in message
    assert "10 of 24 rows computed, 14 left to compute, 8 output rows written" in message


def test_a_node_dropped_from_the_list_counts_as_lost() -> None:
    message = _watch().verdict([HEAD, B], now=100.0)
    assert message is not None and "(a1111111)" in message


def test_idle_with_every_node_alive_goes_on() -> None:
    """A slow batch (a big model's first on a CPU) is not a hang: no node is gone."""
    assert _watch().verdict([HEAD, A, B], now=10_000.0) is None


def test_a_lost_node_while_rows_are_done_goes_on() -> None:
    """Its actors restarted on the survivors: the stage may finish there."""
    watch = _watch()
    for t in range(10, 200, 10):
        watch.rows(Done(10 + t, 8), now=float(t))
        assert watch.verdict([HEAD, A_DEAD, B], now=float(t) + 5) is None
    assert watch.verdict([HEAD, A_DEAD, B], now=190.0 + 61) is not None


def test_any_change_of_the_counts_is_progress() -> None:
    """Rows written after the last computed ones, and a counter restarted from zero."""
    watch = _watch()
    watch.rows(Done(10, 16), now=50.0)
    assert watch.verdict([HEAD, A_DEAD, B], now=100.0) is None
    watch.rows(Done(2, 0), now=90.0)  # the counter actor restarted elsewhere
    assert watch.verdict([HEAD, A_DEAD, B], now=140.0) is None
    watch.rows(Done(2, 0), now=145.0)  # the same counts again: no progress
    assert watch.verdict([HEAD, A_DEAD, B], now=151.0) is not None


def test_a_node_that_joined_mid_stage_and_died_is_named() -> None:
    watch = _watch()
    late = _node("c3333333", "10.0.0.4")
    assert watch.verdict([HEAD, A, B, late], now=30.0) is None
    message = watch.verdict([HEAD, A, B, {**late, "Alive": False}], now=70.0)
    assert message is not None and "10.0.0.4 (c3333333)" in message


def test_a_pool_failed_while_a_node_is_lost_names_node_rows_and_cause() -> None:
    error = RuntimeError("The actor 863cda94 is unavailable: Connection reset\nmore detail")
    message = _watch().failure([HEAD, B], error)
    assert message is not None
    assert message.startswith(
        "stage features: failed with RuntimeError (The actor 863cda94 is unavailable: "
        "Connection reset) after losing Ray node 10.0.0.2 (a1111111); 10 of 24 rows computed"
    )
    assert "more detail" not in message


def test_a_pool_failed_with_every_node_there_keeps_its_own_error() -> None:
    assert _watch().failure([HEAD, A, B], RuntimeError("a bug")) is None


def test_without_a_total_the_message_gives_the_counts() -> None:
    message = _watch(total=None).verdict([HEAD, A_DEAD, B], now=70.0)
    assert message is not None and "10 rows computed, 8 output rows written" in message


def test_stall_timeout_must_be_positive_naming_the_key() -> None:
    assert ResourceConfig().stall_timeout_s == 300.0
    with pytest.raises(ConfigError, match=r"features\.resources.*stall_timeout_s"):
        load_config(overrides=["features.resources.stall_timeout_s=0"])


def test_a_pool_blocked_in_a_polling_loop_is_stopped_and_cleans_up() -> None:
    """Like Ray Data's consumer: a Python loop that sleeps while it waits for output, whose
    BaseException handler shuts the executor down."""
    shut_down = threading.Event()

    def work(counter: object) -> None:
        try:
            while True:
                time.sleep(0.01)
        except BaseException:
            shut_down.set()
            raise

    pool = _PoolThread(work, counter=None)
    pool.start()
    time.sleep(0.1)
    started = time.monotonic()
    pool.stop()
    assert not pool.is_alive() and time.monotonic() - started < 5
    assert shut_down.is_set() and isinstance(pool.error, PoolStopped)


def test_a_pool_thread_keeps_the_work_error_for_the_caller() -> None:
    def work(counter: object) -> None:
        raise OSError(f"disk full ({counter})")

    pool = _PoolThread(work, counter="c")
    pool.start()
    pool.join(5)
    pool.stop()  # an ended pool: nothing to stop
    assert isinstance(pool.error, OSError) and str(pool.error) == "disk full (c)"


def test_training_that_fails_after_losing_a_node_says_so(monkeypatch) -> None:
    """Ray Train's WorkerGroupError becomes a LostNodeError naming the node and the rerun;
    with every node there, the failure is its own."""
    from voxray.pipeline import train_stage
    from voxray.pipeline.stall import LostNodeError

    class WorkerGroupError(RuntimeError):
        pass

    monkeypatch.setattr(train_stage.ray, "nodes", lambda: [HEAD, A, B])
    monkeypatch.setattr(train_stage, "live_nodes", lambda: [HEAD, B])
    failed = WorkerGroupError("Training failed due to worker errors:\n[Rank 0 Error Snippet]")
    with pytest.raises(LostNodeError) as info:
        with train_stage.lost_nodes_named("train ecapa", "rerun to resume"):
            raise failed
    assert str(info.value) == (
        "train ecapa: failed with WorkerGroupError (Training failed due to worker errors:) "
        "after losing Ray node 10.0.0.2 (a1111111); rerun to resume"
    )
    assert info.value.__cause__ is failed
    monkeypatch.setattr(train_stage, "live_nodes", lambda: [HEAD, A, B])
    with pytest.raises(WorkerGroupError):
        with train_stage.lost_nodes_named("train ecapa", "rerun to resume"):
            raise failed
