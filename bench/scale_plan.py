"""The VoxCeleb-scale plan: wall time and cost of features + IG-50 traversal + one retraining on
VoxCeleb1 and VoxCeleb2, on 1, 8 and 64 GPUs, from FLOP counts and stated assumptions.

    python -m bench.scale_plan            # the tables of bench/README.md
    python -m bench.scale_plan --gpu-tflops 40 --feature-x-rt-per-node 900

No measurement runs here: the inputs are the model's FLOPs per second of audio (counted with
``torch.utils.flop_counter`` on voxray's ECAPA-TDNN, see ``flops_per_audio_second``), the
corpus sizes, the profiles' recipes (conf/profiles/vox1.yaml, vox2.yaml) and throughput
assumptions that a GPU run of ``python -m bench attribute`` / ``train`` should replace.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

#: g5.xlarge (one A10G, 4 vCPU) and the m6i.2xlarge head, us-east-1 on-demand, USD per hour.
GPU_NODE_USD_H = 1.006
HEAD_USD_H = 0.384
IG_STEPS = 50
GPU_COUNTS = (1, 8, 64)
#: DDP efficiency per GPU count on g5 nodes (one GPU each, up to 10 Gbit/s between nodes): the
#: gradient all-reduce (25 MB at C=512, 59 MB at C=1024, fp32) overlaps the backward pass only
#: in part. Attribution and features are embarrassingly parallel: only Ray Data's per-block
#: overhead (a few percent) is lost.
DDP_EFFICIENCY = {1: 1.0, 8: 0.85, 64: 0.65}
DATA_EFFICIENCY = 0.95


@dataclass(frozen=True)
class Corpus:
    name: str
    utterances: int
    hours: float
    channels: int  # the profile's ECAPA width
    epochs: int  # the profile's retraining epochs
    segment_s: float = 2.0


CORPORA = (
    Corpus("VoxCeleb1", 153_516, 352.0, channels=512, epochs=40),
    Corpus("VoxCeleb2", 1_128_246, 2_442.0, channels=1024, epochs=30),
)

#: GFLOP per second of audio (100 frames x 80 bins), counted on voxray's EcapaTdnn:
#: (forward, forward + input gradient [attribution, parameters frozen], forward + full backward [training]).
FLOPS_PER_AUDIO_S = {512: (1.038, 2.077, 3.115), 1024: (2.650, 5.301, 7.951)}


def flops_per_audio_second(channels: int) -> tuple[float, float, float]:
    """Recount the table above (GFLOP per audio second) on voxray's model; takes a second."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from voxray.models.ecapa_tdnn import EcapaTdnn

    model = EcapaTdnn(input_dim=80, channels=channels, embedding_dim=192).eval()
    x = torch.randn(1, 100, 80, requires_grad=True)
    counts = []
    for grads in (None, False, True):
        for p in model.parameters():
            p.requires_grad_(bool(grads))
        with FlopCounterMode(display=False) as fc:
            y = model(x)
            if grads is not None:
                y.sum().backward()
        counts.append(fc.get_total_flops() / 1e9)
    return counts[0], counts[1], counts[2]


def plan(
    corpus: Corpus, gpus: int, gpu_tflops: float, feature_x_rt_per_node: float
) -> dict[str, float]:
    """Hours per phase and the dollar cost of the whole run on ``gpus`` g5.xlarge nodes."""
    audio_s = corpus.hours * 3600.0
    _, attr_gf, train_gf = FLOPS_PER_AUDIO_S[corpus.channels]
    eff = gpu_tflops * 1e12
    features_h = audio_s / (feature_x_rt_per_node * gpus * DATA_EFFICIENCY) / 3600
    ig_h = audio_s * IG_STEPS * attr_gf * 1e9 / (eff * gpus * DATA_EFFICIENCY) / 3600
    train_flops = corpus.epochs * corpus.utterances * corpus.segment_s * train_gf * 1e9
    train_h = train_flops / (eff * gpus * DDP_EFFICIENCY[gpus]) / 3600
    total_h = features_h + ig_h + train_h
    return {
        "features_h": features_h,
        "ig_h": ig_h,
        "retrain_h": train_h,
        "total_h": total_h,
        "usd": total_h * (gpus * GPU_NODE_USD_H + HEAD_USD_H),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale_plan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--gpu-tflops",
        type=float,
        default=25.0,
        help="effective bf16 TFLOP/s of one A10G on ECAPA (assumed: 20%% of its 125 dense peak)",
    )
    parser.add_argument(
        "--feature-x-rt-per-node",
        type=float,
        default=300.0,
        help="decode + fbank, x real-time per g5.xlarge node (4 vCPU; bench/README.md)",
    )
    parser.add_argument(
        "--recount", action="store_true", help="recount the FLOP table on the model first"
    )
    args = parser.parse_args(argv)
    if args.recount:
        for c in FLOPS_PER_AUDIO_S:
            FLOPS_PER_AUDIO_S[c] = flops_per_audio_second(c)
    for c, (fwd, attr, train) in FLOPS_PER_AUDIO_S.items():
        print(
            f"ECAPA C={c}: {fwd:.3f} GFLOP forward, {attr:.3f} forward+input-grad, {train:.3f} forward+backward per audio second"
        )
    print(
        f"assumed: {args.gpu_tflops:g} effective TFLOP/s per A10G, features at {args.feature_x_rt_per_node:g}x "
        f"real-time per node, DDP efficiency {DDP_EFFICIENCY}"
    )
    print("| corpus | GPUs | features h | IG-50 traversal h | retraining h | total h | cost USD |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for corpus in CORPORA:
        for gpus in GPU_COUNTS:
            p = plan(corpus, gpus, args.gpu_tflops, args.feature_x_rt_per_node)
            print(
                f"| {corpus.name} (C={corpus.channels}, {corpus.epochs} epochs) | {gpus} | {p['features_h']:.2f} | "
                f"{p['ig_h']:.2f} | {p['retrain_h']:.2f} | {p['total_h']:.2f} | {p['usd']:.0f} |"
            )


if __name__ == "__main__":
    main()
