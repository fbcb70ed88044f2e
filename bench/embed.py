"""From audio to embeddings, as a user with one machine and a pretrained model runs it, against
SpeechBrain's own per-utterance loop (soundfile, ``Fbank``, ``InputNormalization(sentence)``,
ECAPA_TDNN, one file at a time), on the same files of 2-3 s (flac, or wav with ``--audio
wav``) and the same seeded random SpeechBrain ECAPA checkpoint (C=1024 by default, saved with
SpeechBrain's own writer beside its hyperparams.yaml), at several corpus sizes (issue 31):

- one command: ``voxray embed --model embedding_model.ckpt`` on a fresh ``--out`` (manifest,
  then decode + the model's front-end + ECAPA in one actor pass: ``embed.from_audio: auto``);
- staged: the same with ``embed.from_audio=false`` (manifest, the features stage writing
  features/, then the embed stage reading it), one command too, so that the difference is the
  stages' and not a second interpreter's.

    python -m bench embed [--quick] [--sizes 96,384,4708] [--channels 1024] [--set KEY=VALUE]

Every run is a fresh process timed from launch to exit: interpreter, imports, model loading
and (voxray) Ray's start-up are included. Printed per size and path: seconds, utt/s, the ratio
loop / voxray, each stage's seconds and its pool's time split (decode, front-end, forward,
Arrow conversion, write, actor start-up, idle: ``voxray.pipeline.time_split``). Then the
cosine between voxray's and SpeechBrain's embeddings (voxray embeds each utterance's first
multiple of ``--bucket-frames`` frames, so that lengths batch exactly). Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import device_name, emit, synth

SIZES = (96, 384, 4708)
QUICK_SIZES = (32,)
#: the files' durations, seconds (VoxCeleb1-O's test utterances are mostly short).
MIN_S, MAX_S = 2.0, 3.0


def load_checkpoint(ckpt: Path, channels: int):
    """The benchmark's SpeechBrain ECAPA from its checkpoint (built with other weights first,
    so that the checkpoint must load)."""
    import torch

    from voxray.testing.speechbrain_reference import speechbrain_ecapa

    model = speechbrain_ecapa(channels, seed=1)
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    return model


def audio_files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.rglob("*") if p.suffix in (".flac", ".wav"))


def speechbrain_loop(corpus: Path, ckpt: Path, channels: int, out: Path) -> None:
    """What a SpeechBrain user writes: build the model, load its checkpoint, then one file at
    a time. Writes ``{relative path: embedding}`` to ``out`` (.npz)."""
    from voxray.testing.speechbrain_reference import speechbrain_embeddings

    model = load_checkpoint(ckpt, channels)
    files = audio_files(corpus)
    embs = speechbrain_embeddings(model, files)
    np.savez(out, **{str(p.relative_to(corpus)): e for p, e in zip(files, embs, strict=True)})


def cut_corpus(out: Path, size: int, quick: bool, audio: str = "flac") -> Path:
    """A corpus of ``size`` ``audio`` files (flac or wav) of MIN_S..MAX_S seconds (seeded):
    synthesised speech (repeated under new speaker ids past the synthesised size, see
    ``bench.common.synth``), each file cut to its duration and re-encoded; the trial lists keep
    their names."""
    import soundfile as sf

    corpus = synth(out, size, 2 if quick else 4)
    rng = np.random.default_rng(31)
    first: dict[int, Path] = {}  # a synthesised file's inode -> its cut file (hard links share)
    for wav in sorted(corpus.rglob("*.wav")):
        inode, target = wav.stat().st_ino, wav.with_suffix(f".{audio}")
        cut = wav.with_suffix(".cut")
        if inode in first:
            cut.hardlink_to(first[inode])
        else:
            wave, sr = sf.read(str(wav), dtype="float32")
            end = int(rng.uniform(MIN_S, MAX_S) * sr)
            sf.write(str(cut), wave[:end], sr, format=audio.upper(), subtype="PCM_16")
            first[inode] = target
        cut.replace(target)  # a wav replaces its own path (its other hard links keep the inode)
        if target != wav:
            wav.unlink()
    return corpus


def timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def loop_cmd(corpus: Path, ckpt: Path, channels: int, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench.embed",
        "--channels",
        str(channels),
        "--speechbrain-loop",
        str(corpus),
        str(ckpt),
        str(out),
    ]


def voxray_cmd(corpus: Path, ckpt: Path, out: Path, staged: bool, args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "voxray",
        "embed",
        "--data-root",
        str(corpus),
        "--out",
        str(out),
        "--model",
        str(ckpt),
        f"embed.bucket_frames={args.bucket_frames}",
        f"embed.from_audio={'false' if staged else 'auto'}",
        "ray.progress_bars=false",
        *args.set,
    ]


def stages_of(out: Path) -> dict[str, dict]:
    """Seconds and time split of each stage the command ran, from its markers."""
    from voxray.io.run_state import stage_done, stage_info
    from voxray.io.storage import Storage

    found = {}
    for stage in ("manifest", "features", "embed"):
        if stage_done(Storage(str(out)), stage):
            info = stage_info(Storage(str(out)), stage)
            found[stage] = {"seconds": info["seconds"], "time_split": info.get("time_split")}
    return found


def cosines(out: Path, loop_npz: Path) -> list[float]:
    """voxray's embedding of each file against the loop's."""
    from voxray import schema
    from voxray.io.storage import Storage

    ours = Storage(str(out)).read_table("embeddings").to_pandas()
    manifest = Storage(str(out)).read_table(schema.MANIFEST_PATH).to_pandas()
    ref = dict(np.load(loop_npz))
    by_utt = {u: np.asarray(e) for u, e in zip(ours.utt_id, ours.embedding, strict=True)}
    cos = []
    for u, p in zip(manifest.utt_id, manifest.path, strict=True):
        a, b = by_utt[u], ref[p]
        cos.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    return cos


def describe(path: str, seconds: float, n: int, loop_s: float, stages: dict[str, dict]) -> None:
    from voxray.pipeline.time_split import describe_split

    print(
        f"  voxray {path:<12} {seconds:7.1f} s, {n / seconds:6.2f} utt/s; "
        f"ratio {loop_s / seconds:.2f}x",
        flush=True,
    )
    for stage, info in stages.items():
        split = info["time_split"]
        print(
            f"    {stage:<9} {info['seconds']:6.1f} s"
            + (f"  ({describe_split(split)})" if split else ""),
            flush=True,
        )


def one_size(size: int, tmp: Path, ckpt: Path, args) -> dict:
    """The loop, the one-command path and the staged path on a corpus of ``size`` files,
    alternating ``args.repeats`` times (the fastest run of each counts)."""
    import soundfile as sf

    corpus = cut_corpus(tmp / f"corpus{size}", size, args.quick, args.audio)
    files = audio_files(corpus)
    audio_s = sum(sf.info(str(p)).duration for p in files)
    print(f"{size} {args.audio} files, {audio_s / 60:.1f} min of audio", flush=True)
    runs: dict[str, list[float]] = {"loop": [], "one-command": [], "staged": []}
    stages: dict[str, dict] = {}
    for k in range(args.repeats):
        runs["loop"].append(timed(loop_cmd(corpus, ckpt, args.channels, tmp / f"sb{size}.npz")))
        for path in args.paths:
            out = tmp / f"out{size}-{path}-{k}"
            runs[path].append(timed(voxray_cmd(corpus, ckpt, out, path == "staged", args)))
            if runs[path][-1] == min(runs[path]):
                stages[path] = stages_of(out)
                if path == args.paths[0]:  # both paths write the same rows
                    cos = cosines(out, tmp / f"sb{size}.npz")
    loop_s = min(runs["loop"])
    print(f"  SpeechBrain loop    {loop_s:7.1f} s, {size / loop_s:6.2f} utt/s", flush=True)
    for path in args.paths:
        describe(path, min(runs[path]), size, loop_s, stages[path])
    print(f"  cosine voxray vs SpeechBrain: min {min(cos):.5f}, mean {np.mean(cos):.5f}")
    return {
        "utterances": size,
        "audio_s": round(audio_s, 1),
        "loop_s": loop_s,
        **{f"{p}_s": min(runs[p]) for p in args.paths},
        **{f"{p}_ratio": round(loop_s / min(runs[p]), 3) for p in args.paths},
        "stages": stages,
        "runs_s": runs,
        "cosine_min": min(cos),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="", help="comma-separated sizes (default 96,384,4708)")
    ap.add_argument("--channels", type=int, default=1024)
    ap.add_argument("--bucket-frames", type=int, default=25)
    ap.add_argument("--audio", choices=("flac", "wav"), default="flac", help="the files' format")
    ap.add_argument("--paths", default="one-command,staged")
    ap.add_argument("--repeats", type=int, default=1, help="alternating runs; the best counts")
    ap.add_argument("--set", action="append", default=[], help="a voxray KEY=VALUE override")
    ap.add_argument(
        "--speechbrain-loop", nargs=3, metavar=("CORPUS", "CKPT", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    if args.speechbrain_loop:
        corpus, ckpt, out = args.speechbrain_loop
        speechbrain_loop(Path(corpus), Path(ckpt), args.channels, Path(out))
        return {}
    from voxray.testing.speechbrain_reference import speechbrain_ecapa, write_checkpoint

    args.paths = args.paths.split(",")
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    sizes = sizes or list(QUICK_SIZES if args.quick else SIZES)
    tmp = Path(tempfile.mkdtemp(prefix="voxray-bench-embed-"))
    ckpt = write_checkpoint(tmp / "sb", speechbrain_ecapa(args.channels), args.channels)
    print(f"ECAPA C={args.channels}, {device_name()}, overrides {args.set or 'none'}", flush=True)
    empty = tmp / "empty"
    (empty / "wav").mkdir(parents=True)
    loop_start = timed(loop_cmd(empty, ckpt, args.channels, tmp / "sb0.npz"))
    print(f"SpeechBrain loop start-up (no files): {loop_start:.1f} s", flush=True)
    rows = [one_size(size, tmp, ckpt, args) for size in sizes]
    return emit(
        {
            "bench": "embed",
            "model": f"speechbrain_ecapa_c{args.channels}",
            "bucket_frames": args.bucket_frames,
            "overrides": args.set,
            "baseline": "SpeechBrain per-utterance loop (Fbank, sentence norm, ECAPA_TDNN)",
            "baseline_startup_s": loop_start,
            "sizes": rows,
            "device": device_name(),
        }
    )


if __name__ == "__main__":
    main()
