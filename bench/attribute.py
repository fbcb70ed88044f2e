"""Attribution throughput on ECAPA-TDNN: voxray against the naive Captum loops, and against
the model's own forward+backward throughput (the roofline of gradient methods).

    python -m bench attribute [--quick] [--channels 512] [--frames 300]

Measured side by side in one run, on the same inputs:
- roofline: forward+backward passes/s of the model (batch of IG steps), in utterance-steps/s;
- IG (50 steps) Traversal, voxray's fast path (one attribution of the mean embedding);
- IG Traversal the literal way (000 eq. 5): one Captum call per embedding dimension, 192 calls.
  It is timed on a few dimensions and scaled to 192 (its cost is linear in the calls);
- per-batch vs per-utterance Captum calls (Saliency and IG on B utterances);
- the fraction of the roofline the fast path reaches (50 fwd+bwd per utterance).
"""

from __future__ import annotations

import argparse
import time

import torch
from captum.attr import IntegratedGradients

from bench.common import best_of, device_name, emit, peak_rss_mb
from voxray.attribution import attribute
from voxray.config import AttributionConfig, ModelConfig
from voxray.models import build_classifier


def roofline(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    """Utterance-steps/s of plain forward+backward of the mean embedding (what IG runs)."""
    batch = x[:1].expand(steps, -1, -1).clone().requires_grad_(True)

    def once() -> None:
        out = model.embedder(batch).mean(dim=1).sum()
        torch.autograd.grad(out, batch)

    once()
    return steps / best_of(once, 3)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--channels", type=int, default=512)
    ap.add_argument("--frames", type=int, default=300, help="frames per utterance (300 = 3 s)")
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(channels=args.channels), 80, 1211).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    n_utts = 2 if args.quick else 8
    steps = 50
    x = torch.randn(n_utts, args.frames, 80, device=device)
    params = AttributionConfig(ig_steps=steps, internal_batch_size=steps, baseline="ones")
    print(f"ECAPA-TDNN C={args.channels}, {args.frames} frames, IG {steps} steps, device {device_name()}, "
          f"torch threads {torch.get_num_threads()}")

    roof = roofline(model, x, steps)
    print(f"roofline (fwd+bwd):            {roof:8.1f} utterance-steps/s = {roof / steps:7.3f} IG utterances/s")

    fast_s = best_of(lambda: [attribute(model, x[i : i + 1], "integrated_gradients", "traversal", params=params) for i in range(n_utts)], 1)
    fast = n_utts / fast_s
    print(f"voxray IG traversal fast path: {fast:8.3f} utterances/s ({fast * steps / roof:.0%} of the roofline)")

    ig = IntegratedGradients(model.embedder)
    dims = 2 if args.quick else 8
    baseline = torch.ones_like(x[:1])
    started = time.perf_counter()
    for d in range(dims):
        ig.attribute(x[:1], baselines=baseline, target=d, n_steps=steps, internal_batch_size=steps)
    per_dim = (time.perf_counter() - started) / dims
    literal = 1.0 / (per_dim * model.embedder.embedding_dim)
    print(f"literal Captum loop (192 calls, timed on {dims}): {literal:8.5f} utterances/s")

    b = n_utts
    sal = AttributionConfig()
    batched_s = best_of(lambda: attribute(model, x, "saliency", "classification", params=sal), 2)
    single_s = best_of(lambda: [attribute(model, x[i : i + 1], "saliency", "classification", params=sal) for i in range(b)], 2)
    print(f"saliency, {b} utterances: one batched call {b / batched_s:7.2f} utt/s, per-utterance calls {b / single_s:7.2f} utt/s")
    return emit({
        "bench": "attribute",
        "method": "integrated_gradients",
        "pathway": "traversal",
        "model": f"ecapa_tdnn_c{args.channels}",
        "frames": args.frames,
        "voxray_per_s": fast,
        "baseline": f"captum loop, {model.embedder.embedding_dim} calls",
        "baseline_per_s": literal,
        "ratio": fast / literal,
        "roofline_utt_steps_per_s": roof,
        "roofline_fraction": fast * steps / roof,
        "x_realtime": fast * args.frames / 100.0,
        "saliency_batched_per_s": b / batched_s,
        "saliency_per_utterance_per_s": b / single_s,
        "batched_ratio": single_s / batched_s,
        "peak_rss_mb": peak_rss_mb(),
        "device": device_name(),
    })


if __name__ == "__main__":
    main()
