"""The trial stage's joint decomposition: its baseline pair and its Captum calls.

The joint decomposition (``voxray.attribution.trial.attribute_joint``) moves both sides of a
trial along one path from a baseline pair ``(x'_a, x'_b)``, so the two maps add up to
``s(x_a, x_b) - s(x'_a, x'_b)``. Its baseline (``trial.joint_baseline``) is what a
verification user compares a score with: ``cohort_mean`` is the list's impostor trial whose
score is nearest the mean impostor score (sharing no utterance with the explained trial, so
no side is explained against itself). Each baseline side is cut or repeated in time to its
explained side's length (a path needs equal shapes), so ``s(x')`` is that fitted pair's
score, stored with the maps, near but not equal to the cohort mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import torch

from voxray.attribution.trial import attribute_joint
from voxray.config import AttributionConfig
from voxray.models.base import SpeakerClassifier
from voxray.pipeline.precision import precision

#: a trial's key: (list, utt_a, utt_b).
TrialKey = tuple[str, str, str]


class ScoredTrial(Protocol):
    """What the baseline choice reads of a trial (``trial_stage.Trial``)."""

    list: str
    label: int
    utt_a: str
    utt_b: str
    score: float


def cohort_pairs(
    trials: Sequence[ScoredTrial], explained: Iterable[ScoredTrial]
) -> dict[TrialKey, tuple[str, str]]:
    """The ``cohort_mean`` baseline pair (utt_a, utt_b) of each explained trial: the impostor
    trial of its list whose score is nearest the list's mean impostor score, sharing no
    utterance with it (ties: the first in (utt_a, utt_b) order). A trial whose list has no
    such impostor trial gets none."""
    cohorts: dict[str, list[ScoredTrial]] = {}
    for t in trials:
        if t.label == 0 and np.isfinite(t.score):
            cohorts.setdefault(t.list, []).append(t)
    ranked = {}
    for name, rows in cohorts.items():
        mean = float(np.mean([t.score for t in rows]))
        ranked[name] = sorted(rows, key=lambda t: (abs(t.score - mean), t.utt_a, t.utt_b))
    out = {}
    for t in explained:
        own = {t.utt_a, t.utt_b}
        pick = next((c for c in ranked.get(t.list, []) if not own & {c.utt_a, c.utt_b}), None)
        if pick is not None:
            out[(t.list, t.utt_a, t.utt_b)] = (pick.utt_a, pick.utt_b)
    return out


def fit_frames(x: np.ndarray, frames: int) -> np.ndarray:
    """``x`` ``(T, F)`` cut or repeated (cyclically) in time to ``(frames, F)``."""
    return x[np.arange(frames) % x.shape[0]]


def equal_shape_groups(shapes: Sequence[tuple[int, int]], size: int) -> list[list[int]]:
    """Indices grouped by identical (frames of a, frames of b), at most ``size`` per group:
    one Captum call takes equal-length sides."""
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(shapes):
        by_shape.setdefault(s, []).append(i)
    return [idx[j : j + size] for idx in by_shape.values() for j in range(0, len(idx), size)]


def run_joint(
    model: SpeakerClassifier,
    cfg: AttributionConfig,
    device: torch.device,
    sides: tuple[np.ndarray, np.ndarray],
    baselines: tuple[np.ndarray, np.ndarray],
) -> tuple[np.ndarray, ...]:
    """One Captum call over B pairs: maps ``(B, T_a, F)`` and ``(B, T_b, F)``, then ``(B,)``
    each: the completeness errors, ``s(x_a, x_b)`` and ``s(x'_a, x'_b)``."""
    xa, xb, ra, rb = (torch.from_numpy(v).to(device) for v in (*sides, *baselines))
    with precision(cfg.precision, device):
        res = attribute_joint(model, xa, xb, cfg, ra, rb)
    maps = (res.maps_a, res.maps_b)
    numbers = (res.completeness_error, res.score, res.baseline_score)
    return (
        *(m.detach().float().cpu().numpy() for m in maps),
        *(v.detach().double().cpu().numpy() for v in numbers),
    )
