"""End to end on the smoke profile: `voxray run` through every stage on a generated corpus,
checked against the output contract; a rerun skips everything and duplicates nothing; the
README's DuckDB queries run on the result."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from voxray.check import check
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.pipeline.stages import STAGE_NAMES
from voxray.testing.pipeline import read, run_cli

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    from voxray.corpus.synth import synth_corpus

    base = tmp_path_factory.mktemp("smoke")
    corpus, out = base / "corpus", base / "out"
    synth_corpus(str(corpus), speakers=8, videos=2, utts=3, seed=5, test_speakers=3, jobs=2)
    proc = run_cli(
        "run", "--data-root", str(corpus), "--out", str(out), "--profile", "smoke", timeout=1800
    )
    return corpus, out, proc.stdout + proc.stderr


def test_every_stage_completed(smoke) -> None:
    _, out, log = smoke
    s = Storage(str(out))
    for stage in STAGE_NAMES:
        info = stage_info(s, stage)
        assert info["inputs"] == info["outputs"] + info["quarantined"] + info["skipped"], (
            stage,
            info,
        )
    assert f"report: {out}/report/index.html" in log


def test_outputs_meet_the_contract(smoke) -> None:
    _, out, _ = smoke
    assert check(str(out)) == []
    manifest = read(out, "manifest.parquet")
    assert manifest.num_rows == 48
    assert set(manifest.column("split").to_pylist()) == {"train", "test"}
    metrics = read(out, "metrics").to_pandas()
    eer = metrics[
        (metrics.metric == "eer") & (metrics.scorer == "cosine") & (metrics.condition == "none")
    ]
    assert not eer.empty and eer.value.between(0, 1).all()
    assert {"integrated_gradients", "saliency", "layer_cam", "lrp_epsilon"} <= set(
        read(out, "attributions", ["method"]).column("method").to_pylist()
    )


def test_rerun_skips_every_stage_and_duplicates_nothing(smoke) -> None:
    corpus, out, _ = smoke
    before = {
        rel: read(out, rel).num_rows
        for rel in (
            "manifest.parquet",
            "features",
            "embeddings",
            "attributions",
            "scores",
            "metrics",
        )
    }
    proc = run_cli("run", "--data-root", str(corpus), "--out", str(out), "--profile", "smoke")
    log = proc.stdout + proc.stderr
    for stage in STAGE_NAMES:
        assert f"stage {stage}: already complete, skipped" in log
    after = {rel: read(out, rel).num_rows for rel in before}
    assert after == before


def test_readme_duckdb_queries_run(smoke) -> None:
    _, out, _ = smoke
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sql\n(.*?)```", readme, re.S).group(1)
    queries = [
        q for q in (x.strip() for x in block.replace("OUT", str(out)).split(";")) if "SELECT" in q
    ]
    assert len(queries) == 3
    con = duckdb.connect()
    for q in queries:
        rows = con.execute(q).fetchall()
        assert rows, q
