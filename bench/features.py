"""Feature stage against a fair loop: both decode, compute the same Kaldi fbank (+ CMN, as
configured) and write the same Parquet (features/kind=fbank/, the same schema, files of
``rows_per_file`` rows through the same atomic writer), at three corpus sizes.

    python -m bench features [--quick] [--set features.resources.concurrency=1 ...]

voxray runs the way a command does: ``ray.init`` (once, timed apart: the start-up), then per
size the manifest stage (scan, probe every file, trial lists) and the features stage (actor
pool, Parquet sink). The loop lists the files, reads each with soundfile, calls
``torchaudio.compliance.kaldi.fbank`` and writes the rows. Printed per size: seconds, utt/s
and the ratio loop / voxray, with and without ray.init; then the streaming rates (the slope
from the smallest to the largest size, which leaves every fixed cost out). The features of
both are compared. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf
import torch
import torchaudio

from bench.common import device_name, emit, peak_rss_mb, synth
from voxray import schema
from voxray.config import FeatureConfig, load_config
from voxray.io.sink import write_partitioned
from voxray.io.storage import Storage

SIZES = (96, 192, 384)
QUICK_SIZES = (32, 64, 128)


def fair_loop(corpus: Path, out: Path, cfg: FeatureConfig, rows_per_file: int) -> int:
    """What a torchaudio user writes, plus the same Parquet output: one file at a time."""
    storage = Storage(str(out))
    rows: dict[str, list] = {"utt_id": [], "kind": [], "num_frames": [], "num_bins": []}
    values: list[np.ndarray] = []

    def flush() -> None:
        table = pa.table({**rows, "values": schema.floats_column(values)})
        write_partitioned(storage, "features", table, schema.FEATURES, ("utt_id", "kind"), "kind")
        for v in rows.values():
            v.clear()
        values.clear()

    n = 0
    for p in sorted((corpus / "wav").rglob("*.wav")):
        wave, sr = sf.read(p, dtype="float32")
        f = torchaudio.compliance.kaldi.fbank(
            torch.from_numpy(wave)[None] * 32768,
            num_mel_bins=cfg.num_mel_bins,
            frame_length=cfg.frame_length_ms,
            frame_shift=cfg.frame_shift_ms,
            dither=cfg.dither,
            preemphasis_coefficient=cfg.preemphasis,
            window_type=cfg.window,
            low_freq=cfg.low_freq,
            high_freq=cfg.high_freq,
            sample_frequency=sr,
        )
        if cfg.cmn:
            f = f - f.mean(0)
        rel = p.relative_to(corpus / "wav").with_suffix("")
        rows["utt_id"].append(str(rel))
        rows["kind"].append("fbank")
        rows["num_frames"].append(f.shape[0])
        rows["num_bins"].append(f.shape[1])
        values.append(f.numpy())
        n += 1
        if len(values) == rows_per_file:
            flush()
    if values:
        flush()
    return n


def features_of(out: Path) -> dict[str, np.ndarray]:
    t = Storage(str(out)).read_table("features/kind=fbank")
    return dict(zip(t.column("utt_id").to_pylist(), schema.matrices(t), strict=True))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--set", nargs="*", default=[], help="config overrides for the stage")
    ap.add_argument("--sizes", type=int, nargs=3, default=None, help="three corpus sizes")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="voxray-bench-features-"))
    sizes = tuple(args.sizes) if args.sizes else QUICK_SIZES if args.quick else SIZES
    corpora = {n: synth(tmp / f"corpus{n}", n, 4 if args.quick else 8) for n in sizes}

    from voxray.pipeline.context import RunContext
    from voxray.pipeline.features_stage import run_features
    from voxray.pipeline.manifest_stage import run_manifest
    from voxray.pipeline.ray_env import ensure_ray

    def config(n: int, out: Path):
        return load_config(
            profile="smoke",
            overrides=[
                f"data_root={corpora[n]}",
                f"out={out}",
                "features.kinds=[fbank]",
                "model.feature_kind=fbank",
                "ray.progress_bars=false",
                # the batch a run without a profile uses (the smoke profile's is for tiny tests)
                f"features.resources.batch_size={FeatureConfig().resources.batch_size}",
                *args.set,
            ],
        )

    started = time.perf_counter()
    ensure_ray(config(sizes[0], tmp / "unused").ray)
    ray_init_s = time.perf_counter() - started
    cfg0 = config(sizes[0], tmp / "unused")
    rpf = cfg0.features.resources.rows_per_file
    print(
        f"ray.init {ray_init_s:.1f} s; torch threads {torch.get_num_threads()}; stage "
        f"{cfg0.features.resources}",
        flush=True,
    )
    rows = []
    for n in sizes:
        audio_s = sum(sf.info(p).duration for p in (corpora[n] / "wav").rglob("*.wav"))
        t0 = time.perf_counter()
        assert fair_loop(corpora[n], tmp / f"loop{n}", cfg0.features, rpf) == n
        loop_s = time.perf_counter() - t0
        ctx = RunContext(config(n, tmp / f"out{n}"), stages=("manifest", "features"))
        t0 = time.perf_counter()
        run_manifest(ctx)
        t1 = time.perf_counter()
        run_features(ctx)
        t2 = time.perf_counter()
        ours, theirs = features_of(tmp / f"out{n}"), features_of(tmp / f"loop{n}")
        assert set(ours) == set(theirs), "the stage and the loop wrote different utterances"
        diff = max(float(np.abs(ours[u] - theirs[u]).max()) for u in ours)
        row = {
            "n": n,
            "audio_s": audio_s,
            "loop_s": loop_s,
            "manifest_s": t1 - t0,
            "features_s": t2 - t1,
            "voxray_s": t2 - t0,
            "max_abs_diff": diff,
        }
        rows.append(row)
        print(
            f"{n:4d} utt ({audio_s / 60:4.1f} min): loop {loop_s:6.2f} s "
            f"({n / loop_s:6.1f} utt/s); "
            f"voxray manifest {row['manifest_s']:5.2f} s + features {row['features_s']:6.2f} s "
            f"= {row['voxray_s']:6.2f} s ({n / row['voxray_s']:6.1f} utt/s); ratio "
            f"{loop_s / row['voxray_s']:.2f}x, {loop_s / (row['voxray_s'] + ray_init_s):.2f}x "
            f"with ray.init; features max |diff| {diff:.1e}",
            flush=True,
        )
    a, b = rows[0], rows[-1]
    figures: dict = {"bench": "features", "ray_init_s": ray_init_s}
    # a slope is only a rate when the largest size took measurably longer than the smallest
    # (10%): below that, every size cost the same fixed time and the sizes were too small
    if min(b["loop_s"] - a["loop_s"], b["voxray_s"] - a["voxray_s"]) > 0.1 * a["voxray_s"]:
        loop_rate = (b["n"] - a["n"]) / (b["loop_s"] - a["loop_s"])
        stage_rate = (b["n"] - a["n"]) / (b["voxray_s"] - a["voxray_s"])
        fixed = b["voxray_s"] - b["n"] / stage_rate
        print(
            f"streaming: loop {loop_rate:.1f} utt/s, voxray {stage_rate:.1f} utt/s "
            f"({stage_rate / loop_rate:.2f}x); voxray fixed cost {fixed:.1f} s + ray.init "
            f"{ray_init_s:.1f} s",
            flush=True,
        )
        figures.update(
            streaming_loop_per_s=loop_rate,
            streaming_voxray_per_s=stage_rate,
            streaming_ratio=stage_rate / loop_rate,
            voxray_fixed_s=fixed,
        )
    else:
        print(
            f"streaming: not resolved: voxray took {a['voxray_s']:.1f} s at {a['n']} and "
            f"{b['voxray_s']:.1f} s at {b['n']} utterances (fixed cost throughout); "
            "use larger --sizes",
            flush=True,
        )
    figures.update(
        peak_rss_mb=peak_rss_mb(),
        device=device_name(),
    )
    for r in rows:
        figures[f"ratio_{r['n']}"] = r["loop_s"] / r["voxray_s"]
        figures[f"ratio_{r['n']}_with_init"] = r["loop_s"] / (r["voxray_s"] + ray_init_s)
    return emit(figures)


if __name__ == "__main__":
    main()
