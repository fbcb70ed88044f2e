"""Embedding throughput on ECAPA-TDNN: voxray's actor callable (equal-length utterances and all
overlapping segments batched) against a plain per-utterance loop (one forward per utterance,
one per segment), on the same features.

    python -m bench embed [--quick] [--channels 512]
"""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow as pa
import torch

from bench.common import best_of, device_name, emit, peak_rss_mb
from voxray import schema
from voxray.config import EmbedConfig, ModelConfig
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.pipeline.datasets import segment_starts
from voxray.pipeline.embed_stage import ComputeEmbeddings
from voxray.pipeline.model_ref import ModelRef


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--channels", type=int, default=512)
    args = ap.parse_args(argv)
    import tempfile

    rng = np.random.default_rng(0)
    n = 16 if args.quick else 64
    lengths = rng.integers(300, 800, n)  # 3-8 s, as VoxCeleb
    mats = [rng.standard_normal((int(t), 80)).astype(np.float32) for t in lengths]
    batch = pa.table(
        {
            "utt_id": [f"s/v/{i:05d}" for i in range(n)],
            "num_frames": pa.array(lengths.astype(np.int32)),
            "num_bins": pa.array(np.full(n, 80, np.int32)),
            "values": schema.floats_column(mats),
        }
    )
    audio_s = float(lengths.sum()) / 100.0
    tmp = tempfile.mkdtemp(prefix="voxray-bench-embed-")
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(channels=args.channels), 80, 10)
    save_model(
        Storage(tmp),
        "m",
        model,
        ModelConfig(channels=args.channels),
        [str(i) for i in range(10)],
        80,
    )
    cfg = EmbedConfig(full=True, segments=True, segment_s=2.0, overlap=0.5)
    udf = ComputeEmbeddings(ModelRef(f"{tmp}/m", "m"), "none", cfg, 10.0, 0.0, None)
    voxray_s = best_of(lambda: udf(batch), 2)

    embedder = udf.embedder

    @torch.inference_mode()
    def plain() -> None:
        for m in mats:
            embedder(torch.from_numpy(m)[None])
            for s in segment_starts(m.shape[0], 200, 0.5):
                embedder(torch.from_numpy(m[s : s + 200])[None])

    plain_s = best_of(plain, 2)
    segs = sum(len(segment_starts(int(t), 200, 0.5)) for t in lengths)
    print(
        f"{n} utterances ({audio_s / 60:.1f} min, {segs} segments of 2 s), ECAPA C={args.channels}, {device_name()}"
    )
    print(
        f"voxray ComputeEmbeddings: {n / voxray_s:7.2f} utt/s  {audio_s / voxray_s:6.1f} x real-time"
    )
    print(
        f"plain per-utterance loop: {n / plain_s:7.2f} utt/s  {audio_s / plain_s:6.1f} x real-time"
    )
    return emit(
        {
            "bench": "embed",
            "model": f"ecapa_tdnn_c{args.channels}",
            "utterances": n,
            "segments": segs,
            "voxray_per_s": n / voxray_s,
            "voxray_x_realtime": audio_s / voxray_s,
            "baseline": "plain per-utterance and per-segment forward loop",
            "baseline_per_s": n / plain_s,
            "ratio": plain_s / voxray_s,
            "peak_rss_mb": peak_rss_mb(),
            "device": device_name(),
        }
    )


if __name__ == "__main__":
    main()
