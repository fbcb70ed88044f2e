"""Feature stage throughput: voxray's Ray Data stage and its batched extractor against the
plain single-process loop a torchaudio user writes (read a file, torchaudio.compliance.kaldi
.fbank, next file), on the same files.

    python -m bench features [--quick] [--corpus DIR]

Prints utterances/s and x real-time of: the plain loop; voxray's batched extractor in one
process (compute only, same decoded audio); the whole Ray Data stage (decode + fbank + write
Parquet, local Ray on every core), end to end and as its streaming rate (the slope between a
run on a quarter of the corpus and one on all of it, which leaves out the fixed start-up).
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch
import torchaudio

from bench.common import best_of, device_name, emit, peak_rss_mb
from voxray.config import FeatureConfig, load_config, replace


def synth(out: Path, speakers: int, utts: int) -> Path:
    from voxray.corpus.synth import synth_corpus

    synth_corpus(str(out), speakers=speakers, videos=2, utts=utts, seed=7, jobs=2)
    return out


def plain_loop(paths: list[Path]) -> None:
    """What a torchaudio user writes: one file, one kaldi.fbank call, repeat."""
    for p in paths:
        wave, sr = sf.read(p, dtype="float32")
        torchaudio.compliance.kaldi.fbank(
            torch.from_numpy(wave)[None] * 32768, num_mel_bins=80, sample_frequency=sr, dither=0.0
        )


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--corpus", type=Path, default=None, help="an existing VoxCeleb-layout corpus")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="voxray-bench-features-"))
    corpus = args.corpus or synth(tmp / "corpus", 8 if args.quick else 24, 4 if args.quick else 8)
    paths = sorted((corpus / "wav").rglob("*.wav"))
    audio_s = sum(sf.info(p).frames / sf.info(p).samplerate for p in paths)
    n = len(paths)
    print(
        f"{n} utterances, {audio_s / 60:.1f} min of audio, torch threads {torch.get_num_threads()}"
    )

    loop_s = best_of(lambda: plain_loop(paths), 2)
    print(f"plain torchaudio loop: {n / loop_s:8.1f} utt/s  {audio_s / loop_s:7.1f} x real-time")

    from voxray.features import compute_features

    cfg = replace(FeatureConfig(), cmn=False)
    waves = [sf.read(p, dtype="float32")[0] for p in paths]
    batches = [waves[i : i + 32] for i in range(0, n, 32)]
    batched_s = best_of(lambda: [compute_features(b, 16000, cfg, "fbank") for b in batches], 2)
    decode_s = best_of(lambda: [sf.read(p, dtype="float32") for p in paths], 2)
    print(
        f"voxray batched fbank (compute only): {n / batched_s:8.1f} utt/s  "
        f"(+ decode {decode_s:.2f} s in this process)"
    )

    from voxray.pipeline.context import MANIFEST, RunContext
    from voxray.pipeline.features_stage import run_features
    from voxray.pipeline.manifest_stage import run_manifest
    from voxray.pipeline.ray_env import ensure_ray

    def stage_seconds(name: str, keep: int) -> tuple[float, float]:
        """Wall time of the feature stage on the manifest's first ``keep`` rows, and their audio s."""
        vcfg = load_config(
            profile="smoke",
            overrides=[
                f"data_root={corpus}",
                f"out={tmp / name}",
                "features.kinds=[fbank]",
                "ray.num_cpus=0",
                "features.resources.concurrency=2",
                "features.resources.batch_size=32",
                "ray.progress_bars=false",
            ],
        )
        ensure_ray(vcfg.ray)
        ctx = RunContext(vcfg)
        run_manifest(ctx)
        manifest = ctx.out.read_table(MANIFEST).slice(0, keep)
        ctx.out.write_table(MANIFEST, manifest)
        started = time.perf_counter()
        run_features(ctx)
        audio = sum(
            n / r
            for n, r in zip(
                manifest.column("num_samples").to_pylist(),
                manifest.column("sample_rate").to_pylist(),
            )
        )
        return time.perf_counter() - started, audio

    # the stage's fixed cost (actor start, listing, markers) shows as the difference between a
    # run on a quarter of the corpus and one on all of it; the slope is the streaming rate
    small_s, small_audio = stage_seconds("out-quarter", n // 4)
    stage_s, _ = stage_seconds("out", n)
    steady = (n - n // 4) / max(stage_s - small_s, 1e-9)
    steady_rt = (audio_s - small_audio) / max(stage_s - small_s, 1e-9)
    print(
        f"voxray Ray Data stage (decode + fbank + Parquet, 2 actors): {n / stage_s:8.1f} utt/s  "
        f"{audio_s / stage_s:7.1f} x real-time end to end; streaming rate {steady:7.1f} utt/s "
        f"{steady_rt:7.1f} x real-time (fixed cost {stage_s - (n / steady):.1f} s)"
    )
    return emit(
        {
            "bench": "features",
            "utterances": n,
            "voxray_per_s": n / stage_s,
            "voxray_x_realtime": audio_s / stage_s,
            "voxray_streaming_per_s": steady,
            "voxray_streaming_x_realtime": steady_rt,
            "streaming_ratio": steady / (n / loop_s),
            "voxray_batched_compute_per_s": n / batched_s,
            "baseline": "plain per-utterance soundfile + torchaudio.compliance.kaldi.fbank loop",
            "baseline_per_s": n / loop_s,
            "baseline_x_realtime": audio_s / loop_s,
            "ratio": loop_s / stage_s,
            "ratio_compute": (loop_s - decode_s) / batched_s,
            "peak_rss_mb": peak_rss_mb(),
            "device": device_name(),
        }
    )


if __name__ == "__main__":
    main()
