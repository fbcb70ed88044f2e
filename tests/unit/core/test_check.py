"""`voxray check OUT`: OK on an output folder that meets the contract, exit 1 naming the table
of each violation, on a local folder, on s3:// and through ray_jobs/check.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.support.s3 import create_bucket, upload_tree
from voxray import schema
from voxray.cli import main
from voxray.eval.verification import compute_eer
from voxray.io.storage import Storage
from voxray.testing.synthetic_outputs import make_outputs

ROOT = Path(__file__).resolve().parents[3]


def _outputs(out: Path, eer_offset: float = 0.0) -> Storage:
    """A synthetic output folder with scores/ for its trials and metrics/ with their EER (moved
    by ``eer_offset``)."""
    s = make_outputs(str(out), model=False)
    trials = s.read_pandas(schema.TRIALS_PATH)
    labels = trials["label"].to_numpy(int)
    scores = labels + np.random.default_rng(0).normal(0.0, 1.0, labels.size)
    n = labels.size
    s.write_table(
        f"{schema.SCORES_PATH}/part-0.parquet",
        schema.table(
            schema.SCORES,
            {
                **{k: trials[k].tolist() for k in ("list", "label", "utt_a", "utt_b")},
                "model": ["ecapa"] * n,
                "condition": ["none"] * n,
                "scorer": ["cosine"] * n,
                "score": scores.tolist(),
            },
        ),
    )
    eer = compute_eer(scores, labels) + eer_offset
    row = schema.MetricRow("ecapa", "none", "veri_test2.txt", "cosine", "eer", eer)
    s.write_table(f"{schema.METRICS_PATH}/part-0.parquet", schema.metrics_table([row]))
    return s


def test_check_passes_on_outputs_that_meet_the_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _outputs(tmp_path / "out")
    assert main(["check", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and out.count("\n") == 1


def test_check_names_the_table_missing_a_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _outputs(tmp_path / "out")
    manifest = s.path(schema.MANIFEST_PATH)
    pq.write_table(pq.read_table(manifest).drop_columns(["gender"]), manifest)
    assert main(["check", str(tmp_path / "out")]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: manifest.parquet: missing columns ['gender']" in out
    assert out.endswith(": 1 problem\n")


def test_check_recomputes_every_eer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _outputs(tmp_path / "out", eer_offset=0.2)
    assert main(["check", str(tmp_path / "out")]) == 1
    assert "PROBLEM: metrics: eer" in capsys.readouterr().out


def test_check_refuses_a_folder_without_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path)]) == 1
    assert "none of the output tables" in capsys.readouterr().out


def test_check_reads_s3_through_the_configured_endpoint(
    tmp_path: Path, s3_endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _outputs(tmp_path / "out")
    create_bucket("voxray-check", s3_endpoint)
    upload_tree(tmp_path / "out", "s3://voxray-check/out", s3_endpoint)
    code = main(["check", "s3://voxray-check/out", f"corpus.s3.endpoint_url={s3_endpoint}"])
    assert code == 0, capsys.readouterr().out


def test_ray_job_entrypoint_runs_the_check(tmp_path: Path) -> None:
    _outputs(tmp_path / "out")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "ray_jobs" / "check.py"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("OK: "), proc.stdout + proc.stderr


def test_xai_rows_of_two_utterances_are_not_duplicates() -> None:
    """The XAI metrics are stored per utterance (the meta-evaluation's speaker intervals): two
    rows that differ only in utt_id are two measurements, not one written twice."""
    from voxray.check import row_keys

    columns = ["model", "condition", "list", "scorer", "metric", "value", "method", "family"]
    assert "utt_id" in row_keys("metrics", [*columns, "utt_id"])
    assert "utt_id" not in row_keys("metrics", columns)  # optional: only where present
