"""The speaker bootstrap: nominal coverage of known values on synthetic speakers, scipy's
percentile bootstrap where every speaker has one row, and paired effects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from voxray.eval.intervals import (
    ONE_SPEAKER,
    Interval,
    bootstrap_indices,
    mean_interval,
    speaker_bootstrap,
    verification_interval,
)

#: Per-speaker offset of target scores (speaker-level dependence) and the noise of each trial.
SPK_SD, TAR_MEAN = 0.6, 2.0


def _clustered_trials(rng, n_spk=20, n_tar=6, n_non=18):
    """Trials whose target scores share their enrolment speaker's offset.

    Targets ~ N(2 + u_spk, 1) with u_spk ~ N(0, 0.6^2), so over speakers N(2, 1 + 0.36);
    non-targets ~ N(0, 1). Returns ``(scores, labels, enrol_speakers)``.
    """
    offsets = rng.normal(0.0, SPK_SD, n_spk)
    tar = TAR_MEAN + np.repeat(offsets, n_tar) + rng.normal(0, 1, n_spk * n_tar)
    non = rng.normal(0, 1, n_spk * n_non)
    scores = np.r_[tar, non]
    labels = np.r_[np.ones(tar.size, int), np.zeros(non.size, int)]
    speakers = np.r_[np.repeat(np.arange(n_spk), n_tar), np.repeat(np.arange(n_spk), n_non)]
    return scores, labels, speakers


def _population_eer() -> float:
    """Where N(2, 1.36)'s miss rate equals N(0, 1)'s false-alarm rate: t = 2 / (1 + sd_tar)."""
    sd_tar = np.sqrt(1.0 + SPK_SD**2)
    return float(stats.norm.sf(TAR_MEAN / (1.0 + sd_tar)))


def test_eer_interval_covers_the_population_eer_at_the_nominal_rate():
    true_eer = _population_eer()
    covered = 0
    for rep in range(100):
        scores, labels, spk = _clustered_trials(np.random.default_rng(rep))
        ci = verification_interval(scores, labels, spk, n_resamples=150, seed=rep)
        covered += ci.ci_low <= true_eer <= ci.ci_high
    assert covered >= 90, f"95% interval covered the true EER {covered} of 100 times"


def test_mean_interval_covers_a_clustered_mean_and_a_row_bootstrap_does_not():
    """Rows of one speaker share an offset: only resampling speakers keeps the nominal rate."""
    by_speaker = by_row = 0
    for rep in range(100):
        rng = np.random.default_rng(rep)
        spk = np.repeat(np.arange(40), 5)
        values = np.repeat(rng.normal(0, 1, 40), 5) + rng.normal(0, 0.3, spk.size)
        by_speaker += mean_interval(values, spk, n_resamples=200, seed=rep).excludes(0.0) == 0
        by_row += (
            mean_interval(values, np.arange(spk.size), n_resamples=200, seed=rep).excludes(0.0) == 0
        )
    assert by_speaker >= 90
    assert by_row < 70  # the rows' bootstrap is far too narrow on clustered data


def test_one_row_per_speaker_is_scipys_percentile_bootstrap(rng):
    values = rng.exponential(1.0, 80)
    ours = mean_interval(values, np.arange(80), n_resamples=4000, seed=1)
    ref = stats.bootstrap(
        (values,), np.mean, method="percentile", n_resamples=4000, random_state=1
    ).confidence_interval
    assert ours.value == pytest.approx(values.mean())
    assert ours.ci_low == pytest.approx(ref.low, abs=0.03)
    assert ours.ci_high == pytest.approx(ref.high, abs=0.03)
    assert ours.n == 80
    assert "80 speakers" in ours.method


def test_draws_keep_each_row_inside_its_speaker(rng):
    spk = np.array(["b", "a", "b", "c", "a", "b"])
    for idx in bootstrap_indices(spk, 50, rng):
        drawn = spk[idx]
        # a drawn speaker contributes exactly its own row count
        for name, count in zip(*np.unique(drawn, return_counts=True), strict=True):
            assert count % int((spk == name).sum()) == 0


def test_same_seed_same_interval_and_paired_identical_systems_have_no_effect(rng):
    scores, labels, spk = _clustered_trials(rng)
    a = verification_interval(scores, labels, spk, n_resamples=100, seed=3)
    assert a == verification_interval(scores, labels, spk, n_resamples=100, seed=3)
    ratio = verification_interval(scores, labels, spk, versus=scores, n_resamples=100)
    assert (ratio.value, ratio.ci_low, ratio.ci_high) == (1.0, 1.0, 1.0)
    diff = verification_interval(
        scores, labels, spk, "mindcf_p0.05", versus=scores, effect="difference", n_resamples=100
    )
    assert (diff.ci_low, diff.ci_high) == (0.0, 0.0)


def test_paired_ratio_separates_a_worse_system(rng):
    scores, labels, spk = _clustered_trials(rng)
    worse = scores + rng.normal(0, 1.5, scores.size)
    ci = verification_interval(worse, labels, spk, versus=scores, n_resamples=300)
    assert ci.excludes(1.0) == 1
    assert ci.ci_low <= ci.value <= ci.ci_high


def test_excludes_reads_the_interval_not_the_value():
    assert Interval(0.5, 0.1, 0.9, 10, "x").excludes(0.0) == 1
    assert Interval(0.5, -0.1, 0.9, 10, "x").excludes(0.0) == 0
    assert Interval(-0.5, -0.9, -0.1, 10, "x").excludes(0.0) == -1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"confidence": 1.0}, "confidence"), ({"n_resamples": 1}, "n_resamples")],
    ids=["confidence", "resamples"],
)
def test_bad_settings_name_the_setting(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mean_interval([1.0, 2.0], [0, 1], **kwargs)


def test_undefined_statistic_on_most_draws_is_an_error():
    def eer_or_undefined(idx):  # defined on the full list only, as an EER without targets
        if idx.size != 4 or np.unique(idx).size != 4:
            raise ValueError("no target trials")
        return 0.1

    with pytest.raises(ValueError, match="undefined on"):
        speaker_bootstrap(eer_or_undefined, [0, 1, 2, 3], n_resamples=100)


def test_one_speaker_has_no_interval_and_its_verdict_is_inconclusive(rng):
    """A figure of one speaker's utterances (the attribute stage's first 14 utterances of a
    corpus sorted by speaker, once) must not pass for a finding over speakers."""
    from voxray.report.verdicts import against_bound, verdict

    values = 1.3 + rng.normal(0, 0.05, 14)
    ci = speaker_bootstrap(lambda idx: float(values[idx].mean()), ["spk1"] * 14, seed=0)
    assert ci.value == pytest.approx(values.mean()) and ci.n == 14
    assert np.isnan(ci.ci_low) and np.isnan(ci.ci_high) and ONE_SPEAKER in ci.method
    assert verdict("claim", [against_bound("ratio", ci, 1.0, "above")], "").status == (
        "inconclusive"
    )
    two = speaker_bootstrap(lambda idx: float(values[idx].mean()), ["a"] * 7 + ["b"] * 7)
    assert np.isfinite(two.ci_low) and two.ci_low > 1.0
