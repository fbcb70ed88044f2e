"""A stage's progress on the console while its actor pool runs (``voxray.log.Progress``).

The pool's actors add the rows of each batch they finish to a counter actor; a thread of the
driver reads the count every second and draws the line. Ray Data's own progress bars
(one per operator, redrawn into a log file as hundreds of lines) stay off.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator

import pyarrow as pa
import ray

from voxray.log import Progress

#: seconds between two reads of the counter.
POLL_S = 1.0


@ray.remote(num_cpus=0, max_restarts=-1)
class RowCounter:
    """Rows done so far (a task retried after a worker died counts its rows again: the line
    is capped at the total)."""

    def __init__(self) -> None:
        self.rows = 0

    def add(self, rows: int) -> None:
        self.rows += rows

    def total(self) -> int:
        return self.rows


class CountRows:
    """map_batches callable around a stage's own one: ``fn(*fn_args)`` built once per actor,
    each batch's input rows added to ``counter`` when its output is ready."""

    def __init__(self, fn: type, fn_args: tuple[Any, ...], counter: Any) -> None:
        self.inner = fn(*fn_args)
        self.counter = counter

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = self.inner(batch)
        self.counter.add.remote(batch.num_rows)
        return out


@contextmanager
def pool_progress(label: str, total: int | None) -> Iterator[Any]:
    """Yields the counter for CountRows; draws ``label``'s progress until the block ends."""
    counter = RowCounter.remote()
    progress = Progress(label, total)
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(POLL_S):
            try:
                progress.update(ray.get(counter.total.remote(), timeout=POLL_S * 5))
            except ray.exceptions.GetTimeoutError:
                continue

    thread = threading.Thread(target=watch, name="voxray-progress", daemon=True)
    thread.start()
    try:
        yield counter
        # the pool is done, so are its rows (the last adds may still be on their way)
        progress.update(total if total is not None else ray.get(counter.total.remote()))
    finally:
        stop.set()
        thread.join()
        progress.close()
        ray.kill(counter)
