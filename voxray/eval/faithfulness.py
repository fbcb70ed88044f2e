"""Do attribution maps point at what the model uses? Deletion / insertion curves (Li et al. 2022
§4.2) and pixel flipping (Sarvaš 2021 §4.2).

Deletion masks (sets to 0) the most relevant bins first, in ``steps`` equal increments of
the fraction of bins, and records a score after each step; insertion starts from a fully
masked input and unmasks the most relevant bins first. A faithful map gives a low deletion
AUC and a high insertion AUC. References: ``random`` (seeded) and ``time_aligned`` (whole
frames, left to right). With a speech mask, non-speech frames are removed first (Li et al. 2022) and
fractions count speech bins only. Pixel flipping zeroes the top fraction of bins by
positive relevance (or random bins) and records accuracy per fraction.

Scores come from ``score_fn(feats (N, T, F), items (N,) long) -> (N,)``: row ``i`` is a
variant of batch item ``items[i]``, so per-item targets are indexed by ``items`` (see
``top1_score``, ``probability_score``, ``cosine_score``). Every variant of every item of a
batch goes through ``score_fn`` in as few calls as possible (at most ``max_rows`` rows each).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal, Sequence, Union

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from voxray.mask.ranking import count_for_fraction, descending_order, rank_positions, top_positive

ScoreFn = Callable[[Tensor, Tensor], Tensor]
#: features, maps or masks: a tensor or anything numpy reads.
ArrayIn = Union[Tensor, npt.ArrayLike]
Order = Literal["saliency", "random", "time_aligned"]
Mode = Literal["deletion", "insertion"]
ORDERS: tuple[str, ...] = ("saliency", "random", "time_aligned")
MODES: tuple[str, ...] = ("deletion", "insertion")
#: Sarvaš 2021's pixel-flipping fractions (0 to 5% of the bins).
FLIP_FRACTIONS: tuple[float, ...] = (0.0, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05)


def trapezoid_auc(fractions: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under ``scores`` over ``fractions`` (trapezoid rule)."""
    x = np.asarray(fractions, dtype=np.float64)
    y = np.asarray(scores, dtype=np.float64)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2.0)


@dataclass(frozen=True)
class Curve:
    """Mean score per fraction ``(S,)``, the per-item scores ``(B, S)`` and their AUC."""

    fractions: npt.NDArray[np.float64]
    scores: npt.NDArray[np.float64]
    per_item: npt.NDArray[np.float64]

    @property
    def auc(self) -> float:
        """Trapezoid area under the mean curve (equal to the mean of the per-item areas)."""
        return trapezoid_auc(self.fractions, self.scores)


# --------------------------------------------------------------------------- score functions


def top1_score(model: nn.Module, targets: Tensor) -> ScoreFn:
    """1.0 where the model's top-1 class is the item's target ``targets`` ``(B,)``, else 0.0."""

    def score(feats: Tensor, items: Tensor) -> Tensor:
        return (model(feats).argmax(dim=1) == targets.to(feats.device)[items]).to(torch.float64)

    return score


def probability_score(model: nn.Module, targets: Tensor) -> ScoreFn:
    """Softmax probability of the item's target class (a smoother score than top-1)."""

    def score(feats: Tensor, items: Tensor) -> Tensor:
        probs = torch.softmax(model(feats).to(torch.float64), dim=1)
        return probs.gather(1, targets.to(feats.device)[items].unsqueeze(1)).squeeze(1)

    return score


def cosine_score(embedder: nn.Module, references: Tensor) -> ScoreFn:
    """Verification score: cosine between the variant's embedding and the item's reference
    embedding ``references`` ``(B, D)`` (e.g. the clean utterance's, or an enrolment's)."""

    def score(feats: Tensor, items: Tensor) -> Tensor:
        emb = embedder(feats).to(torch.float64)
        ref = references.to(device=feats.device, dtype=torch.float64)[items]
        return torch.nn.functional.cosine_similarity(emb, ref, dim=1)

    return score


# --------------------------------------------------------------------------- inputs


def _numpy(a: ArrayIn) -> npt.NDArray[np.generic]:
    return a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)


def _features(feats: ArrayIn) -> Tensor:
    x = feats if isinstance(feats, Tensor) else torch.as_tensor(np.asarray(feats))
    if x.dim() != 3:
        raise ValueError(
            f"faithfulness: expected features of shape (B, T, F), got {tuple(x.shape)}"
        )
    return x.detach() if x.is_floating_point() else x.detach().float()


def _maps(
    maps: ArrayIn | None, shape: tuple[int, ...], needed: bool
) -> npt.NDArray[np.float64] | None:
    if maps is None:
        if needed:
            raise ValueError("faithfulness: the saliency order needs maps of the features' shape")
        return None
    m = _numpy(maps).astype(np.float64)
    if m.shape != shape:
        raise ValueError(f"faithfulness: maps have shape {m.shape} but the features {shape}")
    if not np.isfinite(m).all():
        bad = int((~np.isfinite(m)).sum())
        raise ValueError(f"faithfulness: {bad} non-finite values in the maps")
    return m


def _speech(speech: ArrayIn | None, shape: tuple[int, ...]) -> npt.NDArray[np.bool_] | None:
    if speech is None:
        return None
    s = _numpy(speech)
    if s.shape != shape[:2]:
        raise ValueError(
            f"faithfulness: the speech mask has shape {s.shape}, expected (B, T) = {shape[:2]}"
        )
    s = s.astype(bool)
    empty = np.flatnonzero(~s.any(axis=1))
    if empty.size:
        raise ValueError(f"faithfulness: items {empty.tolist()} have no speech frames")
    return s


# --------------------------------------------------------------------------- engine


@dataclass
class _Job:
    """Variants ``(S, T_b, F)`` of batch item ``item`` whose scores fill ``per_item[item]``."""

    item: int
    variants: Tensor
    target: npt.NDArray[np.float64]


def _run(jobs: list[_Job], score_fn: ScoreFn, max_rows: int) -> None:
    """Score all variants, grouping items of equal length so each call holds many rows."""
    if max_rows < 1:
        raise ValueError(f"faithfulness: max_rows must be >= 1, got {max_rows}")
    by_shape: dict[tuple[int, ...], list[_Job]] = {}
    for job in jobs:
        by_shape.setdefault(tuple(job.variants.shape[1:]), []).append(job)
    with torch.no_grad():
        for group in by_shape.values():
            rows = torch.cat([j.variants for j in group])
            device = rows.device
            items = torch.cat(
                [torch.full((len(j.variants),), j.item, dtype=torch.long) for j in group]
            ).to(device)
            scores = []
            for start in range(0, len(rows), max_rows):
                chunk = slice(start, start + max_rows)
                out = score_fn(rows[chunk], items[chunk])
                expected = len(items[chunk])
                if tuple(out.shape) != (expected,):
                    raise ValueError(
                        f"faithfulness: score_fn returned shape {tuple(out.shape)} for {expected} "
                        "rows, expected one score per row"
                    )
                scores.append(out.detach().to(torch.float64).cpu())
            flat = torch.cat(scores).numpy()
            offset = 0
            for j in group:
                j.target[:] = flat[offset : offset + len(j.variants)]
                offset += len(j.variants)


def _ranks(
    order: str, m: npt.NDArray[np.float64] | None, t: int, f: int, rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """Each bin's position ``(T F,)`` in the (un)masking order of one item."""
    n = t * f
    if order == "random":
        return rank_positions(rng.permutation(n), n)
    if order == "time_aligned":  # row-major: frame by frame, left to right
        return np.arange(n, dtype=np.intp)
    if m is None:
        raise ValueError("faithfulness: the saliency order needs maps")
    return rank_positions(descending_order(m), n)


def _counts(order: str, fractions: npt.NDArray[np.float64], t: int, f: int) -> npt.NDArray[np.intp]:
    """Bins masked at each fraction: of all bins, or of whole frames for ``time_aligned``."""
    if order == "time_aligned":  # whole frames
        return np.array([count_for_fraction(float(q), t) * f for q in fractions], dtype=np.intp)
    return np.array([count_for_fraction(float(q), t * f) for q in fractions], dtype=np.intp)


def masking_curves(
    feats: ArrayIn,
    maps: ArrayIn | None,
    score_fn: ScoreFn,
    steps: int = 10,
    modes: Sequence[Mode] = MODES,
    order: Order = "saliency",
    speech: ArrayIn | None = None,
    seed: int = 0,
    max_rows: int = 128,
) -> dict[str, Curve]:
    """Deletion and/or insertion curves for a batch, in one batched pass.

    Args:
        feats: ``(B, T, F)`` features; their dtype and device are what ``score_fn`` gets.
        maps: ``(B, T, F)`` saliency (higher = more relevant); only for ``order="saliency"``.
        score_fn: ``(feats (N, T, F), items (N,)) -> (N,)``.
        steps: number of equal increments; the curves have ``steps + 1`` points, 0 to 1.
        speech: optional ``(B, T)`` speech mask: non-speech frames are removed first.
        seed: seeds the ``random`` order (one permutation per item, in item order).

    Returns:
        ``{mode: Curve}`` for each requested mode.
    """
    if order not in ORDERS:
        raise ValueError(f"faithfulness: unknown order {order!r} (one of {', '.join(ORDERS)})")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ValueError(f"faithfulness: modes must be among {', '.join(MODES)}, got {list(modes)}")
    if steps < 1:
        raise ValueError(f"faithfulness: steps must be >= 1, got {steps}")
    x = _features(feats)
    shape = tuple(x.shape)
    m = _maps(maps, shape, order == "saliency")
    s = _speech(speech, shape)
    fractions = np.linspace(0.0, 1.0, steps + 1)
    rng = np.random.default_rng(seed)
    per_item = {mode: np.zeros((shape[0], steps + 1)) for mode in modes}
    jobs = []
    for b in range(shape[0]):
        keep_frames = s[b] if s is not None else np.ones(shape[1], dtype=bool)
        xb = x[b][torch.from_numpy(keep_frames).to(x.device)]
        t, f = xb.shape
        ranks = _ranks(order, None if m is None else m[b][keep_frames], t, f, rng)
        masked = ranks[None, :] < _counts(order, fractions, t, f)[:, None]  # (S, n): True = masked
        masked_t = torch.from_numpy(masked.reshape(steps + 1, t, f)).to(x.device)
        for mode in modes:
            shown = ~masked_t if mode == "deletion" else masked_t
            jobs.append(_Job(b, xb.unsqueeze(0) * shown.to(xb.dtype), per_item[mode][b]))
    _run(jobs, score_fn, max_rows)
    return {mode: Curve(fractions, per_item[mode].mean(axis=0), per_item[mode]) for mode in modes}


def deletion_curve(
    feats: ArrayIn, maps: ArrayIn | None, score_fn: ScoreFn, **options: Any
) -> Curve:
    """The deletion curve alone (``options``: ``masking_curves``' steps, order, speech, seed,
    max_rows)."""
    return masking_curves(feats, maps, score_fn, modes=("deletion",), **options)["deletion"]


def insertion_curve(
    feats: ArrayIn, maps: ArrayIn | None, score_fn: ScoreFn, **options: Any
) -> Curve:
    """The insertion curve alone (``options`` as for ``deletion_curve``)."""
    return masking_curves(feats, maps, score_fn, modes=("insertion",), **options)["insertion"]


def pixel_flipping(
    feats: ArrayIn,
    maps: ArrayIn | None,
    score_fn: ScoreFn,
    fractions: Sequence[float] = FLIP_FRACTIONS,
    order: Literal["relevance", "random"] = "relevance",
    seed: int = 0,
    max_rows: int = 128,
) -> Curve:
    """Sarvaš 2021 §4.2: score (e.g. top-1 accuracy) after setting a fraction of all bins to zero.

    ``relevance``: the bins with the highest POSITIVE relevance in ``maps`` (fewer when fewer
    are positive); ``random``: bins drawn at random (seeded), the reference curve.
    Returns a ``Curve`` over ``fractions`` (its AUC is only meaningful for comparisons on the
    same fractions).
    """
    if order not in ("relevance", "random"):
        raise ValueError(f"pixel_flipping: unknown order {order!r} (relevance, random)")
    q = np.asarray(fractions, dtype=np.float64)
    if q.ndim != 1 or q.size == 0:
        raise ValueError(
            f"pixel_flipping: fractions must be a non-empty list, got {list(fractions)}"
        )
    x = _features(feats)
    shape = tuple(x.shape)
    m = _maps(maps, shape, True) if order == "relevance" else None
    rng = np.random.default_rng(seed)
    per_item = np.zeros((shape[0], q.size))
    jobs = []
    n = shape[1] * shape[2]
    counts = np.array([count_for_fraction(float(v), n) for v in q], dtype=np.intp)
    for b in range(shape[0]):
        picked = top_positive(m[b], 1.0) if m is not None else rng.permutation(n)
        flipped = rank_positions(picked, n)[None, :] < counts[:, None]
        shown = torch.from_numpy(~flipped.reshape(q.size, shape[1], shape[2])).to(x.device)
        jobs.append(_Job(b, x[b].unsqueeze(0) * shown.to(x.dtype), per_item[b]))
    _run(jobs, score_fn, max_rows)
    return Curve(q, per_item.mean(axis=0), per_item)
