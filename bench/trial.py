"""Trial attributions per second: the trial stage's actor callable (the fixed sides' embeddings
computed once and shared, equal-length explained sides batched into one Captum call) against
the naive way, one Captum call per trial on a closure that embeds the other side again.

    python -m bench trial [--quick] [--channels 512] [--method integrated_gradients]

Each explained utterance takes part in several trials (VoxCeleb1's lists hold each test
utterance in about eight), against different fixed utterances.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from captum.attr import DeepLift, InputXGradient, IntegratedGradients, Occlusion, Saliency

from bench.common import best_of, device_name, emit, peak_rss_mb
from voxray import schema
from voxray.attribution.trial import TrialScore
from voxray.config import AttributionConfig, ModelConfig
from voxray.io.storage import Storage
from voxray.models import build_classifier
from voxray.models.checkpoint import save_model
from voxray.pipeline.model_ref import ModelRef
from voxray.pipeline.trial_stage import ComputeTrialAttributions, TrialJob

FRAMES, BINS = 300, 80  # 3 s of 80-bin fbank


def naive(
    model: torch.nn.Module,
    explained: list[np.ndarray],
    fixed: list[np.ndarray],
    method: str,
    params: AttributionConfig,
) -> list[np.ndarray]:
    """One Captum call per trial: the fixed side embedded again, then the explained side."""
    out = []
    embedder = model.embedder
    for x, other in zip(explained, fixed, strict=True):
        with torch.no_grad():
            e = embedder(torch.from_numpy(other)[None])[0]

        def score(z: torch.Tensor, e: torch.Tensor = e) -> torch.Tensor:
            return F.cosine_similarity(embedder(z), e.expand(z.shape[0], -1), dim=1)

        inp = torch.from_numpy(x)[None].requires_grad_(method != "occlusion")
        base = torch.ones_like(inp)
        if method == "integrated_gradients":
            a = IntegratedGradients(score).attribute(
                inp, baselines=base, n_steps=params.ig_steps, internal_batch_size=params.ig_steps
            )
        elif method == "saliency":
            a = Saliency(score).attribute(inp)
        elif method == "input_x_gradient":
            a = InputXGradient(score).attribute(inp)
        elif method == "deeplift":
            a = DeepLift(TrialScore(embedder, e[None])).attribute(inp, baselines=base)
        else:
            window = (params.occlusion_frames, params.occlusion_bins)
            a = Occlusion(score).attribute(
                inp, sliding_window_shapes=window, strides=window, baselines=base
            )
        out.append(a[0].detach().numpy())
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--channels", type=int, default=512)
    ap.add_argument("--method", default="integrated_gradients")
    args = ap.parse_args(argv)
    channels = 64 if args.quick else args.channels
    utts, per_utt = (2, 4) if args.quick else (4, 8)
    rng = np.random.default_rng(0)
    mats = {f"a/v/{i}": rng.standard_normal((FRAMES, BINS)).astype(np.float32) for i in range(utts)}
    others = {
        f"b/v/{j}": rng.standard_normal((FRAMES + 20 * j, BINS)).astype(np.float32)
        for j in range(per_utt)
    }
    params = AttributionConfig(ig_steps=16 if args.quick else 50, internal_batch_size=64)
    torch.manual_seed(0)
    cfg = ModelConfig(channels=channels)
    model = build_classifier(cfg, BINS, 10).eval()
    tmp = tempfile.mkdtemp(prefix="voxray-bench-trial-")
    save_model(Storage(tmp), "m", model, cfg, [str(i) for i in range(10)], BINS)
    jobs = {
        u: [TrialJob("l", u, b, "a", args.method) for b in others] for u in mats
    }  # every explained utterance against every fixed one
    with torch.no_grad():
        fixed = {b: model.embedder(torch.from_numpy(x)[None])[0].numpy() for b, x in others.items()}
    udf = ComputeTrialAttributions(ModelRef(f"{tmp}/m", "m"), params, jobs, fixed, None, 0.0, None)
    batch = pa.table(
        {
            "utt_id": list(mats),
            "num_frames": pa.array([FRAMES] * utts, pa.int32()),
            "num_bins": pa.array([BINS] * utts, pa.int32()),
            "values": schema.floats_column(list(mats.values())),
        }
    )
    trials = utts * per_utt
    result = udf(batch)
    voxray_s = best_of(lambda: udf(batch), 1)
    pairs = [(mats[j.utt_a], others[j.utt_b]) for u in mats for j in jobs[u]]
    baseline: list[np.ndarray] = []
    naive_s = best_of(
        lambda: baseline.extend(
            naive(udf.model, [a for a, _ in pairs], [b for _, b in pairs], args.method, params)
        ),
        1,
    )
    ours = schema.matrices(result)
    err = max(float(np.abs(o - b).max()) for o, b in zip(ours, baseline[: len(ours)], strict=True))
    print(
        f"{trials} trials ({utts} explained utterances x {per_utt} fixed ones, 3 s each), "
        f"ECAPA C={channels}, {args.method}, {device_name()}"
    )
    print(f"voxray trial stage callable: {trials / voxray_s:8.3f} trials/s")
    print(f"one Captum call per trial:   {trials / naive_s:8.3f} trials/s")
    print(f"largest map difference: {err:.2e}")
    return emit(
        {
            "bench": "trial",
            "method": args.method,
            "channels": channels,
            "trials": trials,
            "voxray_per_s": trials / voxray_s,
            "baseline": f"one Captum call per trial, {trials} calls",
            "baseline_per_s": trials / naive_s,
            "ratio": naive_s / voxray_s,
            "max_abs_diff": err,
            "peak_rss_mb": peak_rss_mb(),
            "device": device_name(),
        }
    )


if __name__ == "__main__":
    main()
