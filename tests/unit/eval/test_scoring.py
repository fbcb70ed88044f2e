"""Trial scoring: vectorised cosine against a loop, segment scorers against the per-pair ones."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.trials import TRIALS, UTTS, loop_cosine
from voxray.config import EvalConfig
from voxray.eval import scoring
from voxray.eval.clustering import LINKAGES, ahc_score, ds_score, mean_cossim, mean_dot
from voxray.eval.scoring import (
    SCORERS,
    SEGMENT_SCORERS,
    expand_scorers,
    score_trials,
    score_trials_segments,
)


@pytest.fixture
def emb(rng):
    return {u: rng.normal(size=12).astype(np.float32) for u in UTTS}


@pytest.fixture
def seg_emb(rng):
    # utterance 3 has a single segment: every scorer must handle it
    counts = [4, 6, 3, 1, 5, 2]
    return {
        u: rng.normal(size=(n, 12)).astype(np.float32) for u, n in zip(UTTS, counts, strict=True)
    }


def test_score_trials_matches_loop(emb):
    np.testing.assert_allclose(score_trials(TRIALS, emb), loop_cosine(TRIALS, emb), atol=1e-12)


def test_score_trials_chunked_equals_unchunked(emb, monkeypatch):
    expected = score_trials(TRIALS, emb)
    monkeypatch.setattr(scoring, "_CHUNK", 4)
    np.testing.assert_allclose(score_trials(TRIALS, emb), expected, rtol=1e-13)


def test_score_trials_empty_list(emb):
    assert score_trials([], emb).shape == (0,)


def test_missing_utterance_is_named(emb, seg_emb):
    trials = [*TRIALS, (1, UTTS[0], "id10999/missing/00001.wav")]
    with pytest.raises(KeyError, match="id10999/missing/00001.wav"):
        score_trials(trials, emb)
    with pytest.raises(KeyError, match="id10999/missing/00001.wav"):
        score_trials_segments(trials, seg_emb, "ahc-average")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(12), "all zeros"),
        (np.ones(7), r"shape \(7,\); expected \(12,\)"),
        (np.full(12, np.nan), "NaN"),
    ],
    ids=["zero", "wrong-dim", "nan"],
)
def test_bad_embedding_is_named(emb, bad, message):
    emb = {**emb, UTTS[5]: bad}
    with pytest.raises(ValueError, match=message) as info:
        score_trials(TRIALS, emb)
    assert UTTS[5] in str(info.value)


def test_malformed_trial_is_located(emb):
    with pytest.raises(ValueError, match="trial 1"):
        score_trials([TRIALS[0], (UTTS[0], UTTS[1])], emb)


def _per_pair(scorer):
    if scorer == "mean_cossim":
        return mean_cossim
    if scorer == "mean_dot":
        return mean_dot
    family, linkage = scorer.split("-", 1)
    pair = ahc_score if family == "ahc" else ds_score
    return lambda a, b: pair(a, b, linkage)


PER_PAIR = tuple(s for s in SEGMENT_SCORERS if s != "single_segment")  # per utterance, below


@pytest.mark.parametrize("scorer", PER_PAIR, ids=PER_PAIR)
def test_segment_scorers_match_per_pair_functions(seg_emb, scorer):
    expected = [_per_pair(scorer)(seg_emb[a], seg_emb[b]) for _, a, b in TRIALS]
    got = score_trials_segments(TRIALS, seg_emb, scorer)
    assert got.shape == (len(TRIALS),) and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_mean_cossim_is_cosine_of_means(seg_emb):
    means = {u: s.astype(np.float64).mean(axis=0) for u, s in seg_emb.items()}
    np.testing.assert_allclose(
        score_trials_segments(TRIALS, seg_emb, "mean_cossim"), loop_cosine(TRIALS, means)
    )


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 12)), r"\(0, 12\)"),
        (np.ones((3, 5)), r"\(S >= 1, 12\)"),
        (np.ones(12), r"shape \(12,\)"),
    ],
    ids=["no-segments", "wrong-dim", "1d"],
)
def test_bad_segments_are_named(seg_emb, bad, message):
    seg_emb = {**seg_emb, UTTS[5]: bad}
    with pytest.raises(ValueError, match=message) as info:
        score_trials_segments(TRIALS, seg_emb, "ds-complete")
    assert UTTS[5] in str(info.value)


def test_unknown_segment_scorer(seg_emb):
    with pytest.raises(ValueError, match="unknown segment scorer 'ahc-mean'.*ahc-average"):
        score_trials_segments(TRIALS, seg_emb, "ahc-mean")


def test_scorer_names():
    assert SCORERS[0] == "cosine" and SCORERS[1:] == SEGMENT_SCORERS
    assert len(set(SCORERS)) == 4 + 2 * len(LINKAGES) == 18  # cosine, means, single segment
    assert {f"ahc-{x}" for x in LINKAGES} | {f"ds-{x}" for x in LINKAGES} < set(SCORERS)


def test_expand_scorers_from_config():
    cfg = EvalConfig(
        scorers=("cosine", "ahc", "dominant_sets", "mean_dot"), linkages=("average", "ward")
    )
    assert expand_scorers(cfg) == (
        "cosine",
        "ahc-average",
        "ahc-ward",
        "ds-average",
        "ds-ward",
        "mean_dot",
    )
    assert len(expand_scorers(EvalConfig())) == 17
    with pytest.raises(ValueError, match="eval.scorers: unknown scorer 'plda'"):
        expand_scorers(EvalConfig(scorers=("plda",)))
    with pytest.raises(ValueError, match="eval.linkages: unknown linkage 'mean'"):
        expand_scorers(EvalConfig(linkages=("mean",)))


def test_single_segment_is_the_cosine_of_one_segment_per_utterance(seg_emb):
    """003 4.4's baseline: one segment of each utterance, the same on every trial and rerun."""
    got = score_trials_segments(TRIALS, seg_emb, "single_segment")
    picked = {u: scoring.random_segment(seg_emb[u].astype(np.float64), u) for u in UTTS}
    for u in UTTS:  # one of the utterance's own segments
        assert any(np.array_equal(picked[u], row) for row in seg_emb[u].astype(np.float64))
    expected = loop_cosine(TRIALS, picked)
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    np.testing.assert_array_equal(got, score_trials_segments(TRIALS, seg_emb, "single_segment"))
    assert not np.allclose(got, score_trials_segments(TRIALS, seg_emb, "mean_cossim"))


def test_single_segment_draws_differ_between_utterances():
    seg = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 3))
    drawn = {int(scoring.random_segment(seg, f"spk{i}/v/u")[0]) for i in range(40)}
    assert len(drawn) >= 5  # not always the first (or any one) segment
