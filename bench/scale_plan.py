"""The VoxCeleb-scale plan: wall time and cost of everything ``--profile vox1`` and
``--profile vox2`` run (features; the base training and one retraining per mask condition;
the mask conditions' attributions on every utterance; the explanation methods on their
subset; the perturbation methods on theirs; the tune sweep; embeddings), on 1, 8 and 64 GPUs,
in the precision each phase runs.

    python -m bench.scale_plan            # the tables of bench/README.md
    python -m bench.scale_plan --gpu-fraction 0.3 --feature-x-rt-per-node 900

No measurement runs here: the inputs are the profiles themselves (``load_config(profile=...)``:
a profile change changes the plan), the model's FLOPs per second of audio (counted with
``torch.utils.flop_counter``, see ``flops_per_audio_second``), each attribution method's
passes per utterance (``Attributor.gradient_passes``), the corpus sizes, and the GPU's
throughput per precision as a fraction of its peak (an assumption that a GPU run of
``python -m bench attribute`` / ``train`` should replace), and the activation memory per
attribution row (measured on the model, voxray.pipeline.batch_memory).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from voxray.config import VoxrayConfig, load_config

#: g5.xlarge (one A10G, 24 GB, 4 vCPU) and the m6i.2xlarge head, us-east-1 on demand, USD/h.
GPU_NODE_USD_H = 1.006
HEAD_USD_H = 0.384
GPU_MEMORY_GB = 24.0
#: A10G dense peak TFLOP/s per precision: fp32 (CUDA cores), tf32 and bf16 (tensor cores).
PEAK_TFLOPS = {"fp32": 31.2, "tf32": 62.5, "bf16": 125.0}
#: assumed fraction of peak on ECAPA (1-D convolutions at 512-1024 channels on 100-800 frames
#: keep the units partly busy; SE blocks, BatchNorm and pooling are memory-bound).
GPU_FRACTION = 0.2
GPU_COUNTS = (1, 8, 64)
#: DDP efficiency per GPU count on g5 nodes (one GPU each, up to 10 Gbit/s between nodes): the
#: fp32 gradient all-reduce (25 MB at C=512, 59 MB at C=1024) overlaps the backward only in
#: part. Attribution, embedding and features are embarrassingly parallel: only Ray Data's
#: per-block overhead (a few percent) is lost.
DDP_EFFICIENCY = {1: 1.0, 8: 0.85, 64: 0.65}
DATA_EFFICIENCY = 0.95
#: forward passes per utterance of the perturbation methods, from their parameters and the
#: mean utterance's frames and bins; the MFA layer of Score-CAM has 3 x channels maps.
MFA_FACTOR = 3


@dataclass(frozen=True)
class Corpus:
    name: str
    profile: str
    utterances: int
    hours: float
    #: utterances of the training speakers (the model trains on them; they are "seen").
    train_utterances: int
    #: utterances of the trial-list speakers (the ``test`` split).
    test_utterances: int
    bins: int = 80

    @property
    def mean_s(self) -> float:
        return self.hours * 3600.0 / self.utterances


CORPORA = (
    Corpus("VoxCeleb1", "vox1", 153_516, 352.0, 148_642, 4_874),
    Corpus("VoxCeleb2", "vox2", 1_128_246, 2_442.0, 1_092_009, 36_237),
)

#: GFLOP per second of audio (100 frames x 80 bins), counted on voxray's EcapaTdnn: (forward,
#: forward + input gradient [attribution, parameters frozen], forward + full backward [training]).
FLOPS_PER_AUDIO_S = {512: (1.038, 2.077, 3.115), 1024: (2.650, 5.301, 7.951)}
#: activation bytes autograd keeps per input row and frame (fp32), measured with
#: voxray.pipeline.batch_memory.bytes_per_row_frame on EcapaTdnn(80 bins, C, 192).
ROW_FRAME_BYTES = {512: 155_205.0, 1024: 234_499.0}


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


def row_frame_bytes(channels: int) -> float:
    """Remeasure ``ROW_FRAME_BYTES`` on voxray's model (seconds on a CPU)."""
    from voxray.models.ecapa_tdnn import EcapaTdnn
    from voxray.pipeline.batch_memory import bytes_per_row_frame

    model = EcapaTdnn(input_dim=80, channels=channels, embedding_dim=192).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return bytes_per_row_frame(model, 80, "cpu")


def forward_passes(method: str, cfg: VoxrayConfig, frames: int, bins: int) -> float:
    """Forward passes per utterance of a perturbation method (no gradient)."""
    a = cfg.attribution
    if method == "occlusion":
        return math.ceil(frames / a.occlusion_frames) * math.ceil(bins / a.occlusion_bins)
    if method == "shapley_sampling":
        patches = math.ceil(frames / a.patch_frames) * math.ceil(bins / a.patch_bins)
        return a.shapley_samples * (patches + 1)
    if method == "score_cam":
        return MFA_FACTOR * cfg.model.channels
    raise KeyError(f"scale plan: no forward-pass count for perturbation method {method!r}")


def method_cost(method: str, cfg: VoxrayConfig, frames: int, bins: int) -> tuple[float, float]:
    """(forward + input-gradient passes, forward-only passes) per utterance of ``method``."""
    from voxray.attribution import get_attributor

    passes = get_attributor(method).gradient_passes(cfg.attribution)
    if passes is None:
        return 0.0, float(forward_passes(method, cfg, frames, bins))
    return float(passes), 0.0


@dataclass(frozen=True)
class Work:
    """What one profile runs on one corpus, counted in model passes (no hardware yet)."""

    #: training: (utterance-crops seen, crop seconds) of the base model and of the retrainings.
    trainings: int
    train_epochs: int
    retrain_epochs: int
    #: audio seconds x passes, per kind of pass.
    attr_grad_audio_s: float  # forward + input gradient
    attr_fwd_audio_s: float  # forward only (perturbation methods)
    tune_grad_audio_s: float
    embed_audio_s: float
    attr_precision: str
    train_precision: str
    #: the configured rows per Captum call, their activations at the mean utterance length
    #: (GB), and the rows an actor's share of an A10G fits (what the actors will choose).
    internal_batch_size: int
    ibs_gb: float
    fitted_rows: int


def count_work(corpus: Corpus, cfg: VoxrayConfig) -> Work:
    """Everything ``cfg`` (the corpus' profile) runs, counted from the profile itself."""
    from voxray.mask.pathway import mask_jobs

    a = cfg.attribution
    frames = int(round(corpus.mean_s * 1000 / cfg.features.frame_shift_ms))
    audio_s = corpus.hours * 3600.0
    # mask conditions: their methods' maps on EVERY utterance (one pathway each, seen or not)
    mask_methods = sorted({m for m, _ in mask_jobs(cfg.mask.conditions, True)})
    grad = sum(method_cost(m, cfg, frames, corpus.bins)[0] for m in mask_methods) * audio_s
    fwd = sum(method_cost(m, cfg, frames, corpus.bins)[1] for m in mask_methods) * audio_s
    # explanations: every method x pathway on the capped subset, perturbation ones on fewer
    pool = {"test": corpus.test_utterances, "train": corpus.train_utterances}.get(
        a.subset, corpus.utterances
    )
    subset = min(pool, a.max_utterances) if a.max_utterances else pool
    perturb = min(subset, a.perturbation_max_utterances)
    from voxray.attribution import get_attributor, method_pathways

    for m in a.methods:
        n_pathways = len(method_pathways(m, a.pathways))
        g, f = method_cost(m, cfg, frames, corpus.bins)
        n = perturb if get_attributor(m).perturbs else subset
        grad += g * n_pathways * n * corpus.mean_s
        fwd += f * n_pathways * n * corpus.mean_s
    # tune: each sampled trial attributes its utterances with its method (frozen objective)
    t = cfg.tune
    tune_passes = max(method_cost(m, cfg, frames, corpus.bins)[0] for m in t.methods)
    tune = (
        t.num_samples * min(t.max_utterances, pool) * corpus.mean_s * tune_passes
        if t.enabled
        else 0.0
    )
    per_condition = cfg.retrain.seeds * len(cfg.retrain.variants)
    retrainings = (
        len({c.name for c in cfg.mask.conditions}) * per_condition if cfg.retrain.enabled else 0
    )
    # embeddings: the base model on every utterance (full + 50%-overlap segments: about 3x the
    # audio), each retrained model on the test utterances, clean and masked
    seg_factor = 1.0 + (1.0 / max(1.0 - cfg.embed.overlap, 1e-6) if cfg.embed.segments else 0.0)
    embed = seg_factor * (audio_s + retrainings * 2 * corpus.test_utterances * corpus.mean_s)
    per_row_gb = ROW_FRAME_BYTES[cfg.model.channels] * frames / 1e9
    gpu_share = a.resources.num_gpus if isinstance(a.resources.num_gpus, float) else 1.0
    fitted = max(1, int(GPU_MEMORY_GB * min(gpu_share, 1.0) * a.memory_fraction // per_row_gb))
    return Work(
        trainings=1 + retrainings,
        train_epochs=cfg.train.epochs,
        retrain_epochs=cfg.retrain.epochs or cfg.train.epochs,
        attr_grad_audio_s=grad,
        attr_fwd_audio_s=fwd,
        tune_grad_audio_s=tune,
        embed_audio_s=embed,
        attr_precision=a.precision,
        train_precision="bf16" if cfg.train.amp else "fp32",
        internal_batch_size=a.internal_batch_size,
        ibs_gb=a.internal_batch_size * per_row_gb,
        fitted_rows=min(a.internal_batch_size, fitted),
    )


def plan(
    corpus: Corpus,
    gpus: int,
    gpu_fraction: float = GPU_FRACTION,
    feature_x_rt_per_node: float = 300.0,
    cfg: VoxrayConfig | None = None,
) -> dict[str, float]:
    """Hours per phase and the dollar cost of the whole profile on ``gpus`` g5.xlarge nodes."""
    cfg = cfg or load_config(profile=corpus.profile)
    w = count_work(corpus, cfg)
    fwd_gf, attr_gf, train_gf = FLOPS_PER_AUDIO_S[cfg.model.channels]

    def rate(precision: str) -> float:
        return PEAK_TFLOPS[precision] * gpu_fraction * 1e12

    data = gpus * DATA_EFFICIENCY
    audio_s = corpus.hours * 3600.0
    features_h = audio_s / (feature_x_rt_per_node * data) / 3600
    attr_flops = (w.attr_grad_audio_s * attr_gf + w.attr_fwd_audio_s * fwd_gf) * 1e9
    attribution_h = attr_flops / (rate(w.attr_precision) * data) / 3600
    tune_h = w.tune_grad_audio_s * attr_gf * 1e9 / (rate(w.attr_precision) * data) / 3600
    embed_h = w.embed_audio_s * fwd_gf * 1e9 / (rate(cfg.embed.precision) * data) / 3600
    crop_s = cfg.train.segment_s * corpus.train_utterances * train_gf * 1e9
    train_rate = rate(w.train_precision) * gpus * DDP_EFFICIENCY[gpus]
    train_h = w.train_epochs * crop_s / train_rate / 3600
    retrain_h = (w.trainings - 1) * w.retrain_epochs * crop_s / train_rate / 3600
    total_h = features_h + attribution_h + tune_h + embed_h + train_h + retrain_h
    return {
        "features_h": features_h,
        "train_h": train_h,
        "retrain_h": retrain_h,
        "attribution_h": attribution_h,
        "tune_h": tune_h,
        "embed_h": embed_h,
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
        "--gpu-fraction",
        type=float,
        default=GPU_FRACTION,
        help="effective fraction of the A10G's peak per precision on ECAPA (assumed 0.2)",
    )
    parser.add_argument(
        "--feature-x-rt-per-node",
        type=float,
        default=300.0,
        help="decode + fbank, x real-time per g5.xlarge node (4 vCPU; bench/README.md)",
    )
    parser.add_argument("--recount", action="store_true", help="recount FLOPs and memory first")
    args = parser.parse_args(argv)
    if args.recount:
        for c in FLOPS_PER_AUDIO_S:
            FLOPS_PER_AUDIO_S[c] = flops_per_audio_second(c)
            ROW_FRAME_BYTES[c] = row_frame_bytes(c)
    for c, (fwd, attr, train) in FLOPS_PER_AUDIO_S.items():
        print(
            f"ECAPA C={c}: {fwd:.3f} GFLOP forward, {attr:.3f} forward+input-grad, "
            f"{train:.3f} forward+backward per audio second; "
            f"{ROW_FRAME_BYTES[c] / 1e3:.0f} kB of activations per attribution row and frame"
        )
    rates = ", ".join(f"{p} {v * args.gpu_fraction:g}" for p, v in PEAK_TFLOPS.items())
    print(f"assumed effective TFLOP/s per A10G: {rates}; features {args.feature_x_rt_per_node:g}x")
    for corpus in CORPORA:
        cfg = load_config(profile=corpus.profile)
        w = count_work(corpus, cfg)
        print(
            f"{corpus.name} (--profile {corpus.profile}, C={cfg.model.channels}): "
            f"{w.trainings} trainings ({w.train_epochs} + {w.trainings - 1} x {w.retrain_epochs} "
            f"epochs, {w.train_precision}); attribution in {w.attr_precision}: "
            f"{w.attr_grad_audio_s / 3600:,.0f} h of audio x gradient passes, "
            f"{w.attr_fwd_audio_s / 3600:,.0f} h x forward passes; internal_batch_size "
            f"{w.internal_batch_size} at {corpus.mean_s:.1f} s needs {w.ibs_gb:.1f} GB, "
            f"{w.fitted_rows} rows fit an actor's share of a {GPU_MEMORY_GB:g} GB A10G"
        )
    print(
        "| corpus | GPUs | features h | training h | retrainings h | attribution h | tune h "
        "| embed h | total h | cost USD |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for corpus in CORPORA:
        cfg = load_config(profile=corpus.profile)
        for gpus in GPU_COUNTS:
            p = plan(corpus, gpus, args.gpu_fraction, args.feature_x_rt_per_node, cfg)
            print(
                f"| {corpus.name} | {gpus} | {p['features_h']:.2f} | {p['train_h']:.2f} | "
                f"{p['retrain_h']:.2f} | {p['attribution_h']:.2f} | {p['tune_h']:.2f} | "
                f"{p['embed_h']:.2f} | {p['total_h']:.2f} | {p['usd']:.0f} |"
            )


if __name__ == "__main__":
    main()
