"""Constant memory: the feature and attribution stages on a corpus 1x and 8x the size, with
the peak resident memory of the driver and of the largest Ray worker printed for each.
A streaming pipeline keeps both flat: the goal is 8x/1x below 1.5.

    python -m bench memory [--quick]

Each size runs in its own process (its own local Ray), so the figures do not mix.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.common import emit


def _worker_rss_mb() -> tuple[float, str, float]:
    """(largest single Ray worker, its name, all Ray workers together) resident memory now, MiB."""
    import psutil

    rss = []
    for p in psutil.process_iter(["name", "cmdline", "memory_info"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "ray::" in (p.info["name"] or "") or "default_worker.py" in cmd:
            rss.append(
                (
                    p.info["memory_info"].rss / 2**20,
                    cmd.split(" ")[0] if cmd.startswith("ray::") else p.info["name"],
                )
            )
    if not rss:
        return 0.0, "", 0.0
    top = max(rss)
    return top[0], top[1], sum(r for r, _ in rss)


def one_size(speakers: int, utts: int, root: Path) -> dict:
    """Run manifest, features and attribute (saliency on every utterance) and sample memory."""
    from bench.common import peak_rss_mb
    from voxray import schema
    from voxray.config import load_config
    from voxray.corpus.synth import synth_corpus
    from voxray.models import build_classifier
    from voxray.models.checkpoint import save_model
    from voxray.pipeline.attribute_stage import run_attribute
    from voxray.pipeline.context import RunContext
    from voxray.pipeline.features_stage import run_features
    from voxray.pipeline.manifest_stage import run_manifest
    from voxray.pipeline.ray_env import ensure_ray

    synth_corpus(str(root / "corpus"), speakers=speakers, videos=2, utts=utts, seed=3, jobs=2)
    cfg = load_config(
        profile="smoke",
        overrides=[
            f"data_root={root / 'corpus'}",
            f"out={root / 'out'}",
            "features.kinds=[fbank]",
            "ray.progress_bars=false",
            "attribution.methods=[saliency]",
            "attribution.pathways=[classification]",
            "attribution.subset=all",
            "attribution.max_utterances=0",
            "mask.conditions=[]",
            "model.channels=64",
            "features.resources.concurrency=2",
            "attribution.resources.concurrency=2",
        ],
    )
    ctx = RunContext(cfg)
    ensure_ray(cfg.ray)
    peaks: dict = {"worker_max": 0.0, "worker_name": "", "workers_total": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            one, name, total = _worker_rss_mb()
            if one > peaks["worker_max"]:
                peaks["worker_max"], peaks["worker_name"] = one, name
            peaks["workers_total"] = max(peaks["workers_total"], total)
            time.sleep(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.perf_counter()
    run_manifest(ctx)
    run_features(ctx)
    model = build_classifier(cfg.model, 80, 2)
    save_model(ctx.out, "models/ecapa", model, cfg.model, ["a", "b"], 80)
    run_attribute(ctx)
    stop.set()
    thread.join()
    n = ctx.out.read_table(schema.MANIFEST_PATH, columns=["utt_id"]).num_rows
    maps = ctx.out.read_table("attributions", columns=["utt_id"]).num_rows
    if maps != n:
        raise RuntimeError(
            f"memory bench: {maps} attribution maps for {n} utterances; the stage must see them all"
        )
    return {
        "utterances": n,
        "seconds": time.perf_counter() - started,
        "driver_peak_mb": peak_rss_mb(),
        "worker_peak_mb": peaks["worker_max"],
        "worker_peak_name": peaks["worker_name"],
        "workers_total_peak_mb": peaks["workers_total"],
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(
            json.dumps(
                one_size(
                    args.child[0], args.child[1], Path(tempfile.mkdtemp(prefix="voxray-bench-mem-"))
                )
            )
        )
        return {}
    base = (4, 3) if args.quick else (30, 5)  # speakers, utterances per video (2 videos): 1x size
    sizes = {"1x": base, "8x": (base[0] * 8, base[1])}
    results = {}
    for label, (spk, utt) in sizes.items():
        out = subprocess.run(
            [sys.executable, "-m", "bench.memory", "--child", str(spk), str(utt)],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise RuntimeError(f"memory bench, {label} size failed:\n{out.stderr[-3000:]}")
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        r = results[label]
        print(
            f"{label}: {r['utterances']:5d} utterances in {r['seconds']:6.1f} s, driver peak "
            f"{r['driver_peak_mb']:7.1f} MiB, "
            f"largest worker {r['worker_peak_mb']:7.1f} MiB ({r['worker_peak_name']}), all workers "
            f"{r['workers_total_peak_mb']:7.1f} MiB"
        )
    one, eight = results["1x"], results["8x"]
    return emit(
        {
            "bench": "memory",
            "utterances_1x": one["utterances"],
            "utterances_8x": eight["utterances"],
            "driver_ratio": eight["driver_peak_mb"] / one["driver_peak_mb"],
            "worker_ratio": eight["worker_peak_mb"] / max(one["worker_peak_mb"], 1e-9),
            "driver_peak_mb_8x": eight["driver_peak_mb"],
            "worker_peak_mb_8x": eight["worker_peak_mb"],
            "goal": "both ratios below 1.5",
            "device": "cpu",
        }
    )


if __name__ == "__main__":
    main()
