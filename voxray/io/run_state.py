"""What a run leaves beside its outputs: the lock that keeps two runs apart, and stage markers.

A stage marker (``_stages/<stage>.json``) is written last, after every output file of the
stage is committed; ``voxray run`` skips a stage whose marker exists. The lock is a file
created exclusively; a second run on the same --out refuses with the holder named, and a
lock left by a process that died on this host is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from voxray.io.storage import Storage

STAGES_DIR = "_stages"
LOCK_FILE = "_lock.json"


class OutputLockedError(RuntimeError):
    """Another run holds the output folder."""


def stage_done(out: Storage, stage: str) -> bool:
    return out.exists(f"{STAGES_DIR}/{stage}.json")


def mark_stage_done(out: Storage, stage: str, info: dict[str, Any]) -> None:
    record = {"stage": stage, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **info}
    out.write_text(f"{STAGES_DIR}/{stage}.json", json.dumps(record, indent=2, default=str))


def stage_info(out: Storage, stage: str) -> dict[str, Any]:
    return json.loads(out.read_text(f"{STAGES_DIR}/{stage}.json"))


def clear_stage(out: Storage, stage: str) -> None:
    """Forget a stage's marker; if the stage was complete, also its parts' markers
    (``<stage>.<part>.json``), so a forced rerun redoes every part, while an interrupted
    stage keeps them and resumes."""
    if stage_done(out, stage):
        for rel in out.find(STAGES_DIR, (".json",)):
            if rel.split("/")[-1].startswith(f"{stage}."):
                out.remove(rel)
    out.remove(f"{STAGES_DIR}/{stage}.json")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class OutputLock:
    """``with OutputLock(out):`` holds --out for the duration of one command."""

    out: Storage

    def _holder(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.out.read_text(LOCK_FILE))
        except (FileNotFoundError, ValueError):
            return None

    def acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        holder = self._holder()
        if holder is not None:
            stale = holder.get("host") == me["host"] and not _pid_alive(int(holder.get("pid", -1)))
            if not stale:
                raise OutputLockedError(
                    f"{self.out.uri(LOCK_FILE)} is held by pid {holder.get('pid')} on "
                    f"{holder.get('host')}: "
                    "another voxray run is writing to this --out (remove the lock file if that run "
                    "is gone)"
                )
            self.out.remove(LOCK_FILE)
        if self.out.is_s3:
            self.out.write_text(LOCK_FILE, json.dumps(me))
            return
        self.out.makedirs()
        path = self.out.path(LOCK_FILE)
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError as exc:
            raise OutputLockedError(
                f"{path} appeared while acquiring: another voxray run started"
            ) from exc
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)

    def release(self) -> None:
        holder = self._holder()
        if holder and holder.get("pid") == os.getpid():
            self.out.remove(LOCK_FILE)

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
