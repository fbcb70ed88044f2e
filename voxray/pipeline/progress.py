"""A stage's actor pool run under watch: its progress on the console (``voxray.log.Progress``)
and a stop with a clear error when it has stalled on a lost node (``pipeline.stall``).

The pool's actors add the rows of each batch they finish to a counter actor, and the sink's
write tasks the rows they commit; the driver reads the counts every second, draws the line
and feeds the stall watch. Ray Data's own progress bars (one per operator, redrawn into a log
file as hundreds of lines) stay off.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from typing import Any, Callable

import pyarrow as pa
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from voxray.log import Progress
from voxray.nodes import live_nodes
from voxray.pipeline.stall import Done, LostNodeError, StallWatch
from voxray.pipeline.time_split import OTHER, STARTUP

#: seconds between two reads of the counter.
POLL_S = 1.0
#: seconds between two reads of the node list while the stage is idle (a GCS call).
NODES_POLL_S = 5.0
#: seconds a stopped pool has to shut its executor down before the error is raised anyway.
STOP_GRACE_S = 30.0


@ray.remote(num_cpus=0, max_restarts=-1)
class RowCounter:
    """Rows computed and rows written so far (a task retried after a worker died counts its
    rows again: the line is capped at the total)."""

    def __init__(self) -> None:
        self.computed = 0
        self.written = 0
        self.parts: dict[str, float] = {}

    def add(self, rows: int, seconds: dict[str, float] | None = None) -> None:
        self.computed += rows
        self.add_seconds(seconds or {})

    def add_written(self, rows: int, seconds: dict[str, float] | None = None) -> None:
        self.written += rows
        self.add_seconds(seconds or {})

    def add_seconds(self, seconds: dict[str, float]) -> None:
        """Seconds per part of the pool's work (``pipeline.time_split``)."""
        for k, v in seconds.items():
            self.parts[k] = self.parts.get(k, 0.0) + v

    def done(self) -> Done:
        return Done(self.computed, self.written)

    def seconds(self) -> dict[str, float]:
        return dict(self.parts)


class CountRows:
    """map_batches callable around a stage's own one: ``fn(*fn_args)`` built once per actor,
    each batch's input rows added to ``counter`` when its output is ready, with the seconds of
    its parts (the callable's ``clock``, a ``time_split.PartClock``, if it keeps one; the rest
    of the call as ``other``) and, once, the actor's start-up. ``threads``: torch's intra-op
    threads in this actor (0 leaves Ray's setting)."""

    def __init__(self, fn: type, fn_args: tuple[Any, ...], counter: Any, threads: int = 0) -> None:
        started = time.perf_counter()
        self.inner = fn(*fn_args)
        # before the first batch (see ray_env.actor_threads); a callable without torch (the
        # mask stage's numpy) does not import it for this
        if threads and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        self.counter = counter
        self.startup_s: float | None = time.perf_counter() - started

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.perf_counter()
        out = self.inner(batch)
        clock = getattr(self.inner, "clock", None)
        parts = clock.take() if clock is not None else {}
        parts[OTHER] = max(0.0, time.perf_counter() - started - sum(parts.values()))
        if self.startup_s is not None:
            parts[STARTUP], self.startup_s = self.startup_s, None
        self.counter.add.remote(batch.num_rows, parts)
        return out


class PoolStopped(BaseException):
    """Raised inside the thread running a stalled pool. A BaseException, as KeyboardInterrupt
    is, so that no ``except Exception`` on the way swallows it."""


class _PoolThread(threading.Thread):
    """Runs ``work(counter)`` and keeps its error for the watching thread. A daemon: a pool
    that ignores the stop must not keep the process alive."""

    def __init__(self, work: Callable[[Any], None], counter: Any) -> None:
        super().__init__(name="voxray-pool", daemon=True)
        self.work, self.counter = work, counter
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work(self.counter)
        except BaseException as exc:  # handed to the watching thread, which raises it
            self.error = exc

    def stop(self) -> None:
        """Raise PoolStopped in this thread at its next Python instruction, and wait a while
        for it to end. Ray Data has no call that cancels a running dataset, but its consumer
        (a Python loop polling the output queue) shuts its executor down, releasing the pool's
        actors, on any BaseException, as it does for Ctrl-C."""
        if self.ident is None or not self.is_alive():
            return
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self.ident), ctypes.py_object(PoolStopped)
        )
        self.join(STOP_GRACE_S)


def _read(counter: Any, what: str = "done") -> Any:
    """The counter's ``done`` (counts) or ``seconds`` (the time split), or None while it is
    slow or restarting (its node was lost): neither may fail a stage whose rows are written."""
    try:
        return ray.get(getattr(counter, what).remote(), timeout=POLL_S * 5)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError):
        return None


def _watch(pool: _PoolThread, progress: Progress, watch: StallWatch) -> str | None:
    """Until the pool ends: draw its progress and feed the stall watch (the node list every
    NODES_POLL_S); the watch's message as soon as it says the stage stalled on a lost node."""
    nodes_read = time.monotonic()
    while pool.is_alive():
        pool.join(POLL_S)
        now = time.monotonic()
        done = _read(pool.counter)
        if done is not None:
            progress.update(done.computed)
            watch.rows(done, now)
        if now - nodes_read >= NODES_POLL_S:
            nodes_read = now
            verdict = watch.verdict(ray.nodes(), now)
            if verdict is not None:
                return verdict
    return None


def run_watched(
    label: str, total: int | None, stall_timeout_s: float, work: Callable[[Any], None]
) -> dict[str, float]:
    """Run ``work(counter)`` (a pool that counts its rows on ``counter``: CountRows, and the
    sink's writes) in a thread of its own while this one draws ``label``'s progress. It raises
    LostNodeError once no rows were done for ``stall_timeout_s`` after a node of the stage was
    lost (the pool is then stopped, see ``_PoolThread.stop``), or when ``work`` failed while a
    node of the stage is lost; else what ``work`` raised.
    The counter lives on this node, which a lost worker node does not take with it.
    Returns the seconds per part of the pool's work (``pipeline.time_split``)."""
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    counter = RowCounter.options(scheduling_strategy=here).remote()
    progress = Progress(label, total)
    watch = StallWatch(label, total, stall_timeout_s, since=time.monotonic())
    watch.nodes(ray.nodes())
    pool = _PoolThread(work, counter)
    pool.start()
    try:
        verdict = _watch(pool, progress, watch)
        if verdict is not None:
            raise LostNodeError(verdict)
        if isinstance(pool.error, Exception):
            # live_nodes waits for the GCS to find a node dead that it still lists alive
            failure = watch.failure(live_nodes(), pool.error)
            if failure is not None:
                raise LostNodeError(failure) from pool.error
        if pool.error is not None:
            raise pool.error
        # the pool is done, so are its rows (the last adds may still be on their way)
        progress.update(total if total is not None else watch.done.computed)
        return _read(counter, "seconds") or {}
    finally:
        pool.stop()  # stalled, or this thread interrupted (Ctrl-C): the pool stops too
        progress.close()
        ray.kill(counter)
