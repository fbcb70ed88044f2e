"""Fault injection hooks the stages call and the reliability suite switches on through the
environment: fail a stage once, at its k-th batch, or slow every batch down.

``VOXRAY_FAULTS="features:3:kill,attribute:2:raise"`` makes the 3rd batch a features actor
processes kill its process (Ray restarts the actor and retries the task) and the 2nd
attribute batch raise ``InjectedFault`` (Ray Data retries it: ``pipeline.ray_env``'s retry
policy). Training (train, retrain) calls the hook once per epoch in each Ray Train worker (a
fault there restarts the worker group from its last checkpoint), Tune once per trial. Each
fault fires once per run: a marker file in ``VOXRAY_FAULT_DIR`` remembers it
across the retried task and the restarted actor. Unset variables cost one dict lookup per
batch.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

_calls: Counter[str] = Counter()


class InjectedFault(RuntimeError):
    """Raised by a test hook; Ray Data is configured to retry it."""


def _faults() -> dict[str, tuple[int, str]]:
    spec = os.environ.get("VOXRAY_FAULTS", "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        stage, k, mode = (item.split(":") + ["raise"])[:3]
        out[stage] = (int(k), mode)
    return out


def slow_down() -> None:
    """Sleep ``VOXRAY_SLOW_BATCH_S`` seconds when it is set: a test's way to interrupt work
    (a batch of a stage, an epoch of training) while it is half done."""
    slow = os.environ.get("VOXRAY_SLOW_BATCH_S")
    if slow:
        time.sleep(float(slow))


def maybe_fail(stage: str) -> None:
    """Call once per batch; fires the configured fault for ``stage`` once.

    ``VOXRAY_SLOW_BATCH_S`` also slows every batch down, so a test can interrupt a stage
    while it is half done.
    """
    slow_down()
    faults = _faults()
    if stage not in faults:
        return
    k, mode = faults[stage]
    _calls[stage] += 1
    if _calls[stage] < k:
        return
    marker = Path(os.environ.get("VOXRAY_FAULT_DIR", "/tmp")) / f"voxray-fault-{stage}"
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.close(fd)
    if mode == "kill":
        os._exit(17)
    raise InjectedFault(f"injected fault in {stage} at batch {k}")
