"""Score verification trials from utterance or segment embeddings.

``score_trials`` is the cosine scorer on one embedding per utterance: normalise every
utterance once, gather both sides of each trial and take rowwise dot products in chunks.
``score_trials_segments`` runs the Lehmann & Stadelmann 2020 scorers on many segment embeddings per
utterance, doing the per-utterance work (means, dominant sets) once per utterance, not once per
trial, and their section 4.4 baseline ``single_segment``: the cosine of one random segment per
utterance instead of all of them. Scorer names are those of the scores/ table's ``scorer`` column.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from voxray.config import EvalConfig
from voxray.eval.clustering import (
    LINKAGES,
    Floats,
    Indices,
    dominant_set_embeddings,
    l2_normalise,
    last_merge_distance,
)

#: ``(label, utt_a, utt_b)``: label 1 for a target (same-speaker) trial, 0 otherwise.
Trial = tuple[int, str, str]

SEGMENT_SCORERS: tuple[str, ...] = (
    "mean_cossim",
    "mean_dot",
    "single_segment",
    *(f"ahc-{linkage}" for linkage in LINKAGES),
    *(f"ds-{linkage}" for linkage in LINKAGES),
)
#: Every scorer name: ``cosine`` scores one embedding per utterance, the rest segments.
SCORERS: tuple[str, ...] = ("cosine", *SEGMENT_SCORERS)

#: Trials gathered at once, so a 550k-trial list never holds two (N, D) copies.
_CHUNK = 65536


def _trial_index(trials: Sequence[Trial]) -> tuple[list[str], Indices, Indices]:
    """Distinct utterance ids in order of first use and each trial's two row indices."""
    rows: dict[str, int] = {}
    index_a = np.empty(len(trials), dtype=np.int64)
    index_b = np.empty(len(trials), dtype=np.int64)
    for i, trial in enumerate(trials):
        if len(trial) != 3:
            raise ValueError(f"trial {i}: expected (label, utt_a, utt_b); got {trial!r}")
        index_a[i] = rows.setdefault(trial[1], len(rows))
        index_b[i] = rows.setdefault(trial[2], len(rows))
    return list(rows), index_a, index_b


def _lookup(table: Mapping[str, ArrayLike], utt: str, what: str) -> Floats:
    try:
        value = table[utt]
    except KeyError:
        raise KeyError(f"utterance {utt!r} named by a trial has no {what}") from None
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{what} of utterance {utt!r} contains NaN or infinite values")
    return array


def _stack(ids: Iterable[str], vectors: Mapping[str, ArrayLike], what: str) -> Floats:
    """``(U, D)`` matrix of one ``(D,)`` vector per id, checking shapes and values."""
    rows = []
    for utt in ids:
        v = _lookup(vectors, utt, what)
        if v.ndim != 1 or (rows and v.shape != rows[0].shape):
            expected = f"({rows[0].shape[0]},)" if rows else "(D,)"
            raise ValueError(
                f"{what} of utterance {utt!r} has shape {v.shape}; expected {expected}"
            )
        rows.append(v)
    return np.stack(rows)


def embedding_matrix(
    trials: Sequence[Trial], emb: Mapping[str, ArrayLike]
) -> tuple[Floats, Indices, Indices]:
    """The utterances the trials name as unit rows, and each trial's two row indices.

    Returns:
        ``(matrix (U, D), index_a (N,), index_b (N,))``; a missing utterance raises
        KeyError naming it, a zero or non-finite embedding ValueError naming it.
    """
    ids, index_a, index_b = _trial_index(trials)
    if not ids:
        return np.zeros((0, 0)), index_a, index_b
    return _unit_rows(_stack(ids, emb, "embedding"), ids, "embedding"), index_a, index_b


def _unit_rows(matrix: Floats, ids: Sequence[str], what: str) -> Floats:
    """``matrix`` ``(U, D)`` with unit rows; a zero row raises naming its utterance."""
    zero = np.flatnonzero(np.linalg.norm(matrix, axis=1) == 0)
    if zero.size:
        raise ValueError(f"{what} of utterance {ids[zero[0]]!r} is all zeros")
    return l2_normalise(matrix, what)


def paired_dot(matrix: Floats, index_a: Indices, index_b: Indices) -> Floats:
    """``(N,)`` dot products ``matrix[index_a[i]] . matrix[index_b[i]]``, chunked over trials."""
    out = np.empty(index_a.shape[0])
    for start in range(0, out.shape[0], _CHUNK):
        part = slice(start, start + _CHUNK)
        out[part] = np.einsum("nd,nd->n", matrix[index_a[part]], matrix[index_b[part]])
    return out


def score_trials(trials: Sequence[Trial], emb: Mapping[str, ArrayLike]) -> Floats:
    """Cosine score of every trial.

    Args:
        trials: ``(label, utt_a, utt_b)`` tuples.
        emb: utterance id -> ``(D,)`` embedding.

    Returns:
        ``(N,)`` float64 scores in trial order.
    """
    return paired_dot(*embedding_matrix(trials, emb))


def _segments(seg_emb: Mapping[str, ArrayLike], utt: str, dim: int | None) -> Floats:
    seg = _lookup(seg_emb, utt, "segment embeddings")
    if seg.ndim != 2 or seg.shape[0] == 0 or (dim is not None and seg.shape[1] != dim):
        expected = f"(S >= 1, {dim})" if dim is not None else "(S >= 1, D)"
        raise ValueError(
            f"segment embeddings of utterance {utt!r} have shape {seg.shape}; expected {expected}"
        )
    return seg


def random_segment(seg: Floats, utt: str) -> Floats:
    """One of an utterance's segments, drawn from a generator seeded by its id: the same
    segment on every trial and rerun, so the baseline's scores are reproducible."""
    rng = np.random.default_rng(zlib.crc32(utt.encode("utf-8")))
    return seg[int(rng.integers(seg.shape[0]))]


def _per_utterance(
    ids: Sequence[str], seg_emb: Mapping[str, ArrayLike], reduce: Callable[[Floats], Floats]
) -> dict[str, Floats]:
    reduced: dict[str, Floats] = {}
    dim: int | None = None
    for utt in ids:
        seg = _segments(seg_emb, utt, dim)
        dim = seg.shape[1]
        reduced[utt] = reduce(seg)
    return reduced


def score_trials_segments(
    trials: Sequence[Trial], seg_emb: Mapping[str, ArrayLike], scorer: str
) -> Floats:
    """Score every trial from segment embeddings with one of ``SEGMENT_SCORERS``.

    Args:
        trials: ``(label, utt_a, utt_b)`` tuples.
        seg_emb: utterance id -> ``(S, D)`` segment embeddings (``S >= 1``).
        scorer: ``mean_cossim``, ``mean_dot``, ``single_segment``, ``ahc-<linkage>`` or
            ``ds-<linkage>``.

    Returns:
        ``(N,)`` float64 scores in trial order, higher = more likely the same speaker.
    """
    if scorer not in SEGMENT_SCORERS:
        raise ValueError(f"unknown segment scorer {scorer!r}; valid: {', '.join(SEGMENT_SCORERS)}")
    ids, index_a, index_b = _trial_index(trials)
    if scorer in ("mean_cossim", "mean_dot", "single_segment"):
        if scorer == "single_segment":
            picked = {utt: random_segment(_segments(seg_emb, utt, None), utt) for utt in ids}
        else:
            picked = _per_utterance(ids, seg_emb, lambda seg: seg.mean(axis=0))
        matrix = np.stack([picked[utt] for utt in ids]) if ids else np.zeros((0, 0))
        if scorer != "mean_dot" and ids:
            matrix = _unit_rows(matrix, ids, "mean segment embedding")
        return paired_dot(matrix, index_a, index_b)
    family, linkage = scorer.split("-", 1)
    reduce = dominant_set_embeddings if family == "ds" else (lambda seg: seg)
    points = _per_utterance(ids, seg_emb, reduce)
    rows = [points[utt] for utt in ids]
    return np.array(
        [
            -last_merge_distance(np.concatenate([rows[a], rows[b]]), linkage)
            for a, b in zip(index_a, index_b, strict=True)
        ],
        dtype=np.float64,
    )


def expand_scorers(cfg: EvalConfig) -> tuple[str, ...]:
    """Concrete scorer names for ``cfg.scorers``: ``ahc`` and ``dominant_sets`` expand to
    one ``ahc-<linkage>`` / ``ds-<linkage>`` per ``cfg.linkages``; other names pass through.
    """
    for linkage in cfg.linkages:
        if linkage not in LINKAGES:
            raise ValueError(f"eval.linkages: unknown linkage {linkage!r}; valid: {LINKAGES}")
    names: list[str] = []
    for name in cfg.scorers:
        if name == "ahc":
            names.extend(f"ahc-{linkage}" for linkage in cfg.linkages)
        elif name == "dominant_sets":
            names.extend(f"ds-{linkage}" for linkage in cfg.linkages)
        elif name in SCORERS:
            names.append(name)
        else:
            raise ValueError(
                f"eval.scorers: unknown scorer {name!r}; valid: ahc, dominant_sets, "
                f"{', '.join(SCORERS)}"
            )
    return tuple(dict.fromkeys(names))
