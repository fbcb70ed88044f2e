"""Shared benchmark helpers: timing, peak memory, the closing JSON line."""

from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident memory of this process (and, if asked, of its waited-for children)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024.0


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start


def best_of(fn: Callable[[], Any], repeats: int) -> float:
    """The fastest of ``repeats`` timed calls (less noise than a mean on a shared machine)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def emit(figures: dict[str, Any]) -> dict[str, Any]:
    """Print the closing JSON line (rounded) and return the figures."""
    clean = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in figures.items()}
    print(json.dumps(clean), flush=True)
    sys.stdout.flush()
    return clean


#: Above this many utterances a size's corpus repeats a synthesised one of this size
#: (hard links under new speaker ids): synthesis takes longer than the runs it feeds.
MAX_SYNTH = 384


def synth(out: Path, utterances: int, utts_per_video: int, max_synth: int = MAX_SYNTH) -> Path:
    """A corpus of exactly ``utterances`` files (2 videos per speaker): synthesised up to
    ``max_synth`` (a multiple of ``2 * utts_per_video`` below it), then that corpus's files
    again under other speaker ids until there are ``utterances`` (the work per file is the
    same; the last copy may be partial: VoxCeleb1-O's 4,708 is no multiple of 384)."""
    from voxray.corpus.synth import synth_corpus

    base = min(utterances, max_synth)
    speakers = base // (2 * utts_per_video)
    if speakers * 2 * utts_per_video != base:
        raise SystemExit(f"{base} files are not whole speakers of {2 * utts_per_video} files")
    synth_corpus(str(out), speakers=speakers, videos=2, utts=utts_per_video, seed=7, jobs=2)
    wav = out / "wav"
    files = sorted(wav.rglob("*.wav"))
    for copy in range(1, -(-utterances // base)):
        for f in files[: utterances - copy * base]:
            speaker, video, name = f.relative_to(wav).parts
            twin = wav / f"id{int(speaker[2:]) + 1000 * copy:05d}" / video / name
            twin.parent.mkdir(parents=True, exist_ok=True)
            twin.hardlink_to(f)
    return out
