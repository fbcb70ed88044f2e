"""The pipeline on a multi-node cluster (a head with no CPUs and two worker nodes; the
whole smoke run on one is the session's shared run, tests/e2e/test_smoke_run.py): a worker
node killed without grace mid-stage (a spot preemption), then replaced by a fresh node,
loses and duplicates nothing: the run completes (or fails clearly and completes on rerun)
and its output equals an undisturbed run's row for row."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from tests.support.pipeline import VOXRAY, accounts_for_inputs, read, run_cli, sorted_rows
from voxray.check import check, row_keys
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage

#: small batches written one per file, so a stage has committed parts long before it ends.
SMALL = [
    f"{section}.resources.{key}={value}"
    for section in ("features", "embed", "attribution", "mask")
    for key, value in (("batch_size", 4), ("rows_per_file", 4))
]
#: the mask conditions' methods for every utterance, and one cheap method on the test subset.
COMMON = [
    "--profile",
    "smoke",
    "tune.enabled=false",
    "train.epochs=3",
    "attribution.methods=[saliency]",
    *SMALL,
]
#: every batch sleeps this long on the worker nodes, so the kill lands mid-stage.
SLOW = {"VOXRAY_SLOW_BATCH_S": "1.0"}
#: training sleeps once per epoch; its epochs on a cached source are fast, so the sleep must
#: outlast the test noticing epoch 1's checkpoint, or training ends before the node dies.
TRAIN_SLOW = {"VOXRAY_SLOW_BATCH_S": "5.0"}
#: per stage: the output it writes, the stage markers and quarantine parts to drop so that it
#: runs again, and the file whose appearance means some of its work is committed.
#: And the actor class whose node is killed.
STAGE_OUTPUT = {
    "features": ("features", "features/**/part-*.parquet", "MapWorker"),
    "train": (
        "models/ecapa",
        "models/ecapa/ray/ecapa/checkpoint_manager_snapshot.json",
        "RayTrainWorker",
    ),
    "embed": ("embeddings", "embeddings/**/part-*.parquet", "MapWorker"),
    "attribute": ("attributions", "attributions/**/part-*.parquet", "MapWorker"),
    "mask": ("masked", "masked/**/part-*.parquet", "MapWorker"),
}


class Reference:
    """One undisturbed output folder, grown on demand: ``upto(stage)`` runs that stage as one
    command, whose prerequisites run first in the same process (one Ray start, not one per
    stage), and later stages resume it. The default tier's attribute test so never pays for
    the mask stage, which only the slow tier's mask test reads."""

    def __init__(self, corpus: Path, out: Path) -> None:
        self.corpus, self.out = corpus, out
        self.done: set[str] = set()

    def upto(self, stage: str) -> Path:
        if stage == "mask":  # it reads attribute's maps, which a single `voxray mask` needs made
            self.upto("attribute")
        if stage not in self.done:
            run_cli(stage, "--data-root", str(self.corpus), "--out", str(self.out), *COMMON)
            self.done.add(stage)
        return self.out


@pytest.fixture(scope="module")
def reference(smoke_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """Undisturbed outputs (local Ray, the same settings) up to the stage a test kills."""
    return Reference(smoke_corpus, tmp_path_factory.mktemp("reference") / "out")


def _without_stage(reference: Reference, dest: Path, stage: str) -> None:
    """``dest``: the reference outputs with ``stage``'s own outputs removed (so it reruns)."""
    shutil.copytree(reference.upto(stage), dest)
    shutil.rmtree(dest / STAGE_OUTPUT[stage][0])
    (dest / "_stages" / f"{stage}.json").unlink()
    for part in (dest / "quarantine.parquet").glob(f"{stage}-*.parquet"):
        part.unlink()


def _rows_equal(out: Path, ref: Path, rel: str) -> None:
    """Same keys (none duplicated) and the same values, row for row, as the reference."""
    got, want = read(out, rel), read(ref, rel)
    keys = row_keys(rel, got.column_names)
    got, want = sorted_rows(got, keys), sorted_rows(want, keys)
    key_rows = list(zip(*[got.column(k).to_pylist() for k in keys], strict=True))
    assert len(set(key_rows)) == len(key_rows), f"{rel}: duplicated rows"
    for k in keys:
        assert got.column(k).to_pylist() == want.column(k).to_pylist(), (rel, k)
    for name in ("values", "embedding"):
        if name in got.column_names:
            for a, b in zip(
                got.column(name).to_pylist(), want.column(name).to_pylist(), strict=True
            ):
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def _accounted(out: Path, stage: str) -> None:
    info = stage_info(Storage(str(out)), stage)
    assert accounts_for_inputs(info), info
    assert check(str(out)) == []


def _committed(out: Path, stage: str) -> bool:
    """Whether some of ``stage``'s work is committed. For training: epoch 1's checkpoint is
    registered by Ray Train's controller (its snapshot names it). Its folder is not enough: the
    controller collects a report from the worker on its next poll (every 2 s), and a node lost
    before that restarts training from the last checkpoint registered, here none."""
    found = list(out.glob(STAGE_OUTPUT[stage][1]))
    return bool(found) and (stage != "train" or "epoch_0001" in found[0].read_text())


def _run_with_node_kill(stage: str, corpus: Path, out: Path) -> tuple[int, str]:
    """``voxray <stage>`` on a fresh cluster; once it has committed some output, kill a
    worker node and add a fresh one. Returns (exit code, stderr tail)."""
    slow = TRAIN_SLOW if stage == "train" else SLOW
    cluster = LocalCluster(2, worker_env=[slow, slow])
    try:
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": cluster.address}
        proc = subprocess.Popen(
            [*VOXRAY, stage, "--data-root", str(corpus), "--out", str(out), *COMMON],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not _committed(out, stage):
            time.sleep(0.2)
        assert proc.poll() is None, f"{stage} ended before a node could be killed"
        cluster.kill_worker(STAGE_OUTPUT[stage][2])
        cluster.add_worker(slow)
        _, stderr = proc.communicate(timeout=900)
        return proc.returncode, stderr[-3000:]
    finally:
        cluster.shutdown()


@pytest.mark.parametrize(
    "stage",
    [
        "attribute",
        pytest.param("features", marks=pytest.mark.slow),
        pytest.param("embed", marks=pytest.mark.slow),
        pytest.param("mask", marks=pytest.mark.slow),
    ],
)
def test_node_killed_mid_stage_loses_nothing(
    stage: str, smoke_corpus: Path, reference: Reference, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _without_stage(reference, out, stage)
    code, stderr = _run_with_node_kill(stage, smoke_corpus, out)
    if code != 0:  # a clear error, then the rerun completes
        assert stderr.strip().splitlines()[-1].startswith("voxray:"), stderr
        run_cli(stage, "--data-root", str(smoke_corpus), "--out", str(out), *COMMON)
    _accounted(out, stage)
    rel = STAGE_OUTPUT[stage][0]
    _rows_equal(out, reference.out, rel)


@pytest.mark.slow
def test_node_killed_mid_training_resumes_from_checkpoint(
    smoke_corpus: Path, reference: Reference, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _without_stage(reference, out, "train")
    code, stderr = _run_with_node_kill("train", smoke_corpus, out)
    if code != 0:  # past train.max_failures: voxray's error names the lost node and the rerun
        assert "voxray: LostNodeError: train ecapa: failed with" in stderr, stderr
        assert "after losing Ray node" in stderr and "rerun to resume" in stderr, stderr
        run_cli("train", "--data-root", str(smoke_corpus), "--out", str(out), *COMMON)
    _accounted(out, "train")
    history = read(out, "models/ecapa/history.parquet").to_pylist()
    assert [h["epoch"] for h in history] == [1, 2, 3]  # each epoch once, none redone twice
    # the node holding the only training worker died after epoch 1's checkpoint: the worker
    # group restarted on the surviving nodes and continued from that checkpoint
    assert history[-1]["resumes"] >= 1
