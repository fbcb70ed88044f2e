"""s3:// data roots and outputs against a local S3-compatible server (moto on 127.0.0.1): the
whole smoke run writes to s3:// (every stage, the lock, the Tune sweep); a run completes;
a server that goes away mid-stage fails the stage with a clear error and quarantines nothing
good; a rerun after it comes back completes; credentials never appear in logs or outputs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from voxray.check import check
from voxray.config import S3Config
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.pipeline.stages import STAGE_NAMES
from voxray.testing.pipeline import VOXRAY, read, run_cli
from voxray.testing.s3 import create_bucket, moto_s3_server, upload_tree

SECRET = "PLANTED-secret-Zq81xV0-do-not-print"
CREDS = {"AWS_ACCESS_KEY_ID": "AKIAPLANTEDKEY0001", "AWS_SECRET_ACCESS_KEY": SECRET}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(endpoint: str) -> list[str]:
    return [
        "--profile",
        "smoke",
        f"corpus.s3.endpoint_url={endpoint}",
        "features.resources.concurrency=1",
        "features.resources.batch_size=4",
        "features.resources.rows_per_file=8",
    ]


def _all_text(out: Path) -> str:
    return "\n".join(p.read_bytes().decode("latin-1") for p in out.rglob("*") if p.is_file())


def test_s3_outage_mid_stage_then_rerun(tiny_corpus: Path, tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "out"
    data = "s3://voxray-data/vox1"
    env = {**os.environ, **CREDS, "RAY_USAGE_STATS_ENABLED": "0", "VOXRAY_SLOW_BATCH_S": "1.5"}
    with moto_s3_server(port, CREDS) as endpoint:
        create_bucket("voxray-data", endpoint)
        n = upload_tree(tiny_corpus, data, endpoint)
        assert n > 20
        manifest = run_cli(
            "manifest", "--data-root", data, "--out", str(out), *_args(endpoint), env=CREDS
        )
        proc = subprocess.Popen(
            [*VOXRAY, "features", "--data-root", data, "--out", str(out), *_args(endpoint)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.time() + 300
        while time.time() < deadline and not list((out / "features").rglob("part-*.parquet")):
            time.sleep(0.2)
    # the server is gone now, with the stage half done
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode != 0, "the stage must fail when its store goes away"
    assert "voxray:" in stderr and ("127.0.0.1" in stderr or "s3://voxray-data" in stderr), stderr[
        -2000:
    ]
    assert not (out / "_stages" / "features.json").exists()
    quarantined = (
        read(out, "quarantine.parquet").to_pylist() if (out / "quarantine.parquet").exists() else []
    )
    assert not [q for q in quarantined if q["stage"] == "features"], (
        "an outage must not quarantine good files"
    )
    with moto_s3_server(port, CREDS) as endpoint:  # back, at the same address
        create_bucket("voxray-data", endpoint)
        upload_tree(tiny_corpus, data, endpoint)
        rerun = run_cli(
            "features", "--data-root", data, "--out", str(out), *_args(endpoint), env=CREDS
        )
    manifest_ids = set(read(out, "manifest.parquet").column("utt_id").to_pylist())
    feats = read(out, "features", ["utt_id", "kind"])
    assert feats.num_rows == 2 * len(manifest_ids)  # fbank and mfcc, no duplicates
    assert set(feats.column("utt_id").to_pylist()) == manifest_ids
    for text in (
        manifest.stdout,
        manifest.stderr,
        stdout,
        stderr,
        rerun.stdout,
        rerun.stderr,
        _all_text(out),
    ):
        assert SECRET not in text and CREDS["AWS_ACCESS_KEY_ID"] not in text


def test_whole_smoke_run_with_out_on_s3(
    tiny_corpus: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every stage, the lock and the Tune sweep with ``--out s3://`` (only the project's
    endpoint setting: no AWS_ENDPOINT_URL for Ray Train or Tune to fall back on)."""
    create_bucket("voxray-out", s3_endpoint)
    out = "s3://voxray-out/run"
    args = ["--data-root", str(tiny_corpus), "--out", out, "--profile", "smoke"]
    endpoint = f"corpus.s3.endpoint_url={s3_endpoint}"
    run_cli("run", *args, endpoint, timeout=1800)
    s = Storage(out, S3Config(endpoint_url=s3_endpoint))
    for stage in STAGE_NAMES:
        info = stage_info(s, stage)
        assert info["inputs"] == info["outputs"] + info["quarantined"] + info["skipped"], stage
    assert not s.exists("_lock.json")  # released
    assert s.exists("tune/results.parquet") and s.exists("tune/best.yaml")
    assert s.parquet_files("tune/results.parquet")
    assert s.exists("models/ecapa/model.pt") and s.exists("report/index.html")
    assert s.find("models/ecapa/ray")  # Ray Train's checkpoints went to the bucket too
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)  # for the contract checker's Storage
    assert check(out) == []
    # a lock held by a run elsewhere refuses a second run on the same s3 --out
    s.write_text("_lock.json", json.dumps({"pid": 1, "host": "elsewhere", "since": 0}))
    proc = run_cli("report", *args, endpoint, check=False)
    assert proc.returncode != 0 and "another voxray run is writing" in proc.stderr
