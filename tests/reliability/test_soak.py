"""Soak mode (``pytest -m soak``): the pipeline run again and again with random faults — actors
killed or raising mid-batch, the driver killed mid-run and resumed, or (on a multi-node
cluster: a head without CPUs and two worker nodes) a worker node killed without grace mid-run
and replaced by a fresh one, the run completing or failing clearly and completing on rerun —
checking after every run
that each stage accounts for its inputs, no row is duplicated and no row is lost against an
undisturbed reference run. Runs: VOXRAY_SOAK_RUNS (default 10); profile: VOXRAY_SOAK_PROFILE
(default smoke; `demo` for the full demo pipeline)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cluster import LocalCluster
from tests.support.pipeline import (
    VOXRAY,
    kill_private_ray,
    private_ray_env,
    read,
    run_cli,
)
from voxray.check import check, row_keys
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.pipeline.stages import STAGE_NAMES

TABLES = ("manifest.parquet", "features", "embeddings", "attributions", "masked")
FAULT_STAGES = ("features", "embed", "attribute", "mask")


def keyed_rows(out: Path) -> dict[str, Counter]:
    """Per table, how many times each row key (the contract's key columns) occurs."""
    found = {}
    for t in TABLES:
        table = read(out, t)
        keys = row_keys(t, table.column_names)
        found[t] = row_counter(table.select(keys).to_pandas(), keys)
    return found


def row_counter(df: pd.DataFrame, keys: list[str]) -> Counter:
    return Counter(tuple(row) for row in df[keys].astype(str).itertuples(index=False))


@dataclass
class RowTally:
    """Rows of the soak's runs against the reference run, each count on its own: a key of the
    reference a run lacks is lost, a key a run holds twice is duplicated, a key the reference
    lacks is unexpected."""

    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    where: list[str] = field(default_factory=list)

    def add(self, run: str, reference: dict[str, Counter], got: dict[str, Counter]) -> None:
        for t, ref in reference.items():
            mine = got.get(t, Counter())
            lost = sum(1 for k in ref if k not in mine)
            duplicated = sum(n - 1 for n in mine.values() if n > 1)
            unexpected = sum(1 for k in mine if k not in ref)
            self.lost += lost
            self.duplicated += duplicated
            self.unexpected += unexpected
            if lost or duplicated or unexpected:
                self.where.append(
                    f"{run} {t}: {lost} lost, {duplicated} duplicated, {unexpected} unexpected"
                )


def _lose_node(cluster: LocalCluster, env: dict[str, str], record: list[str]) -> None:
    """A spot preemption: a worker node (one hosting a pool actor if any) dies, a new one joins."""
    cluster.kill_worker("MapWorker")
    cluster.add_worker(env)
    record.append("node")


def _start_run(out: Path, common: list[str], env: dict[str, str]):
    """``voxray run`` in the background, in its own process group; its stderr goes to a file
    beside ``out`` (returned with the process)."""
    stderr = out.with_suffix(".stderr")
    full = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env}
    if "RAY_ADDRESS" not in env:
        full.pop("RAY_ADDRESS", None)
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [*VOXRAY, "run", "--out", str(out), *common],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    return proc, stderr


def _run_losing_a_node(
    out: Path,
    common: list[str],
    env: dict[str, str],
    cluster: LocalCluster,
    rng: random.Random,
    record: list[str],
    where: tuple[int, str],
) -> None:
    """The run on a cluster that loses a worker node mid-run: only a lost node may fail it,
    and then clearly (its stderr's last line a ``voxray:`` error)."""
    proc, stderr = _start_run(out, common, {**env, "RAY_ADDRESS": cluster.address})
    time.sleep(rng.uniform(20, 90))
    if proc.poll() is None:
        # here, not in a timer thread: starting a Ray node needs the main thread
        _lose_node(cluster, env, record)
    if proc.wait(timeout=3600) != 0:
        tail = stderr.read_text()[-3000:]
        assert record and tail.strip().splitlines()[-1].startswith("voxray:"), (*where, tail)


def _run_killing_the_driver(
    out: Path, common: list[str], env: dict[str, str], rng: random.Random
) -> int:
    """The run with its driver killed once mid-run (1), or finished before the kill (0)."""
    full = {**env, **private_ray_env()}
    proc, _ = _start_run(out, common, full)
    time.sleep(rng.uniform(20, 90))
    if proc.poll() is not None:
        return 0
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    kill_private_ray({**os.environ, **full})
    return 1


def _disturbed_run(
    out: Path,
    common: list[str],
    env: dict[str, str],
    disturbance: str,
    rng: random.Random,
    where: tuple[int, str],
) -> tuple[int, int]:
    """One soak run under ``disturbance`` (node, driver or none), then completed (a no-op
    when it finished): every stage is complete on disk. Returns (driver kills, node kills)."""
    driver_killed, node_kills = 0, []
    cluster = None
    try:
        if disturbance == "node":
            cluster = LocalCluster(2, worker_env=[env, env])  # faults reach the node's workers
            _run_losing_a_node(out, common, env, cluster, rng, node_kills, where)
            env = {**env, "RAY_ADDRESS": cluster.address}  # the rerun (or check) on it
        if disturbance == "driver":
            driver_killed = _run_killing_the_driver(out, common, env, rng)
        run_cli("run", "--out", str(out), *common, env=env, timeout=3600)
    finally:
        if cluster is not None:
            cluster.shutdown()
    return driver_killed, len(node_kills)


def _assert_stages_account(out: Path, i: int) -> None:
    """Each stage's inputs are its outputs, quarantined and skipped rows; the run checks."""
    s = Storage(str(out))
    for stage in STAGE_NAMES:
        if stage == "tune":
            continue
        info = stage_info(s, stage)
        assert info["inputs"] == info["outputs"] + info["quarantined"] + info["skipped"], (
            i,
            stage,
            info,
        )
    assert check(str(out)) == [], i


@pytest.mark.soak
def test_soak(tmp_path: Path) -> None:
    from voxray.corpus.synth import synth_corpus

    runs = int(os.environ.get("VOXRAY_SOAK_RUNS", "10"))
    profile = os.environ.get("VOXRAY_SOAK_PROFILE", "smoke")
    corpus = tmp_path / "corpus"
    synth_corpus(str(corpus), speakers=8, videos=2, utts=3, seed=21, test_speakers=3, jobs=2)
    common = ["--data-root", str(corpus), "--profile", profile, "tune.enabled=false"]
    reference = tmp_path / "reference"
    run_cli("run", "--out", str(reference), *common, timeout=3600)
    expected = keyed_rows(reference)
    assert all(expected.values()), {t: len(c) for t, c in expected.items()}  # rows to lose
    rng = random.Random(int(os.environ.get("VOXRAY_SOAK_SEED", "0")))
    injected = nodes_lost = 0
    tally = RowTally()
    for i in range(runs):
        out, faults = tmp_path / f"run{i}", tmp_path / f"faults{i}"
        faults.mkdir()
        chosen = rng.sample(FAULT_STAGES, 2)
        spec = ",".join(f"{s}:{rng.randint(1, 3)}:{rng.choice(['kill', 'raise'])}" for s in chosen)
        env = {"VOXRAY_FAULTS": spec, "VOXRAY_FAULT_DIR": str(faults)}
        disturbance = rng.choice(["driver", "node", "none"])
        driver_killed, node_kills = _disturbed_run(out, common, env, disturbance, rng, (i, spec))
        nodes_lost += node_kills
        injected += len(list(faults.iterdir())) + driver_killed + node_kills
        _assert_stages_account(out, i)
        tally.add(f"run {i} ({spec}, {disturbance})", expected, keyed_rows(out))
    print(
        f"\nsoak: {runs} runs, faults injected {injected} (node kills {nodes_lost}), rows "
        f"lost {tally.lost}, duplicated {tally.duplicated}, unexpected {tally.unexpected}"
    )
    # each on its own: rows lost against the reference, rows written twice, rows made up
    assert tally.lost == 0, tally.where
    assert tally.duplicated == 0, tally.where
    assert tally.unexpected == 0, tally.where
    # faults that never fired test nothing: a fault hook that stopped working must fail the soak
    assert injected > 0, "no injected fault fired in any run"


def test_row_tally_counts_each_kind_of_damage_on_its_own() -> None:
    """The soak's final checks, on hand-made tables: a lost row, a duplicated one and an
    unexpected one are each counted by their own tally only."""
    reference = {
        "features": row_counter(
            pd.DataFrame({"utt_id": ["a", "b", "c"], "kind": ["fbank"] * 3}), ["utt_id", "kind"]
        )
    }

    def tally_of(utts: list[str]) -> RowTally:
        df = pd.DataFrame({"utt_id": utts, "kind": ["fbank"] * len(utts)})
        tally = RowTally()
        tally.add("run", reference, {"features": row_counter(df, ["utt_id", "kind"])})
        return tally

    exact = tally_of(["a", "b", "c"])
    assert (exact.lost, exact.duplicated, exact.unexpected, exact.where) == (0, 0, 0, [])
    lost = tally_of(["a", "b"])
    assert (lost.lost, lost.duplicated, lost.unexpected) == (1, 0, 0)
    swapped = tally_of(["a", "b", "b"])  # same row count as the reference, one lost, one twice
    assert (swapped.lost, swapped.duplicated, swapped.unexpected) == (1, 1, 0)
    extra = tally_of(["a", "b", "c", "d"])
    assert (extra.lost, extra.duplicated, extra.unexpected) == (0, 0, 1)
    assert extra.where == ["run features: 0 lost, 0 duplicated, 1 unexpected"]
