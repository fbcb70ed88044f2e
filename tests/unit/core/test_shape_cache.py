"""The oneDNN shape-cache cap: set before an actor's first forward pass, a user's value wins,
and a process that runs many utterance lengths keeps a flatter RSS with it."""

from __future__ import annotations

import subprocess
import sys

from voxray.pipeline import shape_cache

GROW = """
import os, sys, torch
from voxray.pipeline.shape_cache import limit_shape_cache
if sys.argv[1] == "capped":
    limit_shape_cache()
conv = torch.nn.Conv1d(80, 256, 5, padding=2).eval()
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
with torch.no_grad():
    conv(torch.randn(1, 80, 100))
    start = rss()
    for t in range(200, 600):
        conv(torch.randn(4, 80, t))
print(rss() - start)
"""


def test_user_value_wins(monkeypatch) -> None:
    monkeypatch.delenv(shape_cache.ENV, raising=False)
    assert shape_cache.limit_shape_cache() == "64"
    monkeypatch.setenv(shape_cache.ENV, "512")
    assert shape_cache.limit_shape_cache() == "512"


def test_cap_keeps_rss_flatter_over_many_lengths() -> None:
    grown = {}
    for mode in ("default", "capped"):
        env = {k: v for k, v in __import__("os").environ.items() if k != shape_cache.ENV}
        out = subprocess.run(
            [sys.executable, "-c", GROW, mode], capture_output=True, text=True, env=env, check=True
        )
        grown[mode] = float(out.stdout.strip().splitlines()[-1])
    assert grown["capped"] < grown["default"], grown
