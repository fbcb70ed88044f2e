"""Shared benchmark helpers: timing, peak memory, the closing JSON line."""

from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (and, if asked, of its waited-for children)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (less noise than a mean on a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def emit(figures: dict[str, Any]) -> dict[str, Any]:
    """Print the closing JSON line (rounded) and return the figures."""
    clean = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}
    print(json.dumps(clean), flush=True)
    sys.stdout.flush()
    return clean
