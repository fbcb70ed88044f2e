"""Where an actor-pool stage's time goes: seconds per named part, summed over its actors.

A stage's callable times its parts (decode, front-end, forward, Arrow conversion) with a
``PartClock``; ``progress.CountRows`` adds the actor's start-up (model loading) and each
call's remainder, the sink its writes, all onto the pool's counter. The driver turns the sums
into fractions of the pool's slot time (wall time x actors): what the parts do not cover is
idle time (waiting for input, scheduling, the pool's start and its tail). The stage's marker
and its log line carry the split (``StageResult.info["time_split"]``), so a slow stage says
which part to cut.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterator

#: the parts every pool reports besides its callable's own (and the sink's ``write``).
STARTUP, OTHER = "start-up", "other"


class PartClock:
    """Seconds per part of one actor's calls since the last ``take``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - started

    def take(self) -> dict[str, float]:
        """The seconds so far, and a fresh start."""
        taken, self.seconds = dict(self.seconds), defaultdict(float)
        return taken


def split_fractions(seconds: dict[str, float], wall_s: float, actors: int) -> dict[str, float]:
    """Each part's share of the pool's slot time ``wall_s * actors`` (rounded to 0.001), and
    ``idle``: the share no part covers (never below 0: write tasks run beside the actors)."""
    slots = max(wall_s * max(actors, 1), 1e-9)
    shares = {k: round(v / slots, 3) for k, v in sorted(seconds.items())}
    shares["idle"] = round(max(0.0, 1.0 - sum(seconds.values()) / slots), 3)
    return shares


def describe_split(shares: dict[str, float]) -> str:
    """``decode 4%, forward 71%, ...``, largest first: the stage's log line."""
    ordered = sorted(shares.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {100 * v:.0f}%" for k, v in ordered)
