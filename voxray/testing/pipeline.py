"""Helpers for tests that run voxray the way users do: the CLI in a subprocess (its own local
Ray, its own environment, so fault-injection variables reach the Ray workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pyarrow as pa

from voxray.io.storage import Storage

VOXRAY = [sys.executable, "-m", "voxray"]


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 1200, check: bool = True
) -> subprocess.CompletedProcess:
    """``voxray <args>`` in a subprocess; ``check`` raises with the output tail on failure.
    The command starts its own local Ray unless ``env`` names a RAY_ADDRESS."""
    full_env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    full_env.pop("RAY_ADDRESS", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [*VOXRAY, *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"voxray {' '.join(args)} exited "
            f"{proc.returncode}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def read(out: str | Path, rel: str, columns: list[str] | None = None) -> pa.Table:
    return Storage(str(out)).read_table(rel, columns=columns)


def sorted_rows(table: pa.Table, keys: list[str]) -> pa.Table:
    """A table in a canonical row order, for comparing two runs' outputs."""
    return table.sort_by([(k, "ascending") for k in keys])
