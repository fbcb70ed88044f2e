"""Training throughput: voxray's Ray Train loop against a plain PyTorch loop.

Both train the same model (ECAPA-TDNN, C=512 unless ``--channels``) on the same in-memory
synthetic features with the same crops, batch size, optimiser and thread count, so the
ratio is the cost of running the loop under Ray Train with a Ray Data crop pipeline.
Throughput is the steady state (epochs after the first, which includes start-up); the
wall-clock times, start-up included, are printed too.

    python -m bench.train --quick
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import pyarrow as pa
import torch

from bench.common import emit, peak_rss_mb
from voxray.config import ModelConfig, TrainConfig
from voxray.models import build_classifier
from voxray.schema import floats_column
from voxray.train.data import random_crops, segment_frames

BINS = 80
#: a Ray Train worker holds 1 CPU and Ray sets its OMP_NUM_THREADS to that: the baseline matches.
WORKER_THREADS = 1


def synthetic_corpus(
    utts: int, speakers: int, min_frames: int, max_frames: int, seed: int = 0
) -> pa.Table:
    """Training rows (utt_id, num_frames, num_bins, values, label): per-speaker mean + noise."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((speakers, BINS))
    labels = np.arange(utts) % speakers
    frames = rng.integers(min_frames, max_frames + 1, size=utts)
    mats = [
        (means[s] + rng.standard_normal((t, BINS))).astype(np.float32)
        for s, t in zip(labels, frames, strict=True)
    ]
    return pa.table(
        {
            "utt_id": [f"id{s:05d}/v/{i:05d}.wav" for i, s in enumerate(labels)],
            "num_frames": pa.array(frames, pa.int32()),
            "num_bins": pa.array([BINS] * utts, pa.int32()),
            "values": floats_column(mats),
            "label": pa.array(labels, pa.int64()),
        }
    )


def plain_loop(
    table: pa.Table, cfg: TrainConfig, model_cfg: ModelConfig, speakers: int
) -> tuple[float, float]:
    """(steady-state samples/s, wall seconds) of a single-process loop: crop, step, repeat."""
    torch.manual_seed(cfg.seed)
    model = build_classifier(model_cfg, BINS, speakers)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    seg = segment_frames(cfg.segment_s, 10.0)
    per_batch = cfg.batch_size // cfg.crops_per_utt
    t_start = time.perf_counter()
    samples, seconds = 0, 0.0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        order = np.random.permutation(table.num_rows)
        n = 0
        for i in range(0, table.num_rows - per_batch + 1, per_batch):
            crops = random_crops(table.take(order[i : i + per_batch]), seg, cfg.crops_per_utt)
            x, y = torch.from_numpy(crops["feats"]), torch.from_numpy(crops["label"])
            model.train()
            loss, _ = model.loss(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        if epoch > 0:
            samples, seconds = samples + n, seconds + time.perf_counter() - t0
    return samples / seconds, time.perf_counter() - t_start


def ray_loop(
    table: pa.Table, cfg: TrainConfig, model_cfg: ModelConfig, speakers: int
) -> tuple[float, float]:
    """(steady-state samples/s, wall seconds) of ``train_model`` on a local Ray."""
    import ray

    from voxray.io.storage import Storage
    from voxray.train.trainer import train_model

    with tempfile.TemporaryDirectory(prefix="voxray-bench-train-") as tmp:
        t0 = time.perf_counter()
        result = train_model(
            cfg,
            model_cfg,
            ray.data.from_arrow(table),
            num_classes=speakers,
            input_dim=BINS,
            storage_path=f"{tmp}/ray",
            name="bench",
            speakers=[f"id{s:05d}" for s in range(speakers)],
            out_storage=Storage(f"{tmp}/out"),
            model_rel_dir="models/bench",
            num_rows=table.num_rows,
        )
        wall = time.perf_counter() - t0
    steady = result.history[1:]
    return sum(h["samples"] for h in steady) / sum(h["seconds"] for h in steady), wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on a small corpus")
    parser.add_argument("--channels", type=int, default=512, help="ECAPA-TDNN width C")
    args = parser.parse_args(argv)

    utts, epochs, batch, seg_s = (32, 3, 8, 1.0) if args.quick else (256, 4, 32, 2.0)
    speakers = 8
    frames = int(seg_s * 100)
    table = synthetic_corpus(utts, speakers, frames // 2, 2 * frames)
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=batch,
        segment_s=seg_s,
        scheduler="constant",
        num_workers=1,
        use_gpu=False,
        max_failures=0,
    )
    model_cfg = ModelConfig(arch="ecapa_tdnn", channels=args.channels)
    print(
        f"ECAPA-TDNN C={args.channels}: {utts} utterances, {speakers} speakers, "
        f"crops of {frames} frames, batch {batch}, {epochs} epochs ({utts // batch} steps each); "
        f"throughput over epochs 2..{epochs}"
    )

    import ray

    ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        voxray_per_s, voxray_wall = ray_loop(table, cfg, model_cfg, speakers)
    finally:
        ray.shutdown()
    torch.set_num_threads(WORKER_THREADS)
    base_per_s, base_wall = plain_loop(table, cfg, model_cfg, speakers)

    ratio = voxray_per_s / base_per_s
    overhead = 100.0 * (base_per_s / voxray_per_s - 1.0)
    print(
        f"voxray (Ray Train + Ray Data crops): {voxray_per_s:8.1f} samples/s, "
        f"{voxray_wall:6.1f} s wall"
    )
    print(
        f"plain torch loop ({WORKER_THREADS} thread):        {base_per_s:8.1f} samples/s, "
        f"{base_wall:6.1f} s wall"
    )
    print(
        f"ratio {ratio:.3f}: Ray Train adds {overhead:.1f}% time per sample in the steady state "
        f"and {voxray_wall - base_wall:.1f} s of start-up and checkpointing"
    )
    emit(
        {
            "bench": "train",
            "model": f"ecapa_tdnn_c{args.channels}",
            "voxray_per_s": voxray_per_s,
            "baseline": f"plain torch loop, same crops, {WORKER_THREADS} thread",
            "baseline_per_s": base_per_s,
            "ratio": ratio,
            "overhead_pct": overhead,
            "voxray_wall_s": voxray_wall,
            "baseline_wall_s": base_wall,
            "peak_rss_mb": round(max(peak_rss_mb(), peak_rss_mb(children=True)), 1),
            "device": "cpu",
        }
    )


if __name__ == "__main__":
    main()
