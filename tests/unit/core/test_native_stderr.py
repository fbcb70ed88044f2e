"""Ray's C++ records written to descriptor 2 stay off the command's console (the harmless one
dropped, an error turned into one voxray warning), and everything else still reaches it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from voxray.log import console_problems
from voxray.native_stderr import native_warning

HARMLESS = (
    "[2026-12-06 17:23:24,294 E 32230 32516] core_worker.cc:2465: Actor with class name: "
    "'MapWorker(MapBatches(CountRows))' and ID: 'e906d6adc1212c84c32d64ec01000000' has "
    "constructor arguments in the object store and max_restarts > 0. If the arguments in the "
    "object store go out of scope or are lost, the actor restart will fail. See "
    "https://github.com/ray-project/ray/issues/53727 for more details."
)
ERROR = (
    "[2026-12-06 14:29:45,307 E 4302 4302] logging.cc:474: *** SIGTERM received at time=1796567385"
    " on cpu 0 ***"
)
INFO = "[2026-12-06 14:29:45,307 I 4302 4302] core_worker.cc:100: Constructing CoreWorker."


def test_a_native_error_becomes_one_warning_and_the_rest_stays_in_rays_files() -> None:
    assert native_warning(ERROR) == "Ray: *** SIGTERM received at time=1796567385 on cpu 0 ***"
    assert native_warning(HARMLESS) is None
    assert native_warning(INFO) is None
    assert native_warning("an ordinary line") is None


def test_the_console_check_finds_rays_native_records() -> None:
    """The check the smoke run's console is held to fails on such a line (it did not)."""
    assert console_problems(f"[voxray] 17:23:23 INFO stage embed: started\n{HARMLESS}\n")
    assert not console_problems("[voxray] 17:23:23 INFO stage embed: started\n")


PROGRAM = """
import os, sys
from voxray.log import setup_logging
from voxray.native_stderr import divert_native_stderr, restore_native_stderr
divert_native_stderr()
setup_logging()
os.write(2, ({harmless!r} + "\\n" + {info!r} + "\\n").encode())
os.write(2, b"a native library's own line\\n")
os.write(2, ({error!r} + "\\n").encode())
print("python's own line", file=sys.stderr)
os.write(2, b"no newline at the end")
{ending}
"""


def _console(ending: str) -> str:
    program = PROGRAM.format(harmless=HARMLESS, info=INFO, error=ERROR, ending=ending)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_descriptor_2_is_filtered_until_the_process_ends() -> None:
    for ending in ("", "restore_native_stderr(); os._exit(0)"):  # atexit, or the command's end
        console = _console(ending)
        assert "a native library's own line\n" in console
        assert "python's own line\n" in console
        assert "no newline at the end" in console
        assert "WARNING Ray: *** SIGTERM received at time=1796567385 on cpu 0 ***" in console
        assert "core_worker.cc" not in console and "logging.cc" not in console
        assert not console_problems(console)
