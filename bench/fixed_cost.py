"""A command's fixed cost: ``voxray manifest`` on a 10-file corpus, wall clock, cold Python.

Each repeat runs the command as a fresh process on a fresh ``--out`` (interpreter start,
imports, configuration, the stage, exit) beside ``python -c "import torch"`` in the same
minutes, the reference for what an import alone costs on the machine; the medians of
``--repeats`` runs are printed. ``--with-ray`` also times ``voxray features`` on the same
corpus: a stage that needs Ray, so its local Ray's start and stop, an actor pool and Ray
Data's planning are in its figure. ``--pythonpath DIR`` runs the voxray of another checkout
(a before/after on the same machine in the same minutes).

    python -m bench fixed_cost
    python -m bench fixed_cost --pythonpath ../main     # the same against another checkout
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import emit

FILES = 10


def corpus(root: Path) -> Path:
    """10 utterance files: 5 speakers x 2 videos x 1 utterance."""
    from voxray.corpus.synth import synth_corpus

    synth_corpus(str(root), speakers=5, videos=2, utts=1, seed=3, jobs=2)
    return root


def wall(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    """Seconds ``cmd`` took as a fresh process in ``cwd`` (outside any checkout: ``-m``
    would put the current folder's voxray first), its output kept from the console."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="accepted for `bench all`: same run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--with-ray", action="store_true", help="also time `voxray features`")
    ap.add_argument("--pythonpath", default=None, help="run the voxray found on this path")
    args = ap.parse_args(argv)
    voxray = [sys.executable, "-m", "voxray"]
    path = os.path.abspath(args.pythonpath) if args.pythonpath else os.getcwd()
    env = {**os.environ, "PYTHONPATH": path}
    times: dict[str, list[float]] = {"manifest": [], "import_torch": [], "features": []}
    with tempfile.TemporaryDirectory() as tmp:
        data, here = corpus(Path(tmp) / "corpus"), Path(tmp)
        for i in range(args.repeats):
            out = str(Path(tmp) / f"out{i}")
            common = ["--data-root", str(data), "--out", out]
            times["manifest"].append(wall([*voxray, "manifest", *common], here, env))
            times["import_torch"].append(wall([sys.executable, "-c", "import torch"], here))
            if args.with_ray:  # features on the manifest just written: Ray, one actor pool
                features = [*voxray, "features", *common, "--profile", "smoke"]
                times["features"].append(wall(features, here, env))
            print(
                f"run {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v),
                flush=True,
            )
    medians = {f"{k}_s": statistics.median(v) for k, v in times.items() if v}
    print(
        f"voxray manifest on {FILES} files: median {medians['manifest_s']:.2f} s "
        f"(import torch alone: {medians['import_torch_s']:.2f} s)"
    )
    return emit({"files": FILES, "repeats": args.repeats, **medians})


if __name__ == "__main__":
    main()
