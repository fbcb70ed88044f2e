"""s3:// data roots against a local S3-compatible server (moto on 127.0.0.1; the whole run
with ``--out`` on s3:// is the session's shared smoke run, tests/e2e/test_smoke_run.py): a
server that goes away mid-stage fails the stage with a clear error and quarantines nothing
good; a rerun after it comes back completes; credentials never appear in logs or outputs."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.support.pipeline import VOXRAY, read, run_cli
from tests.support.s3 import create_bucket, moto_s3_server, upload_tree

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


def test_s3_outage_mid_stage_then_rerun(smoke_corpus: Path, tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "out"
    data = "s3://voxray-data/vox1"
    env = {**os.environ, **CREDS, "RAY_USAGE_STATS_ENABLED": "0", "VOXRAY_SLOW_BATCH_S": "1.5"}
    with moto_s3_server(port, CREDS) as endpoint:
        create_bucket("voxray-data", endpoint)
        n = upload_tree(smoke_corpus, data, endpoint)
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
        upload_tree(smoke_corpus, data, endpoint)
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
