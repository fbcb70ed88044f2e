"""Keep oneDNN's per-shape cache small in actors that see every utterance length.

On CPU, PyTorch's convolutions run through oneDNN, which caches a compiled primitive (with
its buffers) for every input shape, up to 1,024 of them. Embedding and attribution run each
utterance at its own length, so a long-lived actor fills that cache and its RSS climbs with
the number of lengths it has seen (measured on a small ECAPA: 0.8 GB to 2.2 GB over 200
lengths). A capacity of 64 keeps the shapes a batch reuses (IG's steps, the segments of
one utterance) and measured no slower. oneDNN reads the variable when it creates its first
primitive, so this must run before the actor's first forward pass; a value the user set
wins.
"""

from __future__ import annotations

import os

ENV = "ONEDNN_PRIMITIVE_CACHE_CAPACITY"
CAPACITY = 64


def limit_shape_cache(capacity: int = CAPACITY) -> str:
    """Cap oneDNN's primitive cache for this process unless already set; returns the value."""
    return os.environ.setdefault(ENV, str(capacity))
