"""Attribution throughput on ECAPA-TDNN: voxray against the naive Captum loops, and against
the model's own forward+backward throughput (the roofline of gradient methods).

    python -m bench attribute [--quick] [--channels 512] [--frames 300] [--methods a,b]

Measured side by side in one run, on the same inputs:
- roofline: forward+backward passes/s of the model (batch of IG steps), in utterance-steps/s;
- IG (50 steps) Traversal, voxray's fast path (one attribution of the mean embedding);
- IG Traversal the literal way (Zhang et al. 2023 eq. 5): one Captum call per embedding dimension,
  192 calls. It is timed on a few dimensions and scaled to 192 (its cost is linear in the calls);
- the fraction of the roofline the fast path reaches (50 fwd+bwd per utterance);
- then every registered method on its own pathway (Traversal for the Captum methods, ``cam``,
  ``lrp``), on a smaller model in --quick: one batched call against one call per utterance,
  the literal per-dimension Captum loop for the Captum methods, and, for the methods whose
  cost is a known number of forward+backward passes, the fraction of that model's roofline.
"""

from __future__ import annotations

import argparse
import time

import torch
from captum.attr import IntegratedGradients

from bench.common import best_of, device_name, emit, peak_rss_mb
from voxray.attribution import ATTRIBUTORS, Pathway, attribute, get_attributor, method_pathways
from voxray.attribution.captum_methods import CaptumAttributor
from voxray.attribution.hooks import inference_state
from voxray.attribution.pathways import Explained
from voxray.config import AttributionConfig, ModelConfig
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier


def frozen_model(channels: int, device: str) -> SpeakerClassifier:
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(channels=channels), 80, 1211).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def roofline(model: torch.nn.Module, x: torch.Tensor, steps: int) -> float:
    """Utterance-steps/s of plain forward+backward of the mean embedding (what IG runs)."""
    batch = x[:1].expand(steps, -1, -1).clone().requires_grad_(True)

    def once() -> None:
        out = model.embedder(batch).mean(dim=1).sum()
        torch.autograd.grad(out, batch)

    once()
    return steps / best_of(once, 3)


def literal_loop_seconds(
    model: SpeakerClassifier, x1: torch.Tensor, method: str, params: AttributionConfig, dims: int
) -> float:
    """Seconds per utterance of Zhang et al. 2023 eq. 5 done literally: one Captum call per
    embedding
    dimension (the method's own Captum call, with voxray's arguments), timed on ``dims``
    dimensions and scaled to all of them."""
    attributor = get_attributor(method)(model, params)
    assert isinstance(attributor, CaptumAttributor)
    x = x1.detach().clone().requires_grad_(not attributor.perturbs)
    with inference_state(model):
        ref = attributor._reference(x.detach(), None)
        started = time.perf_counter()
        for d in range(dims):
            attributor._attribute_one(Explained(model.embedder, d), x, ref)
        per_dim = (time.perf_counter() - started) / dims
    return per_dim * int(model.embedder.embedding_dim)


def method_row(
    model: SpeakerClassifier,
    x: torch.Tensor,
    method: str,
    params: AttributionConfig,
    roof: float,
    dims: int,
) -> dict:
    """One method on the batch ``x``: batched, per-utterance and (Captum methods) literal."""
    pathway = method_pathways(method, [Pathway.TRAVERSAL])[0]
    n = x.shape[0]
    attribute(model, x[:1], method, pathway, params=params)  # warm-up: first-call allocations
    batched = n / best_of(lambda: attribute(model, x, method, pathway, params=params), 1)
    single = n / best_of(
        lambda: [attribute(model, x[i : i + 1], method, pathway, params=params) for i in range(n)],
        1,
    )
    row = {
        "method": method,
        "pathway": pathway,
        "utt_per_s": batched,
        "per_utterance_per_s": single,
        "batched_ratio": batched / single,
        "x_realtime": batched * x.shape[1] / 100.0,
    }
    if issubclass(get_attributor(method), CaptumAttributor):
        literal = 1.0 / literal_loop_seconds(model, x[:1], method, params, dims)
        row |= {"literal_per_s": literal, "literal_ratio": batched / literal}
    passes = get_attributor(method).gradient_passes(params)
    if passes is not None:
        row["roofline_fraction"] = batched * passes / roof
    return row


def print_row(r: dict) -> None:
    literal = (
        f"{r['literal_per_s']:9.5f} {r['literal_ratio']:8.1f}x"
        if "literal_per_s" in r
        else f"{'-':>9} {'-':>9}"
    )
    roof = f"{r['roofline_fraction']:6.0%}" if "roofline_fraction" in r else f"{'-':>6}"
    print(
        f"{r['method']:22s} {r['pathway']:14s} {r['utt_per_s']:8.3f} "
        f"{r['per_utterance_per_s']:8.3f} "
        f"{r['batched_ratio']:6.2f}x {literal} {r['x_realtime']:7.2f} {roof}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--channels", type=int, default=512)
    ap.add_argument("--frames", type=int, default=300, help="frames per utterance (300 = 3 s)")
    ap.add_argument(
        "--methods",
        default="all",
        help="comma-separated methods for the per-method table, or all / none",
    )
    ap.add_argument(
        "--table-channels",
        type=int,
        help="ECAPA channels for the per-method table (default: 64 with --quick, else --channels)",
    )
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = frozen_model(args.channels, device)
    n_utts = 2 if args.quick else 8
    steps = 50
    x = torch.randn(n_utts, args.frames, 80, device=device)
    params = AttributionConfig(ig_steps=steps, internal_batch_size=steps, baseline="ones")
    print(
        f"ECAPA-TDNN C={args.channels}, {args.frames} frames, IG {steps} steps, device "
        f"{device_name()}, "
        f"torch threads {torch.get_num_threads()}"
    )

    roof = roofline(model, x, steps)
    print(
        f"roofline (fwd+bwd):            {roof:8.1f} utterance-steps/s = {roof / steps:7.3f} IG "
        f"utterances/s"
    )

    fast_s = best_of(
        lambda: [
            attribute(model, x[i : i + 1], "integrated_gradients", Pathway.TRAVERSAL, params=params)
            for i in range(n_utts)
        ],
        1,
    )
    fast = n_utts / fast_s
    print(
        f"voxray IG traversal fast path: {fast:8.3f} utterances/s "
        f"({fast * steps / roof:.0%} of the roofline)"
    )

    ig = IntegratedGradients(model.embedder)
    dims = 2 if args.quick else 8
    baseline = torch.ones_like(x[:1])
    started = time.perf_counter()
    for d in range(dims):
        ig.attribute(x[:1], baselines=baseline, target=d, n_steps=steps, internal_batch_size=steps)
    per_dim = (time.perf_counter() - started) / dims
    literal = 1.0 / (per_dim * model.embedder.embedding_dim)
    print(f"literal Captum loop (192 calls, timed on {dims}): {literal:8.5f} utterances/s")

    methods = (
        sorted(ATTRIBUTORS)
        if args.methods == "all"
        else [m for m in args.methods.split(",") if m and m != "none"]
    )
    rows = []
    if methods:
        table_c = args.table_channels or (64 if args.quick else args.channels)
        table_model = model if table_c == args.channels else frozen_model(table_c, device)
        table_roof = roof if table_model is model else roofline(table_model, x, steps)
        table_x = x if args.quick else x[:4]
        print(
            f"\nevery method, ECAPA C={table_c}, {table_x.shape[0]} utterances of {args.frames} "
            f"frames "
            f"(roofline {table_roof:.1f} utterance-steps/s); utterances/s:"
        )
        print(
            f"{'method':22s} {'pathway':14s} {'batched':>8s} {'per-utt':>8s} {'ratio':>7s} "
            f"{'literal':>9s} {'ratio':>9s} "
            f"{'x rt':>7s} {'roof':>6s}"
        )
        for m in methods:
            rows.append(method_row(table_model, table_x, m, params, table_roof, 1))
            print_row(rows[-1])
    return emit(
        {
            "bench": "attribute",
            "method": "integrated_gradients",
            "pathway": Pathway.TRAVERSAL.value,
            "model": f"ecapa_tdnn_c{args.channels}",
            "frames": args.frames,
            "voxray_per_s": fast,
            "baseline": f"captum loop, {model.embedder.embedding_dim} calls",
            "baseline_per_s": literal,
            "ratio": fast / literal,
            "roofline_utt_steps_per_s": roof,
            "roofline_fraction": fast * steps / roof,
            "x_realtime": fast * args.frames / 100.0,
            "methods": [
                {k: (round(v, 5) if isinstance(v, float) else v) for k, v in r.items()}
                for r in rows
            ],
            "peak_rss_mb": peak_rss_mb(),
            "device": device_name(),
        }
    )


if __name__ == "__main__":
    main()
