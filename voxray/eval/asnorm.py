"""Adaptive symmetric score normalisation (AS-norm, Matejka et al., Interspeech 2017).

Each side of a trial is scored against a cohort of impostor speakers (the training
speakers' mean embeddings); only its ``top_k`` closest cohort speakers are kept, so the
normalisation adapts to the region of embedding space the utterance lives in:
``s' = 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)``.
Statistics are computed once per distinct utterance, not once per trial.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from voxray.eval.clustering import Floats, l2_normalise
from voxray.eval.scoring import Trial, embedding_matrix, paired_dot

#: Floor on a cohort standard deviation, so a degenerate cohort cannot divide by zero.
_MIN_STD = 1e-8
#: Rows of cohort scores computed at once: bounds memory to ``_CHUNK * M`` floats.
_CHUNK = 4096


def build_cohort(
    embeddings: ArrayLike, speaker_ids: Sequence[str], size: int | None = None, seed: int = 0
) -> Floats:
    """Cohort matrix of speaker mean embeddings.

    Args:
        embeddings: ``(N, D)`` utterance embeddings of the training (cohort) speakers.
        speaker_ids: ``(N,)`` the speaker of each row.
        size: keep at most this many speakers, drawn without replacement with ``seed``
            (``EvalConfig.asnorm_cohort``); ``None`` keeps all.

    Returns:
        ``(M, D)`` L2-normalised means of each speaker's L2-normalised embeddings,
        speakers in sorted order of their id before subsampling.
    """
    raw = np.asarray(embeddings, dtype=np.float64)
    spk = np.asarray(speaker_ids)
    if raw.ndim != 2 or spk.shape != (raw.shape[0],):
        raise ValueError(
            f"cohort: need (N, D) embeddings and N speaker ids; got {raw.shape} and {spk.shape}"
        )
    x = l2_normalise(raw, "cohort embeddings")
    names, inverse = np.unique(spk, return_inverse=True)
    sums = np.zeros((names.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    means = l2_normalise(sums, "cohort speaker means")
    if size is not None and size < names.size:
        if size < 2:
            raise ValueError(f"cohort: size must be at least 2 speakers; got {size}")
        keep = np.sort(np.random.default_rng(seed).choice(names.size, size, replace=False))
        means = means[keep]
    return means


def cohort_stats(emb: ArrayLike, cohort: ArrayLike, top_k: int) -> tuple[Floats, Floats]:
    """Mean and standard deviation of each embedding's ``top_k`` highest cohort cosines.

    Args:
        emb: ``(U, D)`` embeddings (normalised here).
        cohort: ``(M, D)`` cohort embeddings (normalised here), ``M >= 2``.
        top_k: cohort scores kept per embedding; clamped to ``M`` when the cohort is
            smaller (a smoke corpus has few training speakers).

    Returns:
        ``(mu (U,), sd (U,))``; ``sd`` is the population std (ddof 0), floored at 1e-8.
        (ddof only rescales every normalised score by one constant, so EER is unaffected.)
    """
    e = np.asarray(emb, dtype=np.float64)
    c = np.asarray(cohort, dtype=np.float64)
    if e.ndim != 2 or c.ndim != 2 or e.shape[1] != c.shape[1]:
        raise ValueError(
            f"AS-norm: embeddings {e.shape} and cohort {c.shape} must be (U, D) and (M, D)"
        )
    if c.shape[0] < 2:
        raise ValueError(f"AS-norm needs a cohort of at least 2 speakers; got {c.shape[0]}")
    if top_k < 2:
        raise ValueError(f"AS-norm: top_k must be at least 2 (a std of 1 score is 0); got {top_k}")
    e = l2_normalise(e, "AS-norm embeddings")
    c = l2_normalise(c, "AS-norm cohort")
    k = min(top_k, c.shape[0])
    mu = np.empty(e.shape[0])
    sd = np.empty(e.shape[0])
    for start in range(0, e.shape[0], _CHUNK):
        block = e[start : start + _CHUNK] @ c.T
        top = np.partition(block, block.shape[1] - k, axis=1)[:, block.shape[1] - k :]
        mu[start : start + _CHUNK] = top.mean(axis=1)
        sd[start : start + _CHUNK] = top.std(axis=1)
    return mu, np.maximum(sd, _MIN_STD)


def as_norm_scores(
    scores: ArrayLike, enrol: ArrayLike, test: ArrayLike, cohort: ArrayLike, top_k: int
) -> Floats:
    """AS-norm of per-trial scores given each trial's two embeddings.

    Args:
        scores: ``(N,)`` raw cosine scores.
        enrol: ``(N, D)`` enrolment-side embedding of each trial.
        test: ``(N, D)`` test-side embedding of each trial.
        cohort: ``(M, D)`` cohort embeddings.
        top_k: cohort scores kept per side.

    Returns:
        ``(N,)`` normalised scores.
    """
    s = np.asarray(scores, dtype=np.float64)
    mu_e, sd_e = cohort_stats(enrol, cohort, top_k)
    mu_t, sd_t = cohort_stats(test, cohort, top_k)
    if not s.shape == mu_e.shape == mu_t.shape:
        raise ValueError(
            f"AS-norm: {s.shape} scores for {mu_e.shape[0]} enrolment and "
            f"{mu_t.shape[0]} test embeddings"
        )
    return 0.5 * ((s - mu_e) / sd_e + (s - mu_t) / sd_t)


def as_norm(
    trials: Sequence[Trial], emb: Mapping[str, ArrayLike], cohort: ArrayLike, top_k: int
) -> Floats:
    """AS-normalised cosine scores of a trial list, cohort statistics once per utterance.

    Args:
        trials: ``(label, utt_a, utt_b)`` tuples.
        emb: utterance id -> ``(D,)`` embedding; a missing id raises KeyError naming it.
        cohort: ``(M, D)`` cohort embeddings (see ``build_cohort``).
        top_k: cohort scores kept per side (``EvalConfig.asnorm_top_k``).

    Returns:
        ``(N,)`` normalised scores in trial order.
    """
    matrix, index_a, index_b = embedding_matrix(trials, emb)
    if index_a.size == 0:
        return np.zeros(0)
    raw = paired_dot(matrix, index_a, index_b)
    mu, sd = cohort_stats(matrix, cohort, top_k)
    return 0.5 * ((raw - mu[index_a]) / sd[index_a] + (raw - mu[index_b]) / sd[index_b])
