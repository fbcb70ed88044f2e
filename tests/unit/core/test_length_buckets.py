"""Length buckets batch variable-length utterances exactly: each full-utterance embedding in a
batch equals the model's embedding of that utterance's crop alone; padding (the alternative)
does not, because ECAPA pads its convolutions by reflection and pools over every frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from voxray.config import EmbedConfig, ModelConfig
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.pipeline.datasets import equal_length_groups, length_sorted_batches
from voxray.pipeline.embed_compute import ComputeEmbeddings
from voxray.pipeline.length_buckets import bucket_length
from voxray.pipeline.model_ref import ModelRef
from voxray.schema import column_arrays


def test_bucket_length() -> None:
    assert [bucket_length(t, 20) for t in (5, 20, 39, 40, 41)] == [5, 20, 20, 40, 40]
    assert bucket_length(123, 1) == 123
    with pytest.raises(ValueError, match="bucket_frames"):
        bucket_length(10, 0)


@pytest.fixture
def embedder(tmp_path: Path) -> ComputeEmbeddings:
    torch.manual_seed(3)
    mcfg = ModelConfig(channels=32, embedding_dim=16)
    model = build_classifier(mcfg, 80, 4)
    save_model(Storage(str(tmp_path)), "m", model, mcfg, ["a", "b", "c", "d"], 80)
    cfg = EmbedConfig(segments=False, bucket_frames=20)
    return ComputeEmbeddings(ModelRef(str(tmp_path / "m"), "m"), "none", cfg, 10.0, 0.0, None)


def test_equal_length_groups_cap_frames() -> None:
    lengths = [150, 150, 150, 150, 150, 300, 300, 300, 700]
    assert equal_length_groups(lengths, 8) == [[0, 1, 2, 3, 4], [5, 6, 7], [8]]
    assert equal_length_groups(lengths, 8, max_frames=600) == [
        [0, 1, 2, 3],
        [4],
        [5, 6],
        [7],
        [8],  # longer than the cap: alone
    ]
    assert equal_length_groups(lengths, 2, max_frames=600)[0] == [0, 1]


def test_batches_hold_similar_lengths_longest_first() -> None:
    todo = pa.table({"utt_id": list("abcde"), "num_samples": [300, 100, 500, 200, 400]})
    batches = length_sorted_batches(todo, 2)
    assert [b.column("utt_id").to_pylist() for b in batches] == [["c", "e"], ["a", "d"], ["b"]]


def test_batched_buckets_equal_each_crop_alone(
    embedder: ComputeEmbeddings, rng: np.random.Generator
) -> None:
    lengths = [203, 207, 219, 221, 236, 239]  # buckets of 20: 200, 200, 200, 220, 220, 220
    mats = [rng.standard_normal((t, 80)).astype(np.float32) for t in lengths]
    ids = [f"u{i}" for i in range(len(mats))]
    batched = embedder.embed_rows(ids, mats)
    assert batched.column("num_frames").to_pylist() == [200, 200, 200, 220, 220, 220]
    crops = [bucket_length(t, 20) for t in lengths]
    # six utterances, two lengths: on a GPU two forwards; on a CPU at most 600 frames each
    assert len(equal_length_groups(crops, 128)) == 2
    assert sorted(map(len, embedder.groups(crops))) == [1, 2, 3]  # 3 x 200, 2 + 1 x 220
    got = np.stack(column_arrays(batched, "embedding"))
    with torch.inference_mode():
        alone = np.stack(
            [
                embedder.embedder(torch.from_numpy(m[:c])[None])[0].numpy()
                for m, c in zip(mats, crops, strict=True)
            ]
        )
        # the alternative, zero-padding to the batch's longest crop, changes the embeddings
        padded = torch.zeros(2, 220, 80)
        padded[0, :200] = torch.from_numpy(mats[0][:200])
        padded[1] = torch.from_numpy(mats[3][:220])
        pad_emb = embedder.embedder(padded)[0].numpy()
    np.testing.assert_allclose(got, alone, rtol=0, atol=1e-5)
    assert np.abs(pad_emb - alone[0]).max() > 1e-3
