"""Failures that are not the utterance's fault are retried, never quarantined for good: an
out-of-memory in one utterance of a group of 16 halves the group instead of quarantining it;
a deterministic failure quarantines the utterance alone; ``--retry-quarantined`` recomputes
a quarantine row whose cause is not the input file and takes it out of quarantine."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from voxray import schema
from voxray.config import AttributionConfig, ModelConfig
from voxray.io.sink import QuarantineCause, split_errors
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.pipeline import attribute_stage
from voxray.pipeline.attribute_stage import ComputeAttributions, Job
from voxray.pipeline.model_ref import ModelRef

BINS, FRAMES, N = 20, 50, 16
JOBS = [Job("saliency", "traversal"), Job("input_x_gradient", "traversal")]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> ModelRef:
    root = tmp_path_factory.mktemp("model")
    cfg = ModelConfig(channels=16, embedding_dim=16)
    torch.manual_seed(0)
    save_model(Storage(str(root)), "m", build_classifier(cfg, BINS, 4), cfg, list("abcd"), BINS)
    return ModelRef(str(root / "m"), "m")


def _batch(poison_nan: int | None = None) -> pa.Table:
    """16 utterances of equal length: one group of the stage's forward passes."""
    rng = np.random.default_rng(3)
    mats = [rng.standard_normal((FRAMES, BINS)).astype(np.float32) for _ in range(N)]
    if poison_nan is not None:
        mats[poison_nan][3, 4] = np.nan
    return pa.table(
        {
            "utt_id": [f"spk/v/{i:05d}" for i in range(N)],
            "num_frames": pa.array([FRAMES] * N, pa.int32()),
            "num_bins": pa.array([BINS] * N, pa.int32()),
            "values": schema.floats_column(mats),
        }
    )


def _compute(model: ModelRef, batch: pa.Table) -> pa.Table:
    actor = ComputeAttributions(model, AttributionConfig(), JOBS, None, 0.0, None)
    return actor(batch)


def _fail_with(monkeypatch, exc: Exception, poison: int, only_groups: bool) -> list[int]:
    """Make ``attribute`` raise ``exc`` for any group holding utterance ``poison`` (of more
    than one utterance when ``only_groups``: it fits alone); returns the group sizes seen."""
    real = attribute_stage.attribute
    poisoned = torch.from_numpy(schema.matrices(_batch())[poison].copy())
    sizes: list[int] = []

    def flaky(model, x, *args, **kwargs):
        sizes.append(int(x.shape[0]))
        hit = any(torch.equal(row, poisoned) for row in x)
        if hit and (x.shape[0] > 1 or not only_groups):
            raise exc
        return real(model, x, *args, **kwargs)

    monkeypatch.setattr(attribute_stage, "attribute", flaky)
    return sizes


def test_oom_in_one_utterance_halves_the_group_and_quarantines_nothing(
    model: ModelRef, monkeypatch
) -> None:
    reference = _compute(model, _batch())
    sizes = _fail_with(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"), 5, True)
    got = _compute(model, _batch())
    good, bad = split_errors(got)
    assert bad.num_rows == 0
    assert good.num_rows == N * len(JOBS)
    assert 1 in sizes and 16 in sizes and 8 in sizes  # halved down to one utterance
    keys = [("method", "ascending"), ("utt_id", "ascending")]
    got, ref = good.sort_by(keys), reference.sort_by(keys)
    for name in ("utt_id", "method", "target"):
        assert got.column(name).to_pylist() == ref.column(name).to_pylist(), name
    for a, b in zip(schema.matrices(got), schema.matrices(ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_oom_of_a_single_utterance_is_a_retryable_quarantine(model: ModelRef, monkeypatch) -> None:
    _fail_with(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"), 7, False)
    good, bad = split_errors(_compute(model, _batch()))
    assert good.num_rows == (N - 1) * len(JOBS)
    assert set(bad.column("utt_id").to_pylist()) == {"spk/v/00007"}
    assert set(bad.column("cause").to_pylist()) == {QuarantineCause.RESOURCES.value}


def test_deterministic_error_quarantines_the_utterance_alone(model: ModelRef, monkeypatch) -> None:
    _fail_with(monkeypatch, ValueError("no such pathway for this model"), 2, False)
    good, bad = split_errors(_compute(model, _batch()))
    assert set(bad.column("utt_id").to_pylist()) == {"spk/v/00002"}
    assert set(bad.column("cause").to_pylist()) == {QuarantineCause.COMPUTE.value}
    assert all("no such pathway" in r for r in bad.column("error").to_pylist())
    assert good.num_rows == (N - 1) * len(JOBS)


def test_other_errors_are_left_to_ray(model: ModelRef, monkeypatch) -> None:
    _fail_with(monkeypatch, ConnectionError("object store went away"), 2, False)
    with pytest.raises(ConnectionError):
        _compute(model, _batch())


def test_non_finite_input_is_the_input_files_fault(model: ModelRef) -> None:
    good, bad = split_errors(_compute(model, _batch(poison_nan=9)))
    assert bad.column("utt_id").to_pylist() == ["spk/v/00009"] * len(JOBS)
    assert set(bad.column("cause").to_pylist()) == {QuarantineCause.INPUT.value}
    assert good.num_rows == (N - 1) * len(JOBS)


def test_embed_halves_a_batch_that_runs_out_of_memory(model: ModelRef) -> None:
    from voxray.config import EmbedConfig
    from voxray.pipeline.embed_compute import ComputeEmbeddings

    actor = ComputeEmbeddings(model, "none", EmbedConfig(segments=False), 10.0, 0.0, None)
    mats = schema.matrices(_batch())
    reference = actor._embed(mats)
    real, sizes = actor.embedder, []

    def small_only(x: torch.Tensor) -> torch.Tensor:
        sizes.append(int(x.shape[0]))
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(x)

    actor.embedder = small_only
    got = actor._embed(mats)
    assert max(sizes) == actor.group and min(sizes) == 2
    for a, b in zip(got, reference, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
