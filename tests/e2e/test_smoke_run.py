"""The session's one whole pipeline run (``smoke_run``: ``voxray run --profile smoke`` on a local
3-node cluster, ``--out`` on s3://) meets every end-to-end guarantee: every stage completes and
accounts for each input; the output meets the contract (EER recomputed by scikit-learn); the
output is visible from every node; Train, Tune and the lock work on s3://; a rerun skips every
stage and duplicates nothing; ``--retry-quarantined`` recomputes a transient quarantine row and
only it; the README's DuckDB queries run on the result; the console is voxray's."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tests.support.pipeline import accounts_for_inputs, read, run_cli
from voxray.check import check, sklearn_eer
from voxray.io.run_state import stage_done, stage_info
from voxray.io.sink import QuarantineCause, write_quarantine
from voxray.io.storage import Storage
from voxray.log import console_problems
from voxray.pipeline import attribute_stage
from voxray.pipeline.attribute_stage import Job
from voxray.pipeline.stages import STAGE_NAMES

ROOT = Path(__file__).resolve().parents[2]
TABLES = ("manifest.parquet", "features", "embeddings", "attributions", "scores", "metrics")


def test_every_stage_completed_and_accounts_for_its_inputs(smoke_run) -> None:
    s = smoke_run.storage()
    for stage in STAGE_NAMES:
        info = stage_info(s, stage)
        assert info, f"stage {stage} left no marker"
        assert accounts_for_inputs(info), (stage, info)
        assert info["inputs"] > 0 or stage in ("tune", "report"), (stage, info)
    assert f"report: {smoke_run.out}/report/index.html" in smoke_run.log


def test_the_run_used_every_node_of_the_cluster(smoke_run) -> None:
    assert "visible from all 3 Ray nodes" in smoke_run.log


def test_the_console_is_voxrays_and_short(smoke_run) -> None:
    """At most 300 lines for a whole run, none of them Ray's own (its worker output, progress
    bars, 'Failed to query' polling, Tune's tables): those go to Ray's log folder."""
    assert console_problems(smoke_run.log) == []
    assert "Ray's own logs (its workers, Ray Data, Ray Train and Tune): " in smoke_run.log


def test_train_tune_and_the_lock_on_s3(smoke_run) -> None:
    s = smoke_run.storage()
    assert not s.exists("_lock.json")  # released
    assert s.parquet_files("tune/results.parquet") and s.exists("tune/best.yaml")
    assert s.exists("models/ecapa/model.pt") and s.exists("report/index.html")
    assert s.find("models/ecapa/ray")  # Ray Train's checkpoints went to the bucket too


def test_outputs_meet_the_contract(smoke_run) -> None:
    out = smoke_run.local
    assert check(str(out)) == []
    manifest = read(out, "manifest.parquet")
    assert manifest.num_rows == 6 * 2 * 2
    assert set(manifest.column("split").to_pylist()) == {"train", "test"}
    assert {"integrated_gradients", "saliency", "layer_cam", "lrp_epsilon"} <= set(
        read(out, "attributions", ["method"]).column("method").to_pylist()
    )


def test_base_model_eer_is_the_one_its_scores_give(smoke_run) -> None:
    """The base model's EER on the first list, as stored, against scikit-learn's on the stored
    scores (its trials all present: as many as the list's lines in the corpus)."""
    out = smoke_run.local
    metrics = read(out, "metrics").to_pandas()
    scores = read(out, "scores").to_pandas()
    key = {"model": "ecapa", "condition": "none", "scorer": "cosine", "list": "veri_test2.txt"}
    pick = " and ".join(f"{k} == {v!r}" for k, v in key.items())
    eer = metrics.query(f"metric == 'eer' and {pick}")
    trials = scores.query(pick)
    assert len(eer) == 1 and len(trials) == _lines(smoke_run.corpus / "veri_test2.txt")
    labels = trials["label"].to_numpy(int)
    assert 0 < labels.sum() < len(labels)
    assert abs(eer["value"].iloc[0] - sklearn_eer(trials["score"].to_numpy(float), labels)) < 1e-6


def _lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


def test_rerun_skips_every_stage_and_duplicates_nothing(smoke_run) -> None:
    """On the local Ray this time: the stage markers, not the cluster, decide what is done."""
    s = smoke_run.storage()
    before = {rel: s.read_table(rel).num_rows for rel in TABLES}
    args = ["--data-root", str(smoke_run.corpus), "--out", smoke_run.out, "--profile", "smoke"]
    proc = run_cli("run", *args, smoke_run.endpoint_override)
    log = proc.stdout + proc.stderr
    for stage in STAGE_NAMES:
        assert f"stage {stage}: already complete, skipped" in log
    assert {rel: s.read_table(rel).num_rows for rel in TABLES} == before


def test_a_lock_held_elsewhere_refuses_a_second_run(smoke_run) -> None:
    s = smoke_run.storage()
    s.write_text("_lock.json", json.dumps({"pid": 1, "host": "elsewhere", "since": 0}))
    try:
        args = ["--data-root", str(smoke_run.corpus), "--out", smoke_run.out]
        proc = run_cli(
            "report", *args, "--profile", "smoke", smoke_run.endpoint_override, check=False
        )
    finally:
        s.remove("_lock.json")
    assert proc.returncode != 0 and "another voxray run is writing" in proc.stderr


def test_readme_duckdb_queries_run(smoke_run) -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sql\n(.*?)```", readme, re.S).group(1)
    queries = [
        q
        for q in (x.strip() for x in block.replace("OUT", str(smoke_run.local)).split(";"))
        if "SELECT" in q
    ]
    assert len(queries) == 3
    con = duckdb.connect()
    for q in queries:
        rows = con.execute(q).fetchall()
        assert rows, q
    eer = con.execute(queries[0]).fetchall()
    assert all(np.isfinite(r[-1]) for r in eer)


def test_retry_quarantined_recomputes_a_transient_row(smoke_run, tmp_path: Path) -> None:
    """On a copy of the session's smoke run: one attribution row turned into the quarantine row
    an out-of-memory used to leave is recomputed by ``--retry-quarantined``, and only it."""
    out = tmp_path / "out"
    shutil.copytree(smoke_run.local, out)
    common = ["--data-root", str(smoke_run.corpus), "--out", str(out), "--profile", "smoke"]
    keys = ["utt_id", "method", "pathway"]
    full = read(out, "attributions", keys)
    job = Job("saliency", "traversal")
    saliency = full.filter(pc.equal(full.column("method"), job.method))
    traversal = saliency.filter(pc.equal(saliency.column("pathway"), job.pathway))
    utt = sorted(traversal.column("utt_id").to_pylist())[0]
    # turn one computed row into what an out-of-memory used to leave: a quarantine row
    s = Storage(str(out))
    for f in s.parquet_files(f"attributions/method={job.method}"):
        t = read(out, f)
        drop = pc.and_(
            pc.equal(t.column("utt_id"), utt), pc.equal(t.column("pathway"), job.pathway)
        )
        keep = t.filter(pc.invert(drop))
        if keep.num_rows < t.num_rows:
            s.write_table(f, keep)
    assert read(out, "attributions", keys).num_rows == full.num_rows - 1
    transient = pa.table(
        {
            "path": [attribute_stage.quarantine_path(utt, job)],
            "error": ["saliency/traversal: OutOfMemoryError: CUDA out of memory"],
            "cause": [QuarantineCause.RESOURCES.value],
        }
    )
    write_quarantine(s, "attribute", transient)
    bad_file = pa.table({"path": ["wav/x/y/00001.wav"], "error": ["empty file"]})
    write_quarantine(s, "attribute", bad_file)  # cause input: never retried

    run_cli("attribute", *common)  # a plain rerun leaves quarantine alone
    assert read(out, "attributions", keys).num_rows == full.num_rows - 1
    assert all(stage_done(s, later) for later in ("mask", "retrain", "evaluate"))

    proc = run_cli("attribute", "--retry-quarantined", *common)
    assert "recomputing 1 quarantined items" in proc.stdout + proc.stderr
    # what reads attributions adds the row on the next run; the model is not retrained for it
    assert not stage_done(s, "mask") and not stage_done(s, "evaluate")
    assert stage_done(s, "retrain")
    after = read(out, "attributions", keys)
    assert sorted(zip(*after.to_pydict().values(), strict=True)) == sorted(
        zip(*full.select(after.column_names).to_pydict().values(), strict=True)
    )
    q = [r for r in read(out, "quarantine.parquet").to_pylist() if r["stage"] == "attribute"]
    assert [(r["path"], r["cause"]) for r in q] == [
        ("wav/x/y/00001.wav", QuarantineCause.INPUT.value)
    ]
