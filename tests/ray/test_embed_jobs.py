"""Several (model, data) embedding jobs in one actor pool, as the retrain stage runs them: every
job's rows are embedded by its own model under its own condition, equal to that model
embedding the same rows directly, and a rerun embeds nothing again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from voxray import schema
from voxray.config import ModelConfig, load_config
from voxray.io.sink import write_partitioned
from voxray.models import build_classifier
from voxray.models.checkpoint import load_model, save_model
from voxray.pipeline.context import RunContext
from voxray.pipeline.embed_stage import EmbedJob, embed_jobs
from voxray.pipeline.model_ref import trained_model
from voxray.testing.synthetic_outputs import make_outputs

pytestmark = pytest.mark.ray
BINS = 24


def _masked(s, utt_ids: list[str], mats: list[np.ndarray]) -> None:
    """masked/ rows of one condition: each matrix halved (any change that keeps the shape)."""
    n = len(utt_ids)
    t = pa.table(
        {
            "utt_id": utt_ids,
            "kind": ["fbank"] * n,
            "method": ["saliency"] * n,
            "pathway": ["traversal"] * n,
            "condition": ["saliency/traversal/product"] * n,
            "threshold": pa.array([0.0] * n, pa.float64()),
            "num_frames": pa.array([m.shape[0] for m in mats], pa.int32()),
            "num_bins": pa.array([m.shape[1] for m in mats], pa.int32()),
            "values": schema.floats_column([m / 2 for m in mats]),
        }
    )
    write_partitioned(
        s, "masked", t, schema.MASKED, ("utt_id", "condition"), schema.MASKED_PARTITION
    )


def _direct(s, name: str, mats: list[np.ndarray]) -> list[np.ndarray]:
    model = load_model(s.uri(f"models/{name}")).classifier.eval()
    with torch.inference_mode():
        return [model.embedder(torch.from_numpy(np.array(m))[None]).numpy()[0] for m in mats]


def test_jobs_share_a_pool_and_each_row_is_its_own_models(ray_local, tmp_path: Path) -> None:
    out = tmp_path / "out"
    s = make_outputs(str(out), speakers=4, utts=2, frames=40, bins=BINS)
    cfg_m = ModelConfig(channels=16, embedding_dim=32)
    torch.manual_seed(1)
    save_model(s, "models/other", build_classifier(cfg_m, BINS, 2), cfg_m, ["a", "b"], BINS)
    feats = s.read_table("features/kind=fbank")
    ids = feats.column("utt_id").to_pylist()[:5]
    mats = schema.matrices(feats)[:5]
    _masked(s, ids, mats)

    cfg = load_config(
        profile="smoke",
        overrides=[f"out={out}", "embed.segments=false"],
    )
    ctx = RunContext(cfg)
    ecapa, other = trained_model(ctx, "ecapa"), trained_model(ctx, "other")
    masked = ("masked/method=saliency", {"condition": "saliency/traversal/product"})
    jobs = [
        EmbedJob(ecapa, "saliency-masked", *masked),
        EmbedJob(other, "saliency-masked", *masked),
        EmbedJob(other, "none", "features/kind=fbank"),
    ]
    results = embed_jobs(ctx, jobs, ids, cfg.embed.resources)
    assert [(r.outputs, r.skipped) for r in results] == [(5, 0)] * 3

    rows = s.read_table("embeddings").to_pandas()
    assert len(rows) == 15 and not rows.duplicated(["utt_id", "model", "condition"]).any()
    want = {
        ("ecapa", "saliency-masked"): _direct(s, "ecapa", [m / 2 for m in mats]),
        ("other", "saliency-masked"): _direct(s, "other", [m / 2 for m in mats]),
        ("other", "none"): _direct(s, "other", mats),
    }
    for (model, condition), embs in want.items():
        got = rows[(rows.model == model) & (rows.condition == condition)].set_index("utt_id")
        for u, e in zip(ids, embs, strict=True):
            np.testing.assert_allclose(got.loc[u, "embedding"], e, rtol=1e-4, atol=1e-5)

    again = embed_jobs(ctx, jobs, ids, cfg.embed.resources)
    assert [r.outputs for r in again] == [5] * 3
    assert s.read_table("embeddings").num_rows == 15
