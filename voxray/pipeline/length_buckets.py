"""Exact batching of variable-length utterances: crop each to a multiple of a bucket length.

ECAPA-TDNN pads every convolution by reflection and pools with attentive statistics over all
frames, so padding an utterance to its batch's longest changes its embedding (a mask cannot
undo a reflection). Cropping is exact instead: an utterance of ``T`` frames is embedded from
its first ``bucket_length(T, q)`` frames, a function of ``T`` alone, so its embedding is the
same whether it is computed alone or in a batch of utterances cropped to the same length;
with ``q`` frames per bucket, utterances within ``q`` frames of each other share one forward
pass. ``q = 1`` keeps every frame (only identical lengths batch).
"""

from __future__ import annotations


def bucket_length(num_frames: int, quantum: int) -> int:
    """Frames an utterance of ``num_frames`` is embedded from: the largest multiple of
    ``quantum`` not above it; an utterance shorter than ``quantum`` keeps all its frames."""
    if quantum < 1:
        raise ValueError(f"embed.bucket_frames must be >= 1, got {quantum}")
    if num_frames < quantum:
        return num_frames
    return num_frames - num_frames % quantum
