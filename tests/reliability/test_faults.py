"""Faults survived: a worker that dies or raises mid-batch is retried and the output is
identical to an undisturbed run; a driver killed mid-stage and rerun resumes from the
committed files without duplicating a row; a second run on the same --out is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.pipeline import (
    VOXRAY,
    kill_private_ray,
    private_ray_env,
    read,
    run_cli,
    sorted_rows,
)

# rows_per_file=8: two batches per file, so a stage stopped midway has committed some files
SMOKE = [
    "--profile",
    "smoke",
    "features.resources.concurrency=1",
    "features.resources.batch_size=4",
    "features.resources.rows_per_file=8",
]
KEYS = ["utt_id", "kind"]


@pytest.fixture(scope="module")
def reference(smoke_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "out"
    run_cli("manifest", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE)
    run_cli("features", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE)
    return out


def _features(out: Path):
    return sorted_rows(read(out, "features"), KEYS)


@pytest.mark.parametrize("mode", ["kill", "raise"])
def test_worker_fault_is_retried_and_output_identical(
    smoke_corpus: Path, reference: Path, tmp_path: Path, mode: str
) -> None:
    out = tmp_path / "out"
    env = {"VOXRAY_FAULTS": f"features:2:{mode}", "VOXRAY_FAULT_DIR": str(tmp_path)}
    run_cli("manifest", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE)
    run_cli("features", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE, env=env)
    assert (tmp_path / "voxray-fault-features").exists(), "the fault was not injected"
    assert _features(out).equals(_features(reference))


def test_killed_driver_resumes_without_duplicates(
    smoke_corpus: Path, reference: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run_cli("manifest", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE)
    env = {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "VOXRAY_SLOW_BATCH_S": "1.5",
        **private_ray_env(),
    }
    with (tmp_path / "stderr.log").open("w") as err:  # the child keeps its own copy
        proc = subprocess.Popen(
            [*VOXRAY, "features", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    deadline = time.time() + 600  # at load 40 the first parts took over 300 s
    parts = []
    while time.time() < deadline and proc.poll() is None:
        parts = list((out / "features").rglob("part-*.parquet"))
        if len(parts) >= 2:
            break
        time.sleep(0.2)
    assert proc.poll() is None, (
        "the stage finished before it could be interrupted: "
        + (tmp_path / "stderr.log").read_text()[-3000:]
    )
    assert parts, "no features part committed in 600 s: nothing to interrupt mid-stage"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local Ray die mid-stage
    proc.wait()
    kill_private_ray(env)
    partial = read(out, "features").num_rows
    assert 0 < partial < _features(reference).num_rows
    assert not (out / "_stages" / "features.json").exists()
    run_cli("features", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE)
    assert _features(out).equals(_features(reference))


def test_second_run_on_same_out_is_refused(smoke_corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_cli("manifest", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "VOXRAY_SLOW_BATCH_S": "1.0"}
    first = subprocess.Popen(
        [*VOXRAY, "features", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "_lock.json").exists() and time.time() < deadline:
        time.sleep(0.1)
    second = run_cli(
        "features", "--data-root", str(smoke_corpus), "--out", str(out), *SMOKE, check=False
    )
    assert second.returncode != 0
    assert "another voxray run is writing to this --out" in second.stderr
    assert first.wait(timeout=600) == 0, first.stderr[-3000:]
    assert not (out / "_lock.json").exists()
