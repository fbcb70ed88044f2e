"""Soak mode (``pytest -m soak``; ``bash scripts/test.sh --soak``): the whole smoke pipeline,
Train, Tune and the retrainings included, run again and again on a fresh local 3-node cluster
(a head without CPUs, two worker nodes) with ``--out`` on s3:// (moto behind a gate that can go
down), each run under seeded random faults (tests/support/soak.py's draw_plan): five actors
or training workers killed or raising mid-batch and four worker nodes killed without grace
(a fresh one added each time), each in a stage of its own, the driver killed and the S3
server unreachable for a few seconds, each in a stage drawn. A run that fails must say why
(voxray's error ends its log) and completes on rerun. After each: every stage accounts for its
inputs, the output folder checks, and no row is lost, duplicated or made up against an
undisturbed reference run. The table of faults fired, survived, reruns needed and rows
lost/duplicated per fault kind and stage is printed and written to VOXRAY_SOAK_REPORT (default:
the test's tmp folder). Runs: VOXRAY_SOAK_RUNS (default 3: up to 33 faults, 12 node losses);
seed: VOXRAY_SOAK_SEED (0); profile: VOXRAY_SOAK_PROFILE (smoke; `demo`: the demo pipeline)."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cluster import LocalCluster
from tests.support.pipeline import VOXRAY, accounts_for_inputs, read, run_cli
from tests.support.s3 import create_bucket, download_tree, moto_s3_server
from tests.support.soak import (
    ACTOR_STAGES,
    DRIVER_KILLED,
    NODE_LOST,
    ORDER,
    S3_OUTAGE,
    Disturbance,
    RunPlan,
    S3Gate,
    SoakTable,
    draw_plan,
    failed_clearly,
    fired_actor_faults,
    reached,
    running_stage,
)
from voxray.check import check, row_keys
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.pipeline.stages import STAGE_NAMES

TABLES = ("manifest.parquet", "features", "embeddings", "attributions", "masked")


#: the sweep's results, keyed by a trial's configuration (its id is new in every run), metric
#: and whether it ended done: a trial lost to a fault is a lost row.
TUNE_RESULTS = "tune/results.parquet"


def keyed_rows(out: Path) -> dict[str, Counter]:
    """Per table, how many times each row key (the contract's key columns) occurs."""
    found = {}
    for t in TABLES:
        table = read(out, t)
        keys = row_keys(t, table.column_names)
        found[t] = row_counter(table.select(keys).to_pandas(), keys)
    trials = read(out, TUNE_RESULTS).to_pandas()
    trials["status"] = trials["status"].where(trials["status"] == "done", "failed")
    found[TUNE_RESULTS] = row_counter(trials, ["config", "metric", "status"])
    return found


def row_counter(df: pd.DataFrame, keys: list[str]) -> Counter:
    """How many times each key occurs; a key is its (column, value) pairs."""
    return Counter(
        tuple(zip(keys, row, strict=True)) for row in df[keys].astype(str).itertuples(index=False)
    )


#: the key columns that name the trial a trial-pathway row explains. Which trials are the worst
#: depends on the trained model, and a training restarted from its checkpoint (a node lost
#: mid-epoch) is not bit for bit the reference's: the soak compares those rows by method, list
#: and side, and still counts each one.
TRIAL_NAMING = frozenset({"utt_id", "utt_a", "utt_b"})


def comparable(key: tuple) -> tuple:
    """``key`` as it is compared with the reference run's: a trial row without its trial."""
    if ("pathway", "trial") not in key:
        return key
    return tuple((c, "*" if c in TRIAL_NAMING else v) for c, v in key)


@dataclass
class RowTally:
    """Rows of the soak's runs against the reference run, each count on its own: a key of the
    reference a run lacks is lost, a key a run holds twice is duplicated, a key the reference
    lacks is unexpected."""

    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    where: list[str] = field(default_factory=list)

    def add(
        self, run: str, reference: dict[str, Counter], got: dict[str, Counter]
    ) -> tuple[int, int]:
        """Count ``got`` (one run) against ``reference``; returns this run's (lost, duplicated)."""
        run_lost = run_duplicated = 0
        for t, ref in reference.items():
            mine = got.get(t, Counter())
            duplicated = sum(n - 1 for n in mine.values() if n > 1)
            theirs, ours = (Counter(comparable(k) for k in c) for c in (ref, mine))
            lost, unexpected = sum((theirs - ours).values()), sum((ours - theirs).values())
            run_lost += lost
            run_duplicated += duplicated
            self.unexpected += unexpected
            if lost or duplicated or unexpected:
                self.where.append(
                    f"{run} {t}: {lost} lost, {duplicated} duplicated, {unexpected} unexpected"
                )
        self.lost += run_lost
        self.duplicated += run_duplicated
        return run_lost, run_duplicated


def max_reruns(plan: RunPlan) -> int:
    """The reruns a soak run may take to complete: one for each outside disturbance (a killed
    driver always needs one; a lost node may fail the stage it hit, which the rerun resumes)
    and one for the actor faults. A run needing more does not recover."""
    return len(plan.disturbances) + 1


def _start_run(log: Path, args: list[str], env: dict[str, str]):
    """``voxray run *args`` in the background, in its own process group, its stderr to ``log``
    (returned with the process)."""
    full = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **env}
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*VOXRAY, "run", *args],
            env=full,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    return proc, log


def _wait_for(proc: subprocess.Popen, log: Path, d: Disturbance) -> None:
    """Until ``d``'s moment: ``d.delay`` seconds after the attempt is seen reaching ``d.stage``
    (or it ends first)."""
    while proc.poll() is None and not reached(running_stage(log), d.stage):
        time.sleep(0.5)
    until = time.time() + d.delay
    while time.time() < until and proc.poll() is None:
        time.sleep(0.2)


def _disturb(
    d: Disturbance, proc: subprocess.Popen, stage: str, cluster: LocalCluster, gate: S3Gate, env
) -> str:
    """Fire ``d`` on the running ``proc``; returns its fault kind."""
    if d.kind == "node":  # a spot preemption: a node hosting the stage's workers dies, one joins
        cluster.kill_worker("RayTrainWorker" if stage in ("train", "retrain") else "MapWorker")
        cluster.add_worker(env)  # here, not in a timer thread: a Ray node needs the main thread
        return NODE_LOST
    if d.kind == "s3":
        gate.outage(d.seconds)
        return S3_OUTAGE
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return DRIVER_KILLED


@dataclass
class RunOutcome:
    """What one soak run went through: the outside faults that fired (kind, stage), the reruns
    it needed, whether it completed, and failures that did not say what went wrong."""

    fired: list[tuple[str, str]] = field(default_factory=list)
    #: for each of ``fired``: whether an attempt failed after it, it the last outside fault
    #: fired in that attempt (a failed attempt without one is put down to the actor faults).
    needed_rerun: list[bool] = field(default_factory=list)
    actor_rerun: bool = False
    reruns: int = 0
    complete: bool = False
    unclear: list[str] = field(default_factory=list)


def _soak_run(
    logs: Path, args: list[str], env: dict[str, str], plan: RunPlan, gate: S3Gate
) -> RunOutcome:
    """One run on a fresh 3-node cluster (a head without CPUs, two worker nodes whose workers
    carry ``env``'s faults) under ``plan``'s disturbances, rerun while it fails (at most
    ``max_reruns`` times). A disturbance not yet fired when an attempt fails comes in the rerun.
    A run that fails must fail clearly (``failed_clearly``) unless its driver was killed."""
    outcome = RunOutcome()
    cluster = LocalCluster(2, worker_env=[env, env])
    pending = list(plan.disturbances)
    try:
        run_env = {**env, "RAY_ADDRESS": cluster.address}
        while True:
            attempt = logs / f"attempt{outcome.reruns}.stderr"
            proc, log = _start_run(attempt, args, run_env)
            fired_here = len(outcome.fired)
            while pending:
                _wait_for(proc, log, pending[0])
                if proc.poll() is not None:
                    break  # the attempt ended first
                stage = running_stage(log)
                kind = _disturb(pending.pop(0), proc, stage, cluster, gate, env)
                outcome.fired.append((kind, stage))
                outcome.needed_rerun.append(False)
                if kind == DRIVER_KILLED:
                    break
            rc = proc.wait(timeout=3600)
            if rc != 0 and len(outcome.fired) > fired_here:
                outcome.needed_rerun[-1] = True
            elif rc != 0:
                outcome.actor_rerun = True
            text = log.read_text(errors="replace")
            if rc not in (0, -signal.SIGKILL) and not failed_clearly(text):
                outcome.unclear.append(f"{log}: {text.strip()[-300:] or '(empty)'}")
            if rc == 0 or outcome.reruns == max_reruns(plan):
                break
            outcome.reruns += 1
        outcome.complete = rc == 0
    finally:
        cluster.shutdown()
    return outcome


def _stages_unaccounted(out: Path, i: int) -> list[str]:
    """Where a stage's inputs are not its outputs, quarantined and skipped rows, or the output
    folder does not check (voxray.check)."""
    s = Storage(str(out))
    found = []
    for stage in STAGE_NAMES:
        info = stage_info(s, stage)
        if stage != "tune" and not accounts_for_inputs(info):
            found.append(f"run {i} {stage}: {info}")
    return found + [f"run {i}: {p}" for p in check(str(out))]


def _reference_rows(out: Path, common: list[str]) -> dict[str, Counter]:
    """The keyed rows of an undisturbed run, which every soak run must reproduce."""
    run_cli("run", "--out", str(out), *common, timeout=3600)
    expected = keyed_rows(out)
    assert all(expected.values()), {t: len(c) for t, c in expected.items()}  # rows to lose
    return expected


#: the soak's own limit, not its tier's (25 min): ~7 min per run on this 2-core machine.
SOAK_TIMEOUT_S = 4 * 3600


@pytest.mark.soak
@pytest.mark.timeout(SOAK_TIMEOUT_S)
def test_soak(tmp_path: Path) -> None:
    from voxray.corpus.synth import synth_corpus

    runs = int(os.environ.get("VOXRAY_SOAK_RUNS", "3"))
    profile = os.environ.get("VOXRAY_SOAK_PROFILE", "smoke")
    corpus = tmp_path / "corpus"
    synth_corpus(str(corpus), speakers=8, videos=2, utts=3, seed=21, test_speakers=3, jobs=2)
    # one retraining, not two (no shuffled-map control): the retrain stage all the same, faster
    common = ["--data-root", str(corpus), "--profile", profile, "mask.controls=false"]
    expected = _reference_rows(tmp_path / "reference", common)
    rng = random.Random(int(os.environ.get("VOXRAY_SOAK_SEED", "0")))
    table, tally, unclear, unaccounted = SoakTable(), RowTally(), [], []
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's line per request
    with moto_s3_server() as endpoint:
        create_bucket("soak", endpoint)
        gate = S3Gate(int(endpoint.rsplit(":", 1)[1]))
        try:
            for i in range(runs):
                plan = draw_plan(rng)
                logs, faults, local = (tmp_path / f"{k}{i}" for k in ("logs", "faults", "run"))
                logs.mkdir()
                faults.mkdir()
                env = {"VOXRAY_FAULTS": plan.spec, "VOXRAY_FAULT_DIR": str(faults)}
                out = f"s3://soak/run{i}"
                args = ["--out", out, *common, f"corpus.s3.endpoint_url={gate.url}"]
                outcome = _soak_run(logs, args, env, plan, gate)
                unclear += outcome.unclear
                download_tree(out, local, endpoint)
                where = f"run {i} ({plan.spec}; {[d.kind for d in plan.disturbances]})"
                lost, duplicated = tally.add(
                    where, expected, keyed_rows(local) if outcome.complete else {}
                )
                if outcome.complete:
                    unaccounted += _stages_unaccounted(local, i)
                actor = fired_actor_faults(plan.spec, faults)
                table.add_run(
                    f"run {i}",
                    outcome.fired + actor,
                    outcome.needed_rerun + [outcome.actor_rerun] * len(actor),
                    outcome.reruns,
                    outcome.complete,
                    lost,
                    duplicated,
                )
        finally:
            gate.close()
    report = table.markdown()
    print("\n" + report)
    (Path(os.environ.get("VOXRAY_SOAK_REPORT", tmp_path / "soak.md"))).write_text(report + "\n")
    assert not table.failed_runs, (table.failed_runs, tally.where)
    # each on its own: rows lost against the reference, rows written twice, rows made up
    assert tally.lost == 0, tally.where
    assert tally.duplicated == 0, tally.where
    assert tally.unexpected == 0, tally.where
    assert not unaccounted, unaccounted
    assert not unclear, unclear
    # faults that never fired test nothing: a fault hook that stopped working must fail the soak
    assert table.fired() > 0, "no injected fault fired in any run"


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


def test_row_tally_compares_trial_rows_without_their_trial() -> None:
    """Another worst trial explained (a retrained model's) is neither lost nor unexpected, but a
    trial row missing, or written twice, still counts."""
    keys = ["utt_id", "method", "pathway", "utt_a", "utt_b", "side"]

    def rows(*trials: tuple[str, str]) -> Counter:
        df = pd.DataFrame(
            [(a, "saliency", "trial", a, b, "a") for a, b in trials]
            + [("u1", "saliency", "traversal", "", "", "")],
            columns=keys,
        )
        return row_counter(df, keys)

    reference = {"attributions": rows(("x", "y"))}
    for trials, counts in (
        ((("p", "q"),), (0, 0, 0)),  # another trial: the same row, as compared
        ((), (1, 0, 0)),
        ((("x", "y"), ("x", "y")), (0, 1, 0)),
        ((("x", "y"), ("p", "q")), (0, 0, 1)),
    ):
        tally = RowTally()
        tally.add("run", reference, {"attributions": rows(*trials)})
        assert (tally.lost, tally.duplicated, tally.unexpected) == counts, trials


def test_s3_gate_relays_and_goes_down_for_a_while() -> None:
    """The gate passes bytes both ways; during an outage a connection gets nothing (closed at
    once), afterwards the same address works again."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def echo() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(conn.recv(100).upper())

        threading.Thread(target=echo, daemon=True).start()
        gate = S3Gate(server.getsockname()[1])

        def ask() -> bytes:
            with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as c:
                c.sendall(b"ping")
                try:
                    return c.recv(100)
                except OSError:
                    return b""

        try:
            assert ask() == b"PING"
            down = threading.Thread(target=gate.outage, args=(1.5,))
            down.start()
            time.sleep(0.3)
            assert ask() == b""
            down.join()
            assert ask() == b"PING"
        finally:
            gate.close()


def test_plan_and_table_count_what_fired() -> None:
    """A run's plan holds five actor faults and four node losses, each in a stage of its own,
    a driver kill and an outage, in the order the run reaches their stages (over many seeds,
    every stage that runs on the workers is drawn); the table counts each fired fault under its
    kind and stage, a lost row against every fault of its run, and the runs not recovered."""
    plan = draw_plan(random.Random(3))
    stages = [item.split(":")[0] for item in plan.spec.split(",")]
    assert len(stages) == len(set(stages)) == 5
    kinds = sorted(d.kind for d in plan.disturbances)
    assert kinds == ["driver"] + ["node"] * 4 + ["s3"]
    nodes = [d.stage for d in plan.disturbances if d.kind == "node"]
    assert len(set(nodes)) == 4
    order = [(ORDER.index(d.stage), d.delay) for d in plan.disturbances]
    assert order == sorted(order) and all(0.5 <= d <= 6 for _, d in order)
    drawn = {d.stage for seed in range(40) for d in draw_plan(random.Random(seed)).disturbances}
    assert drawn == {*ACTOR_STAGES, "evaluate"}
    # a fault aimed at a stage comes once the run is there or past it (a rerun skips stages)
    assert reached("attribute", "embed") and reached("embed", "embed")
    assert not reached("train", "embed") and not reached("-", "features")
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "voxray-fault-train").touch()
        fired = fired_actor_faults("train:1:kill,embed:2:raise", Path(d))
    assert fired == [("worker killed", "train")]  # embed's never fired
    table = SoakTable()
    table.add_run("run 0", [*fired, (NODE_LOST, "embed")], [False, False], 0, True, 0, 0)
    run1 = [(NODE_LOST, "embed"), (DRIVER_KILLED, "mask")]
    table.add_run("run 1", run1, [False, True], 1, True, 2, 0)
    assert table.fired() == 4 and table.fired(NODE_LOST) == 2
    assert table.survived() == 2  # run 1 lost rows: neither of its faults survived
    assert table.failed_runs == ["run 1"]
    md = table.markdown()
    assert f"| {NODE_LOST} | embed | 2 | 1 | 0 | 2 | 0 |" in md  # the driver kill needed it
    assert f"| {DRIVER_KILLED} | mask | 1 | 0 | 1 | 2 | 0 |" in md
    assert "2 runs, 4 faults fired (2 node losses), 2 survived; 1 reruns needed" in md


def test_a_failure_is_clear_when_voxrays_error_ends_the_log() -> None:
    """A failed run's log must end with voxray's own error; a message running over several
    lines (a training failure's worker snippet) still counts, a log that stops in Ray's
    output or voxray's progress does not."""
    progress = "[voxray] 14:55:47 INFO stage train: started (not complete)\n"
    snippet = "voxray: WorkerGroupError: Training failed:\n[Rank 0 Error Snippet]:\nRPC error\n"
    assert failed_clearly(progress + snippet)
    assert not failed_clearly(progress)
    assert not failed_clearly(snippet + progress)
    assert not failed_clearly(progress + "Traceback (most recent call last):\n  ...\n")
