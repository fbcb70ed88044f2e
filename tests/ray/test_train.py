"""voxray.train: crops, LR schedules, and Ray Train runs that learn, checkpoint and resume.

The runs train a narrow ECAPA-TDNN (C=16, 8-d embedding, AAM-softmax m=0.2 s=30) on a
separable synthetic corpus: 4 speakers x 16 utterances of 12-40 frames x 8 bins, each
speaker a different mean pattern plus unit Gaussian noise.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest
import torch

from voxray.config import AugmentConfig, ModelConfig, S3Config, TrainConfig
from voxray.io.storage import Storage
from voxray.models.checkpoint import load_model
from voxray.schema import FLOATS, floats_column
from voxray.train.data import augment, centre_crops, loop_crop, random_crops, segment_frames
from voxray.train.loop import STATE_FILE
from voxray.train.schedule import LRSchedule, build_schedule, triangular2, warmup_cosine
from voxray.train.trainer import run_config, steps_per_epoch, train_model

pytestmark = pytest.mark.ray

SPEAKERS = 4
UTTS = 16
BINS = 8
SEG_S = 0.2  # 20 frames at 10 ms
SPEAKER_NAMES = [f"id{s:02d}" for s in range(SPEAKERS)]
MODEL = ModelConfig(arch="ecapa_tdnn", channels=16, embedding_dim=8)


def corpus_table(seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    means = 0.6 * rng.standard_normal((SPEAKERS, BINS))
    ids, frames, mats, labels = [], [], [], []
    for s in range(SPEAKERS):
        for u in range(UTTS):
            t = int(rng.integers(12, 41))
            ids.append(f"id{s:02d}/vid/{u:05d}.wav")
            frames.append(t)
            mats.append((means[s] + rng.standard_normal((t, BINS))).astype(np.float32))
            labels.append(s)
    return pa.table(
        {
            "utt_id": pa.array(ids),
            "num_frames": pa.array(frames, pa.int32()),
            "num_bins": pa.array([BINS] * len(ids), pa.int32()),
            "values": floats_column(mats),
            "label": pa.array(labels, pa.int64()),
        }
    )


def small_batch() -> pa.Table:
    """Two utterances: 5 frames (shorter than a 12-frame segment) and 30 frames; value = t*10+f."""
    mats = [np.arange(n)[:, None] * 10.0 + np.arange(3)[None, :] for n in (5, 30)]
    return pa.table(
        {
            "utt_id": ["a/v/1", "b/v/1"],
            "num_frames": pa.array([5, 30], pa.int32()),
            "num_bins": pa.array([3, 3], pa.int32()),
            "values": pa.array([m.astype(np.float32).ravel() for m in mats], FLOATS),
            "label": pa.array([0, 1], pa.int64()),
        }
    )


def train_cfg(**kw: object) -> TrainConfig:
    base = dict(
        epochs=3,
        batch_size=16,
        segment_s=SEG_S,
        crops_per_utt=2,
        lr=0.003,
        min_lr=0.0003,
        weight_decay=0.0,
        scheduler="constant",
        num_workers=1,
        use_gpu=False,
        max_failures=0,
    )
    base.update(kw)
    return TrainConfig(**base)


def run(ray_local, tmp_path, name: str, cfg: TrainConfig, fail_at_epoch: int | None = None, **kw):
    """``train_model`` on ``corpus_table()``; ``kw`` goes to it (``val_ds``)."""
    import ray.data

    out = Storage(str(tmp_path / "out"))
    ds = ray.data.from_arrow(corpus_table())
    return train_model(
        cfg,
        MODEL,
        ds,
        num_classes=SPEAKERS,
        input_dim=BINS,
        storage_path=str(tmp_path / "ray"),
        name=name,
        speakers=SPEAKER_NAMES,
        out_storage=out,
        model_rel_dir=f"models/{name}",
        fail_at_epoch=fail_at_epoch,
        num_rows=SPEAKERS * UTTS,
        **kw,
    )


# --------------------------------------------------------------------------- crops


def test_segment_frames() -> None:
    assert segment_frames(2.0, 10.0) == 200
    assert segment_frames(0.2, 10.0) == 20
    with pytest.raises(ValueError, match="segment_s"):
        segment_frames(0.0, 10.0)


def test_loop_crop_wraps_short_utterance() -> None:
    m = np.arange(5)[:, None] * np.ones((1, 2))
    np.testing.assert_array_equal(loop_crop(m, 3, 8)[:, 0], [3, 4, 0, 1, 2, 3, 4, 0])


@pytest.mark.parametrize("crops", [1, 3], ids=["one-crop", "three-crops"])
def test_random_crops_shapes_and_content(crops: int) -> None:
    out = random_crops(small_batch(), segment_frames=12, crops_per_utt=crops, seed=7)
    assert out["feats"].shape == (2 * crops, 12, 3) and out["feats"].dtype == np.float32
    np.testing.assert_array_equal(out["label"], [0] * crops + [1] * crops)
    for k, crop in enumerate(out["feats"]):
        frames = crop[:, 0] / 10.0
        np.testing.assert_array_equal(crop[:, 1:] - crop[:, :1], np.tile([1.0, 2.0], (12, 1)))
        if k < crops:  # 5-frame utterance looped: consecutive frames modulo 5
            np.testing.assert_array_equal(np.diff(frames) % 5, np.ones(11))
            assert set(frames) == set(range(5))
        else:  # a contiguous window inside the 30 frames
            np.testing.assert_array_equal(np.diff(frames), np.ones(11))
            assert 0 <= frames[0] <= 18


def test_random_crops_differ_between_calls_and_cover_offsets() -> None:
    starts = {float(random_crops(small_batch(), 12)["feats"][1, 0, 0]) / 10 for _ in range(60)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 18


def test_random_crops_accept_numpy_batches() -> None:
    t = small_batch()
    np_batch = {c: np.array(t.column(c).to_pylist(), dtype=object) for c in t.column_names}
    a = random_crops(np_batch, 12, seed=3)
    b = random_crops(t, 12, seed=3)
    np.testing.assert_array_equal(a["feats"], b["feats"])


def test_centre_crops_deterministic() -> None:
    out = centre_crops(small_batch(), segment_frames=12)
    np.testing.assert_array_equal(out["feats"][0, :, 0] / 10, [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])
    np.testing.assert_array_equal(out["feats"][1, :, 0] / 10, np.arange(9, 21))


def test_normalise_uses_full_utterance_statistics() -> None:
    t = small_batch()
    out = centre_crops(t, segment_frames=12, normalise=True)
    full = t.column("values")[1].values.to_numpy()
    expected = (np.arange(9, 21) * 10.0 - full.mean()) / (full.std() + 1e-5)
    np.testing.assert_allclose(out["feats"][1, :, 0], expected, rtol=1e-5)


def test_mixed_bins_rejected_naming_utterance() -> None:
    t = small_batch()
    bad = t.set_column(2, "num_bins", pa.array([3, 5], pa.int32()))
    with pytest.raises(ValueError, match="mixes feature sizes"):
        random_crops(bad, 12)
    short = t.set_column(1, "num_frames", pa.array([6, 30], pa.int32()))
    with pytest.raises(ValueError, match="a/v/1"):
        random_crops(short, 12)


def test_augment_masks_and_noise() -> None:
    rng = np.random.default_rng(0)
    feats = np.ones((4, 30, 10), dtype=np.float32) * np.arange(10, dtype=np.float32)
    masked = augment(
        feats.copy(),
        AugmentConfig(enabled=True, noise_prob=0.0, freq_mask_bins=4, time_mask_frames=6),
        rng,
    )
    changed = masked != feats
    assert changed.any()
    for crop, ch in zip(masked, changed, strict=True):
        band, span = np.where(ch.all(0))[0], np.where(ch.all(1))[0]
        assert len(band) <= 4 and len(span) <= 6
        for idx in (band, span):  # contiguous
            assert len(idx) == 0 or idx.max() - idx.min() == len(idx) - 1
        expected = np.isin(np.arange(30), span)[:, None] | np.isin(np.arange(10), band)[None, :]
        np.testing.assert_array_equal(ch, expected)
        assert np.allclose(crop[ch], 4.5)  # filled with the crop mean
    noisy = augment(
        feats.copy(),
        AugmentConfig(
            enabled=True, noise_prob=1.0, noise_std=0.5, freq_mask_bins=0, time_mask_frames=0
        ),
        rng,
    )
    assert abs(float((noisy - feats).std()) - 0.5) < 0.05


# --------------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.0),
        (5, 0.5),
        (10, 1.0),
        (15, 0.5),
        (20, 0.0),
        (30, 0.5),
        (35, 0.25),
        (40, 0.0),
        (50, 0.25),
    ],
    ids=lambda v: str(v),
)
def test_triangular2_hand_values(step: int, expected: float) -> None:
    assert triangular2(step, 0.0, 1.0, 10) == pytest.approx(expected)


def test_warmup_cosine_hand_values() -> None:
    # 4 warm-up steps to 1.0, then cosine from step 4 (1.0) to step 12 (0.1)
    got = [warmup_cosine(s, 0.1, 1.0, 4, 13) for s in range(13)]
    assert got[:4] == pytest.approx([0.325, 0.55, 0.775, 1.0])
    assert got[4] == pytest.approx(1.0) and got[12] == pytest.approx(0.1)
    assert got[8] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(got[4:], got[5:], strict=False))


@pytest.mark.parametrize(
    ("kind", "probe"),
    [
        ("constant", {0: 1e-3, 99: 1e-3}),
        ("cyclic", {0: 1e-5, 25: 1e-3, 50: 1e-5, 75: 1e-5 + (1e-3 - 1e-5) / 2}),
        ("warmup_decay", {9: 1e-3, 99: 1e-5}),
    ],
    ids=["constant", "cyclic", "warmup_decay"],
)
def test_build_schedule_from_config(kind: str, probe: dict[int, float]) -> None:
    cfg = TrainConfig(epochs=10, lr=1e-3, min_lr=1e-5, scheduler=kind, warmup_epochs=1)
    sched = build_schedule(cfg, 10)
    assert sched.total_steps == 100
    for step, lr in probe.items():
        assert sched(step) == pytest.approx(lr)


def test_schedule_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="min_lr"):
        LRSchedule("constant", lr=1e-4, min_lr=1e-3, total_steps=10)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        build_schedule(TrainConfig(), 0)


# --------------------------------------------------------------------------- trainer set-up


@pytest.mark.parametrize(
    ("rows", "crops", "batch", "workers", "expected"),
    [(64, 2, 16, 1, (8, True)), (100, 1, 16, 2, (3, True)), (10, 1, 16, 1, (1, False))],
    ids=["full-batches", "two-workers", "smaller-than-a-batch"],
)
def test_steps_per_epoch(
    rows: int, crops: int, batch: int, workers: int, expected: tuple[int, bool]
) -> None:
    cfg = TrainConfig(crops_per_utt=crops, batch_size=batch, num_workers=workers)
    assert steps_per_epoch(rows, cfg) == expected


@pytest.mark.parametrize("root", ["/tmp/runs", "s3://bucket/runs"], ids=["local", "s3"])
def test_run_config(root: str) -> None:
    storage = Storage(root, S3Config(endpoint_url="http://h:1"))
    rc = run_config(TrainConfig(max_failures=3), root, "ecapa", storage)
    assert rc.name == "ecapa" and rc.failure_config.max_failures == 3
    assert rc.checkpoint_config.num_to_keep == 2
    assert rc.storage_path == root.removeprefix("s3://")
    assert (rc.storage_filesystem is not None) == root.startswith("s3://")


# --------------------------------------------------------------------------- Ray Train runs


def reports(run_dir) -> tuple[int, list[int]]:
    """Ray Train's own record of a run: reports made, and the epochs of the kept checkpoints."""
    snap = json.loads((run_dir / "checkpoint_manager_snapshot.json").read_text())
    return snap["current_report_index"], [r["metrics"]["epoch"] for r in snap["checkpoint_results"]]


@pytest.fixture(scope="module")
def retried(ray_local, tmp_path_factory):
    """One run whose worker fails at the start of epoch 2 and is restarted once by Ray Train."""
    tmp = tmp_path_factory.mktemp("retry")
    cfg = train_cfg(max_failures=1, scheduler="cyclic")
    return tmp, run(ray_local, tmp, "retry", cfg, fail_at_epoch=2)


def test_run_learns(retried) -> None:
    _, result = retried
    acc = [h["accuracy"] for h in result.history]
    assert acc[-1] > 0.8 > 0.25 and acc[-1] > acc[0]
    assert result.history[-1]["loss"] < 0.5 * result.history[0]["loss"]
    # 64 utterances x 2 crops in full batches of 16 per epoch
    assert all(h["samples"] == 128 and h["steps"] == 8 for h in result.history)
    # the learning rate of each epoch's last step, on the cyclic schedule over 24 steps
    sched = build_schedule(train_cfg(scheduler="cyclic"), 8)
    assert [h["lr"] for h in result.history] == pytest.approx([sched(7), sched(15), sched(23)])


def test_worker_failure_resumes_at_next_epoch(retried) -> None:
    tmp, result = retried
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    # epoch 1 from the first attempt; 2 and 3 from the restart, which resumed after epoch 1
    assert [h["resumes"] for h in result.history] == [0, 1, 1]
    assert reports(tmp / "ray" / "retry") == (3, [2, 3])  # each epoch reported once
    state = torch.load(tmp / "ray" / "retry" / "epoch_0003" / STATE_FILE, weights_only=True)
    assert state["step"] == 24  # 8 steps per epoch, none repeated


def test_checkpoint_every_epoch_last_two_kept(retried) -> None:
    tmp, result = retried
    run_dir = tmp / "ray" / "retry"
    kept = sorted(p.name for p in run_dir.iterdir() if p.name.startswith("epoch_"))
    assert kept == ["epoch_0002", "epoch_0003"]
    for name in kept:
        state = torch.load(run_dir / name / STATE_FILE, weights_only=True)
        assert state["epoch"] == int(name[-4:]) and len(state["history"]) == state["epoch"]
        assert set(state["optimizer"]["state"]) and state["rng"]["torch"].dtype == torch.uint8
    assert result.checkpoint_path.endswith("epoch_0003")


def test_model_and_history_written(retried) -> None:
    tmp, result = retried
    folder = tmp / "out" / "models" / "retry"
    weights = torch.load(folder / "model.pt", weights_only=True)
    final_state = tmp / "ray" / "retry" / "epoch_0003" / STATE_FILE
    final = torch.load(final_state, weights_only=True)["model"]
    assert set(final) == set(weights)
    for key, value in final.items():
        torch.testing.assert_close(weights[key], value)
    loaded = load_model(str(folder))
    assert loaded.cfg == MODEL and loaded.speakers == SPEAKER_NAMES and loaded.input_dim == BINS
    x = torch.randn(2, 20, BINS)
    assert loaded.classifier(x).shape == (2, SPEAKERS)
    hist = Storage(str(tmp / "out")).read_table("models/retry/history.parquet").to_pylist()
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[-1]["accuracy"] == pytest.approx(result.history[-1]["accuracy"])


def test_driver_rerun_resumes_from_latest_checkpoint(ray_local, tmp_path) -> None:
    cfg = train_cfg(max_failures=0)
    with pytest.raises(Exception, match="injected failure at the start of epoch 2"):
        run(ray_local, tmp_path, "rerun", cfg, fail_at_epoch=2)
    assert not (tmp_path / "out" / "models" / "rerun" / "model.pt").exists()
    assert reports(tmp_path / "ray" / "rerun") == (1, [1])
    result = run(ray_local, tmp_path, "rerun", cfg)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert [h["resumes"] for h in result.history] == [0, 1, 1]
    assert reports(tmp_path / "ray" / "rerun") == (3, [2, 3])
    assert (tmp_path / "out" / "models" / "rerun" / "model.pt").is_file()


def test_cached_training_source_has_few_blocks(ray_local) -> None:
    """Each block of the cached source is one crop task per epoch: the many small blocks Ray
    Data's Parquet reader makes are merged, down to one per training worker or per 128 MiB."""
    import ray

    from voxray.pipeline.train_stage import TRAIN_BLOCK_BYTES, cache_for_epochs

    ds = ray.data.range(100, override_num_blocks=20)
    assert ds.materialize().num_blocks() == 20
    assert cache_for_epochs(ds, 1000, num_workers=1).num_blocks() == 1
    assert cache_for_epochs(ds, 1000, num_workers=2).num_blocks() == 2
    cached = cache_for_epochs(ds, 3 * TRAIN_BLOCK_BYTES - 1, num_workers=1)
    assert cached.num_blocks() == 3
    assert sorted(r["id"] for r in cached.take_all()) == list(range(100))


def test_early_stopping_stops_on_the_validation_loss_and_keeps_the_best_epoch(
    ray_local, tmp_path
) -> None:
    """Lehmann & Stadelmann 2020 3.3: stop after ``patience`` epochs without a lower
    validation loss; the model saved is the best epoch's, not the last one's."""
    import ray.data

    from voxray.train.early_stop import EarlyStopping

    cfg = train_cfg(epochs=6, patience=1, lr=0.03)
    val = ray.data.from_arrow(corpus_table(seed=1))
    result = run(ray_local, tmp_path, "early", cfg, val_ds=val)
    losses = [h["val_loss"] for h in result.history]
    replay = EarlyStopping(cfg.patience)
    stopped = next(e for e, v in enumerate(losses, 1) if replay.update(e, v, torch.nn.Linear(1, 1)))
    assert len(losses) == stopped < cfg.epochs  # stopped by the rule, before the last epoch
    best = int(np.argmin(losses)) + 1
    assert best == replay.best_epoch == result.history[-1]["best_epoch"] < stopped
    last = torch.load(
        tmp_path / "ray" / "early" / f"epoch_{stopped:04d}" / STATE_FILE, weights_only=True
    )
    saved = torch.load(tmp_path / "out" / "models" / "early" / "model.pt", weights_only=True)
    for key, value in last["best_model"].items():
        torch.testing.assert_close(saved[key], value)
    assert any(not torch.equal(saved[k], v) for k, v in last["model"].items())
    metrics = Storage(str(tmp_path / "out")).read_table("models/early/history.parquet").to_pylist()
    assert [m["val_loss"] for m in metrics] == pytest.approx(losses)


def test_early_stopping_without_a_validation_set_is_refused(ray_local, tmp_path) -> None:
    with pytest.raises(ValueError, match="early stopping .* needs val_ds"):
        run(ray_local, tmp_path, "noval", train_cfg(patience=2))
