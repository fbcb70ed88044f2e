"""AS-norm against a plain loop over trials and cohort speakers."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from tests.support.trials import TRIALS, UTTS, cosine
from voxray.eval import asnorm as asnorm_module
from voxray.eval.asnorm import as_norm, as_norm_scores, build_cohort, cohort_stats


def _loop_asnorm(trials, emb, cohort, top_k):
    """Matejka et al.: per side, mean/std of its top_k cohort cosines; average the z-scores."""
    out = []
    for _, a, b in trials:
        raw = cosine(emb[a], emb[b])
        z = []
        for side in (emb[a], emb[b]):
            top = sorted((cosine(side, c) for c in cohort), reverse=True)[:top_k]
            z.append((raw - statistics.fmean(top)) / statistics.pstdev(top))
        out.append(0.5 * (z[0] + z[1]))
    return np.array(out)


@pytest.fixture
def emb(rng):
    return {u: rng.normal(size=10) for u in UTTS}


@pytest.fixture
def cohort(rng):
    return rng.normal(size=(25, 10))


@pytest.mark.parametrize("top_k", [2, 7, 25, 400], ids=["k2", "k7", "all", "k-above-cohort"])
def test_asnorm_trials_matches_loop(emb, cohort, top_k):
    expected = _loop_asnorm(TRIALS, emb, cohort, top_k)
    np.testing.assert_allclose(as_norm(TRIALS, emb, cohort, top_k), expected, rtol=1e-10)


def test_asnorm_on_trial_arrays_matches_loop(emb, cohort):
    enrol = np.stack([emb[a] for _, a, _ in TRIALS])
    test = np.stack([emb[b] for _, _, b in TRIALS])
    raw = np.array([cosine(x, y) for x, y in zip(enrol, test, strict=True)])
    np.testing.assert_allclose(
        as_norm_scores(raw, enrol, test, cohort, 5),
        _loop_asnorm(TRIALS, emb, cohort, 5),
        rtol=1e-10,
    )


def test_cohort_stats_chunked_equals_unchunked(rng, cohort, monkeypatch):
    emb = rng.normal(size=(9, 10))
    mu, sd = cohort_stats(emb, cohort, 6)
    monkeypatch.setattr(asnorm_module, "_CHUNK", 2)
    mu2, sd2 = cohort_stats(emb, cohort, 6)
    np.testing.assert_allclose(mu2, mu, rtol=1e-13)
    np.testing.assert_allclose(sd2, sd, rtol=1e-13)


def test_build_cohort_is_speaker_means(rng):
    x = rng.normal(size=(7, 4))
    speakers = ["s2", "s1", "s2", "s3", "s1", "s1", "s3"]
    cohort = build_cohort(x, speakers)
    for row, spk in zip(cohort, ["s1", "s2", "s3"], strict=True):
        rows = [v / np.linalg.norm(v) for v, s in zip(x, speakers, strict=True) if s == spk]
        mean = np.mean(rows, axis=0)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), atol=1e-12)
    sub = build_cohort(x, speakers, size=2, seed=3)
    assert sub.shape == (2, 4)
    assert all(any(np.allclose(r, c) for c in cohort) for r in sub)


@pytest.mark.parametrize(
    ("emb_shape", "cohort_shape", "top_k", "message"),
    [
        ((3, 4), (1, 4), 5, "at least 2 speakers"),
        ((3, 4), (6, 4), 1, "top_k must be at least 2"),
        ((3, 4), (6, 5), 3, r"\(3, 4\) and cohort \(6, 5\)"),
    ],
    ids=["cohort-1", "k1", "dims"],
)
def test_cohort_stats_rejects_bad_input(emb_shape, cohort_shape, top_k, message):
    with pytest.raises(ValueError, match=message):
        cohort_stats(np.ones(emb_shape), np.ones(cohort_shape), top_k)


def test_asnorm_trials_missing_utterance(emb, cohort):
    with pytest.raises(KeyError, match="id29999/x/1.wav"):
        as_norm([(1, UTTS[0], "id29999/x/1.wav")], emb, cohort, 5)
