"""Native log records off the console. Ray's C++ core worker in the driver writes its ERROR
records to file descriptor 2 as well as to its own log file (``python-core-driver-*.log`` in
Ray's log folder): Ray Data's actor pools alone print "Actor with class name: 'MapWorker(...)'
has constructor arguments in the object store and max_restarts > 0" once per command
(ray-project/ray#57733: every pool passes Ray Data's own references to its actors). Python's
``sys.stderr`` cannot filter what C++ writes to the descriptor, so the command's own process
moves the descriptor onto a pipe, keeps ``sys.stderr`` on the console, and a thread passes every
line on except Ray's native records: a known harmless one is dropped (its log file holds it),
any other error becomes one voxray warning of one sentence."""

from __future__ import annotations

import atexit
import io
import os
import re
import sys
import threading
from dataclasses import dataclass

from voxray.log import NATIVE_RECORD, first_sentence, get_logger

log = get_logger(__name__)

#: Native records that say nothing a voxray user can act on.
HARMLESS = (re.compile(r"has constructor arguments in the object store and max_restarts > 0"),)
#: Seconds the end of the command waits for the thread to pass on what is left in the pipe.
DRAIN_S = 1.0


def native_warning(line: str) -> str | None:
    """The voxray warning a native record of Ray's on descriptor 2 becomes: None for a record
    left to Ray's log file (below ERROR, or harmless)."""
    found = NATIVE_RECORD.match(line)
    if found is None or found["level"] not in "EF" or any(p.search(line) for p in HARMLESS):
        return None
    return "Ray: " + first_sentence(line[found.end() :])


@dataclass
class _Diverted:
    """The descriptor 2 of this process once diverted: the console's own copy and the thread."""

    console: int
    thread: threading.Thread


_diverted: _Diverted | None = None


def divert_native_stderr() -> None:
    """Pass descriptor 2 through the filter for the rest of this process (once; a process
    whose descriptor 2 is closed is left as it is)."""
    global _diverted
    if _diverted is not None:
        return
    try:
        console = os.dup(2)
    except OSError:
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(console, "w", closefd=False),
        encoding=sys.stderr.encoding,
        errors=sys.stderr.errors,
        line_buffering=True,
    )
    thread = threading.Thread(
        target=_pass_on, args=(read_end, console), name="voxray-stderr", daemon=True
    )
    thread.start()
    _diverted = _Diverted(console, thread)
    atexit.register(restore_native_stderr)


def restore_native_stderr() -> None:
    """Put descriptor 2 back on the console and let the thread pass on what the pipe still
    holds (before the process ends: ``os._exit`` skips atexit)."""
    global _diverted
    if _diverted is None:
        return
    sys.stderr.flush()
    os.dup2(_diverted.console, 2)  # the pipe's last writer here: the thread reads to its end
    _diverted.thread.join(DRAIN_S)
    _diverted = None


def _pass_on(read_end: int, console: int) -> None:
    pending = b""
    while chunk := os.read(read_end, 65536):
        *lines, pending = (pending + chunk).split(b"\n")
        _show(lines, console)
    _show([pending] if pending else [], console)
    os.close(read_end)


def _show(lines: list[bytes], console: int) -> None:
    shown = []
    for raw in lines:
        line = raw.decode("utf-8", "replace")
        if NATIVE_RECORD.match(line) is None:
            shown.append(raw + b"\n")
        elif (warning := native_warning(line)) is not None:
            log.warning("%s", warning)
    if shown:
        os.write(console, b"".join(shown))
