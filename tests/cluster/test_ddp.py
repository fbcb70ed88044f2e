"""DDP with two Ray Train workers (gloo on CPU) trains like one worker with the same global
batch: the same loss every epoch, the same learning rates and the same final weights,
BatchNorm running statistics included (voxray.train.sync_bn). Without synchronised
BatchNorm the two runs part ways, which shows the comparison can fail.

Every utterance is exactly one crop long and an epoch is one full-batch step, so both runs
see the same rows in every step whatever order Ray Data delivers them in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from voxray.config import ModelConfig, TrainConfig
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import load_model
from voxray.schema import floats_column
from voxray.train.trainer import TrainResult, train_model

pytestmark = pytest.mark.ray

SPEAKERS, UTTS, BINS, FRAMES = 4, 4, 8, 20
MODEL = ModelConfig(arch="ecapa_tdnn", channels=16, embedding_dim=8)
#: attentive pooling's softmax over time ignores a per-channel constant, so this bias has a
#: gradient of float noise, which Adam turns into steps of +-lr at random in any two runs.
SHIFT_INVARIANT = "embedder.pool.conv.bias"


def _group_bn_rank(rank: int, port: int, x: torch.Tensor, out: dict) -> None:
    """One of two gloo ranks: GroupBatchNorm on its half of ``x`` ``(B, C, T)``."""
    import torch.distributed as dist

    from voxray.train.sync_bn import GroupBatchNorm

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        bn = GroupBatchNorm(x.shape[1])
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        half = x.shape[0] // 2
        mine = x[rank * half : (rank + 1) * half].clone().requires_grad_(True)
        y = bn(mine)
        (y * torch.arange(y.numel()).reshape(y.shape).sin()).sum().backward()
        # the gradient of a sum over ranks: add up the parameters' gradients as DDP would
        grads = torch.cat([bn.weight.grad, bn.bias.grad])
        dist.all_reduce(grads)
        out[rank] = (y.detach(), mine.grad, grads, bn.running_mean, bn.running_var)
    finally:
        dist.destroy_process_group()


def test_group_batchnorm_equals_batchnorm_on_the_whole_batch() -> None:
    """Two gloo ranks with half a batch each: outputs, input and parameter gradients and
    running statistics equal torch's BatchNorm1d on the whole batch."""
    import socket

    import torch.multiprocessing as mp

    x = torch.randn(6, 5, 7, dtype=torch.float32) * 3 + 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = mp.Manager().dict()
    mp.spawn(_group_bn_rank, args=(port, x, out), nprocs=2)
    torch.manual_seed(0)
    ref = torch.nn.BatchNorm1d(5)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5)
        ref.bias.uniform_(-0.5, 0.5)
    xr = x.clone().requires_grad_(True)
    y = ref(xr)
    (y[:3] * torch.arange(y[:3].numel()).reshape(y[:3].shape).sin()).sum().add(
        (y[3:] * torch.arange(y[3:].numel()).reshape(y[3:].shape).sin()).sum()
    ).backward()
    torch.testing.assert_close(torch.cat([out[0][0], out[1][0]]), y.detach())
    torch.testing.assert_close(torch.cat([out[0][1], out[1][1]]), xr.grad)
    torch.testing.assert_close(out[0][2], torch.cat([ref.weight.grad, ref.bias.grad]))
    for r in (0, 1):
        torch.testing.assert_close(out[r][3], ref.running_mean)
        torch.testing.assert_close(out[r][4], ref.running_var)


def _corpus() -> pa.Table:
    rng = np.random.default_rng(0)
    means = 0.6 * rng.standard_normal((SPEAKERS, BINS))
    mats = [
        (means[s] + rng.standard_normal((FRAMES, BINS))).astype(np.float32)
        for s in range(SPEAKERS)
        for _ in range(UTTS)
    ]
    n = len(mats)
    return pa.table(
        {
            "utt_id": [f"id{i // UTTS:02d}/v/{i:05d}.wav" for i in range(n)],
            "num_frames": pa.array([FRAMES] * n, pa.int32()),
            "num_bins": pa.array([BINS] * n, pa.int32()),
            "values": floats_column(mats),
            "label": pa.array([i // UTTS for i in range(n)], pa.int64()),
        }
    )


def _train(tmp_path: Path, name: str, workers: int, sync: bool = True) -> TrainResult:
    import ray.data

    n = SPEAKERS * UTTS
    cfg = TrainConfig(
        epochs=3,
        batch_size=n // workers,  # the same global batch: every row, one step per epoch
        segment_s=FRAMES / 100,
        lr=0.01,
        min_lr=0.001,
        weight_decay=1e-3,
        scheduler="warmup_decay",
        warmup_epochs=1,
        num_workers=workers,
        sync_batchnorm=sync,
        cpus_per_worker=0.5,
        torch_threads=1,
        use_gpu=False,
        max_failures=0,
    )
    return train_model(
        cfg,
        MODEL,
        ray.data.from_arrow(_corpus()),
        num_classes=SPEAKERS,
        input_dim=BINS,
        storage_path=str(tmp_path / "ray"),
        name=name,
        speakers=[f"id{s:02d}" for s in range(SPEAKERS)],
        out_storage=Storage(str(tmp_path / "out")),
        model_rel_dir=f"models/{name}",
        num_rows=n,
    )


def _weights(tmp_path: Path, name: str) -> dict[str, torch.Tensor]:
    return load_model(str(tmp_path / "out" / "models" / name)).classifier.state_dict()


def _drift(w: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> float:
    """|w - ref| over every float tensor (weights and BatchNorm statistics), relative to how
    far training moved ``ref`` from the initial weights (which every worker starts from)."""
    torch.manual_seed(0)  # TrainConfig.seed: the initial weights of every run
    init = build_classifier(MODEL, BINS, SPEAKERS).state_dict()
    keys = [k for k in ref if ref[k].is_floating_point() and k != SHIFT_INVARIANT]
    apart = sum(float((w[k] - ref[k]).pow(2).sum()) for k in keys)
    moved = sum(float((ref[k] - init[k]).pow(2).sum()) for k in keys)
    return (apart / moved) ** 0.5


def test_two_workers_train_like_one_with_the_same_global_batch(ray_local, tmp_path: Path) -> None:
    one = _train(tmp_path, "one", 1)
    two = _train(tmp_path, "two", 2)
    for a, b in zip(one.history, two.history, strict=True):
        assert b["samples"] == a["samples"] == SPEAKERS * UTTS
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-9)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    w1, w2 = _weights(tmp_path, "one"), _weights(tmp_path, "two")
    assert w1.keys() == w2.keys() and any("running_var" in k for k in w1)
    # Adam's first steps are nearly sign(gradient): an element whose gradient is ~0 can step
    # either way on float rounding, so the weights are compared as a whole, not elementwise
    synced = _drift(w2, w1)
    assert synced < 2e-3, synced

    plain = _train(tmp_path, "plain", 2, sync=False)  # per-worker BatchNorm statistics
    unsynced = _drift(_weights(tmp_path, "plain"), w1)
    assert unsynced > 10 * synced, (unsynced, synced)
    assert plain.history[-1]["loss"] != pytest.approx(one.history[-1]["loss"], rel=1e-4)
