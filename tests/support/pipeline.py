"""Helpers for tests that run voxray the way users do: the CLI in a subprocess (its own local
Ray, its own environment, so fault-injection variables reach the Ray workers)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from voxray.io.storage import Storage
from voxray.pipeline.ray_env import proc_stat

VOXRAY = [sys.executable, "-m", "voxray"]


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 1200, check: bool = True
) -> subprocess.CompletedProcess:
    """``voxray <args>`` in a subprocess; ``check`` raises with the output tail on failure.
    The command starts its own local Ray unless ``env`` names a RAY_ADDRESS."""
    proc = subprocess.run(
        [*VOXRAY, *args], env=_cli_env(env), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"voxray {' '.join(args)} exited "
            f"{proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def start_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen:
    """``voxray <args>`` started as ``run_cli`` runs it, for a test that acts while it runs;
    its stderr piped, its stdout dropped."""
    return subprocess.Popen(
        [*VOXRAY, *args],
        env=_cli_env(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _cli_env(env: Mapping[str, str] | None) -> dict[str, str]:
    full_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    full_env.pop("RAY_ADDRESS", None)
    full_env.update(env or {})
    return full_env


def run_profile(
    corpus: Path | str, out: Path | str, profile: str, *overrides: str, **kwargs: Any
) -> subprocess.CompletedProcess:
    """``voxray run --profile <profile>`` of ``corpus`` into ``out`` with config ``overrides``;
    ``kwargs`` go to ``run_cli`` (env, timeout, check)."""
    args = ("--data-root", str(corpus), "--out", str(out), "--profile", profile)
    return run_cli("run", *args, *overrides, **kwargs)


def private_ray_env() -> dict[str, str]:
    """Environment for a CLI run whose local Ray a test will kill: its own short RAY_TMPDIR
    (Unix socket paths must stay under 108 characters), inherited by every Ray process it
    starts, so :func:`kill_private_ray` can find them."""
    return {"RAY_TMPDIR": tempfile.mkdtemp(prefix="vxr-", dir="/tmp")}


def private_ray_processes(env: Mapping[str, str]) -> list[int]:
    """The processes started under ``env``'s RAY_TMPDIR (see ``private_ray_env``): those
    with it in their environment, and those holding a file open under it (the raylet starts
    its agents without it, their log files are there)."""
    folder = env["RAY_TMPDIR"]
    marker = f"RAY_TMPDIR={folder}".encode()
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                ours = marker in f.read().split(b"\0")
            fds = f"/proc/{pid}/fd"
            ours = ours or any(
                os.readlink(f"{fds}/{fd}").startswith(folder + "/") for fd in os.listdir(fds)
            )
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue  # gone already, or not ours
        if ours:
            found.append(pid)
    return found


def kill_private_ray(env: Mapping[str, str]) -> int:
    """SIGKILL the Ray processes started under ``env``'s RAY_TMPDIR (after a test killed
    their driver); returns how many. Unlike ``ray stop --force`` it leaves every other Ray on
    the machine alone: another test's, a demo's, a user's. Their temp folder goes too."""
    killed = 0
    for pid in private_ray_processes(env):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            continue
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    return killed


def survivors(env: Mapping[str, str], grace_s: float = 5.0) -> list[str]:
    """What is still running of the Ray a finished command started under ``env`` after
    ``grace_s`` (the kernel reaping what it killed): each as ``pid name``. Left alone, Ray's
    agents ran on for about 90 s after the command."""
    deadline = time.monotonic() + grace_s
    while True:
        alive = []
        for pid in private_ray_processes(env):
            try:
                stat = proc_stat(pid)
            except FileNotFoundError:
                continue
            if stat.state != "Z":  # a zombie is only waiting to be reaped
                alive.append(f"{pid} {stat.name}")
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def read(out: str | Path, rel: str, columns: list[str] | None = None) -> pa.Table:
    return Storage(str(out)).read_table(rel, columns=columns)


def sorted_rows(table: pa.Table, keys: list[str]) -> pa.Table:
    """A table in a canonical row order, for comparing two runs' outputs."""
    return table.sort_by([(k, "ascending") for k in keys])


def accounts_for_inputs(info: Mapping[str, Any]) -> bool:
    """Whether a stage marker (``voxray.io.run_state.stage_info``) counts every input once:
    its outputs, quarantined and skipped (already done) rows add up to its inputs."""
    return info["inputs"] == info["outputs"] + info["quarantined"] + info["skipped"]
