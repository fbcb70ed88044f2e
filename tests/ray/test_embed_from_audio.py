"""The fused path (decode + front-end + embedding in one actor pass, no features/ written)
writes the same embeddings/ rows as the staged path (features stage, then embed) for the
same model and length buckets: every (utterance, segment) key, every frame count, every
embedding value. Segments only when the run evaluates with a segment scorer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.pipeline import read, sorted_rows
from voxray.config import ModelConfig, load_config
from voxray.io.run_state import stage_info
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.pipeline.context import RunContext
from voxray.pipeline.embed_plan import needs_segments
from voxray.pipeline.embed_stage import run_embed
from voxray.pipeline.features_stage import run_features
from voxray.pipeline.manifest_stage import run_manifest
from voxray.pipeline.stages import run_stages

pytestmark = pytest.mark.ray
KEYS = ["utt_id", "segment"]


@pytest.fixture(scope="module")
def corpus_and_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from voxray.corpus.synth import synth_corpus

    root = tmp_path_factory.mktemp("fused")
    synth_corpus(str(root / "corpus"), speakers=3, videos=2, utts=2, seed=5, jobs=2)
    torch.manual_seed(11)
    mcfg = ModelConfig(channels=32, embedding_dim=16)
    save_model(Storage(str(root)), "m", build_classifier(mcfg, 80, 3), mcfg, ["a", "b", "c"], 80)
    return root / "corpus", root / "m"


def _run(corpus: Path, model: Path, out: Path, from_audio: bool, stages: tuple[str, ...]):
    cfg = load_config(
        profile="smoke",
        overrides=[
            f"data_root={corpus}",
            f"out={out}",
            f"model_path={model}",
            f"embed.from_audio={'true' if from_audio else 'false'}",
            "embed.bucket_frames=25",
            "ray.progress_bars=false",
        ],
    )
    ctx = RunContext(cfg, stages=stages)
    run_manifest(ctx)
    if not from_audio:
        run_features(ctx)
    result = run_embed(ctx)
    assert result.outputs == read(out, "manifest.parquet").num_rows and not result.quarantined
    return sorted_rows(read(out, "embeddings"), KEYS)


def test_fused_embeddings_equal_staged(
    ray_local, corpus_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    corpus, model = corpus_and_model
    staged = _run(corpus, model, tmp_path / "staged", False, ("embed", "evaluate"))
    fused = _run(corpus, model, tmp_path / "fused", True, ("embed", "evaluate"))
    assert not (tmp_path / "fused" / "features").exists()
    assert (staged.column("segment").to_numpy() >= 0).any()  # segments were computed
    for name in ("utt_id", "segment", "start_frame", "num_frames", "model", "condition"):
        assert fused.column(name).to_pylist() == staged.column(name).to_pylist(), name
    full = np.asarray(staged.column("num_frames").to_pylist())[
        staged.column("segment").to_numpy() < 0
    ]
    assert (full % 25 == 0).all()  # full utterances were cropped to their length bucket
    np.testing.assert_allclose(
        np.stack(fused.column("embedding").to_numpy(zero_copy_only=False)),
        np.stack(staged.column("embedding").to_numpy(zero_copy_only=False)),
        rtol=0,
        atol=1e-5,
    )


def test_segments_only_for_an_evaluate_with_segment_scorers() -> None:
    cfg = load_config(profile="smoke")
    assert needs_segments(RunContext(cfg, stages=("embed", "evaluate")))
    assert not needs_segments(RunContext(cfg, stages=("embed",)))
    cosine_only = load_config(profile="smoke", overrides=["eval.scorers=[cosine]"])
    assert not needs_segments(RunContext(cosine_only, stages=("embed", "evaluate")))


def test_embed_alone_reads_audio_and_computes_no_segments(
    ray_local, corpus_and_model: tuple[Path, Path], tmp_path: Path
) -> None:
    """``voxray embed`` with the default ``embed.from_audio: auto`` on a fresh --out: the
    manifest, then embeddings from the audio (no features/), full utterances only, and the
    time split of its pool on the stage's marker."""
    corpus, model = corpus_and_model
    out = tmp_path / "out"
    cfg = load_config(
        profile="smoke",
        overrides=[f"data_root={corpus}", f"out={out}", f"model_path={model}"],
    )
    assert cfg.embed.from_audio == "auto" and cfg.embed.segments
    run_stages(RunContext(cfg), ("embed",), rerun=True)
    assert not (out / "features").exists()
    rows = read(out, "embeddings")
    assert rows.num_rows == read(out, "manifest.parquet").num_rows
    assert set(rows.column("segment").to_pylist()) == {-1}
    info = stage_info(Storage(str(out)), "embed")
    assert info["from_audio"] and info["segments"] is False
    split = info["time_split"]
    assert {"decode", "front-end", "forward", "arrow", "write", "start-up", "idle"} <= set(split)
    assert 0 < split["forward"] < 1 and 0 <= split["idle"] < 1
