"""Verdicts on the seeds' claims, three-valued: holds / fails only when the deciding interval
lies on one side of the claim's bound, inconclusive when it straddles it (two equal systems),
not computed without numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from voxray.config.evaluation import IntervalConfig
from voxray.eval.intervals import Interval
from voxray.report.effects import paired_eer_effect, pooled_eer_effect
from voxray.report.sections.clustering import ahc_verdict
from voxray.report.sections.faithfulness import cam_random_verdict
from voxray.report.sections.flipping import lrp_flipping_verdict
from voxray.report.sections.frequency import formant_verdict
from voxray.report.sections.multispeaker import layer_cam_verdict
from voxray.report.sections.reliability import reliability_verdict
from voxray.report.verdicts import against_bound, between, verdict
from voxray.schema import MetricRow

FAST = IntervalConfig(resamples=200)
N_SPK, N_TAR, N_NON = 20, 5, 15


def _trial_scores(rng, target_mean: float) -> pd.DataFrame:
    """One system's trials: per enrolment speaker 5 targets ~ N(mean, 1), 15 non-targets
    ~ N(0, 1)."""
    rows = []
    for spk in range(N_SPK):
        for k in range(N_TAR + N_NON):
            label = int(k < N_TAR)
            score = rng.normal(target_mean if label else 0.0, 1.0)
            rows.append((f"s{spk}-enrol", f"s{spk}-t{k}", label, score))
    return pd.DataFrame(rows, columns=["utt_a", "utt_b", "label", "score"])


def _scores(systems: dict[tuple[str, str, str], pd.DataFrame], list_name: str) -> pd.DataFrame:
    frames = [
        t.assign(model=m, condition=c, scorer=s, list=list_name) for (m, c, s), t in systems.items()
    ]
    return pd.concat(frames, ignore_index=True)


def _manifest() -> pd.DataFrame:
    utts = [(f"s{s}-enrol", f"spk{s}") for s in range(N_SPK)]
    return pd.DataFrame(utts, columns=["utt_id", "speaker_id"])


def _eer_rows(systems, list_name) -> list[MetricRow]:
    return [MetricRow(m, c, list_name, s, "eer", 0.1) for m, c, s in systems]


# ---- the verdict rule itself


@pytest.mark.parametrize(
    ("ci", "side", "status"),
    [
        ((0.9, 0.8, 0.95), "below", "holds"),
        ((1.1, 1.05, 1.2), "below", "fails"),
        ((1.0, 0.9, 1.1), "below", "inconclusive"),
        ((1.1, 1.05, 1.2), "above", "holds"),
    ],
    ids=["below-holds", "above-fails", "straddles", "above-holds"],
)
def test_against_bound_reads_the_interval(ci, side, status):
    check = against_bound("ratio", Interval(*ci, 10, "m"), 1.0, side)
    assert check.status == status
    assert f"[{ci[1]:.3g}, {ci[2]:.3g}]" in check.shown


def test_a_point_value_past_the_bound_without_interval_is_inconclusive():
    assert against_bound("x", Interval(5.0, np.nan, np.nan, 0, ""), 1.0, "below").status == (
        "inconclusive"
    )
    a, b = Interval(0.1, 0.05, 0.15, 9, ""), Interval(0.3, 0.14, 0.4, 9, "")
    assert between("x", a, b, "below").status == "inconclusive"  # overlapping intervals
    assert between("x", a, Interval(0.3, 0.2, 0.4, 9, ""), "below").status == "holds"
    assert between("x", a, Interval(0.3, 0.2, 0.4, 9, ""), "above").status == "fails"


def test_one_failing_check_fails_the_claim_and_one_open_check_keeps_it_open():
    holds = against_bound("a", Interval(0.5, 0.4, 0.6, 9, ""), 1.0, "below")
    fails = against_bound("b", Interval(1.5, 1.4, 1.6, 9, ""), 1.0, "below")
    open_ = against_bound("c", Interval(1.0, 0.5, 1.6, 9, ""), 1.0, "below")
    assert verdict("c", [holds, open_, fails], "none").status == "fails"
    assert verdict("c", [holds, open_], "none").status == "inconclusive"
    assert verdict("c", [holds, holds], "none").status == "holds"
    assert verdict("c", [], "nothing").status == "not computed"


# ---- 003: AHC-average against Mean-CosSim, a paired difference on one trial list


@pytest.mark.parametrize(
    ("ahc_mean", "status"),
    [(None, "inconclusive"), (6.0, "holds"), (0.0, "fails")],
    ids=["equal-scores", "ahc-clearly-better", "ahc-clearly-worse"],
)
def test_ahc_verdict(rng, ahc_mean, status):
    mean_cossim = _trial_scores(rng, 2.5)  # EER near 11%
    ahc = mean_cossim if ahc_mean is None else _trial_scores(rng, ahc_mean)
    systems = {("ecapa", "none", "mean_cossim"): mean_cossim, ("ecapa", "none", "ahc-average"): ahc}
    metrics = pd.DataFrame([r.__dict__ for r in _eer_rows(systems, "vox1-o")])
    v = ahc_verdict(metrics, _scores(systems, "vox1-o"), _manifest(), "ecapa", FAST)
    assert v.status == status, v.detail
    assert "vox1-o: AHC-Average EER - Mean-CosSim EER" in v.detail
    assert "speaker bootstrap" in v.detail and f"{N_SPK} speakers" in v.detail


def test_ahc_verdict_without_scores_reads_the_metrics_intervals():
    rows = [
        MetricRow("ecapa", "none", "l", "ahc-average", "eer", 0.05, ci_low=0.04, ci_high=0.06),
        MetricRow("ecapa", "none", "l", "mean_cossim", "eer", 0.10, ci_low=0.08, ci_high=0.12),
    ]
    metrics = pd.DataFrame([r.__dict__ for r in rows])
    assert ahc_verdict(metrics, None, None, "ecapa", FAST).status == "holds"
    tie = pd.DataFrame([{**r.__dict__, "ci_low": 0.03, "ci_high": 0.2} for r in rows])
    assert ahc_verdict(tie, None, None, "ecapa", FAST).status == "inconclusive"


# ---- 000: Table 2, the masked-retrained EER against the clean EER and its shuffled control

MASKED = "masked:integrated_gradients/traversal/product"
SHUFFLED = "masked:integrated_gradients/traversal/product/shuffled"


def _table2_systems(rng, retrained: float | None, control: float | None):
    """Clean base scores (targets ~ N(3, 1)); a mean of None gives the clean scores again."""
    clean = _trial_scores(rng, 3.0)

    def system(mean):
        return clean if mean is None else _trial_scores(rng, mean)

    return {
        ("ecapa", "none", "cosine"): clean,
        ("ecapa-retrained-ig", MASKED, "cosine"): system(retrained),
        ("ecapa-retrained-shuf", SHUFFLED, "cosine"): system(control),
    }


@pytest.mark.parametrize(
    ("retrained", "control", "status"),
    [
        (None, 0.3, "holds"),  # as good as clean, far below its control
        (None, None, "inconclusive"),  # as good as clean, but its control is too (equal scores)
        (0.3, 0.3, "fails"),  # masking destroys the speaker: ratio far above 1.21
    ],
    ids=["kept", "control-equal", "collapsed"],
)
def test_reliability_verdict(rng, retrained, control, status):
    systems = _table2_systems(rng, retrained, control)
    metrics = pd.DataFrame([r.__dict__ for r in _eer_rows(systems, "vox1-o")])
    v = reliability_verdict(
        metrics, _scores(systems, "vox1-o"), _manifest(), "ecapa", "vox1-o", FAST, 1.21
    )
    assert v.status == status, v.detail
    assert "vs 1.21 x clean EER: " in v.detail and "vs its shuffled-map control: " in v.detail
    assert "paired on vox1-o, speaker bootstrap" in v.detail


def test_reliability_verdict_without_scores_scales_the_clean_interval():
    """Metrics only (no scores/): the retrained EER's interval against 1.21 x the clean one's."""
    rows = [
        MetricRow("ecapa", "none", "l", "cosine", "eer", 0.10, ci_low=0.09, ci_high=0.11),
        MetricRow("r", MASKED, "l", "cosine", "eer", 0.45, ci_low=0.40, ci_high=0.50),
    ]
    metrics = pd.DataFrame([r.__dict__ for r in rows])
    v = reliability_verdict(metrics, None, None, "ecapa", "l", FAST, 1.21)
    assert v.status == "fails"
    assert "45% [40, 50] vs 12.1% [10.9, 13.3]" in v.detail


def test_absent_data_is_not_computed():
    assert reliability_verdict(None, None, None, "e", "l", FAST, 1.21).status == "not computed"
    assert ahc_verdict(None, None, None, "e", FAST).status == "not computed"
    assert cam_random_verdict(None).status == "not computed"
    assert lrp_flipping_verdict(None).status == "not computed"
    assert layer_cam_verdict(None).status == "not computed"
    assert formant_verdict(None, None, np.arange(3.0), FAST).status == "not computed"


# ---- the analyses' verdicts from metrics/ intervals


def _row(cond, lst, scorer, metric, value, half, **kw):
    return MetricRow(
        "m", cond, lst, scorer, metric, value, ci_low=value - half, ci_high=value + half, **kw
    )


@pytest.mark.parametrize(
    ("half", "deletion", "status"),
    [(0.02, 0.2, "holds"), (0.02, 0.6, "fails"), (0.3, 0.2, "inconclusive")],
    ids=["separated-better", "separated-worse", "overlapping"],
)
def test_cam_random_verdict(half, deletion, status):
    rows = [
        _row("layer_cam/cam", "faithfulness", "top1", "deletion_auc", deletion, half),
        _row("layer_cam/cam", "faithfulness", "top1", "insertion_auc", 1 - deletion, half),
        _row("random", "faithfulness", "top1", "deletion_auc", 0.4, half),
        _row("random", "faithfulness", "top1", "insertion_auc", 0.6, half),
    ]
    v = cam_random_verdict(pd.DataFrame([r.__dict__ for r in rows]))
    assert v.status == status, v.detail


@pytest.mark.parametrize(
    ("lrp", "status"), [(0.3, "holds"), (0.95, "fails"), (0.8, "inconclusive")]
)
def test_lrp_flipping_verdict(lrp, status):
    rows = [
        _row("lrp_epsilon", "pixel_flipping", "", "acc@0.01", lrp, 0.05),
        _row("random", "pixel_flipping", "", "acc@0.01", 0.8, 0.05),
        _row("lrp_epsilon", "pixel_flipping", "", "acc@0", 0.99, 0.01),  # unflipped: not a check
    ]
    v = lrp_flipping_verdict(pd.DataFrame([r.__dict__ for r in rows]))
    assert v.status == status and "at 1%" in v.detail


@pytest.mark.parametrize(
    ("layer_cam", "status"), [(0.9, "holds"), (0.2, "fails"), (0.55, "inconclusive")]
)
def test_layer_cam_verdict(layer_cam, status):
    rows = [
        _row("layer_cam@S1", "multispeaker", "", "top1", layer_cam, 0.1, case="A-B"),
        _row("layer_cam@S2", "multispeaker", "", "top1", layer_cam - 0.3, 0.1, case="A-B"),
        _row("grad_cam_pp@S1", "multispeaker", "", "top1", 0.5, 0.1, case="A-B"),
        _row("original", "multispeaker", "", "top1", 0.99, 0.01, case="A-B"),
    ]
    v = layer_cam_verdict(pd.DataFrame([r.__dict__ for r in rows]))
    assert v.status == status, v.detail


def test_formant_verdict_bootstraps_the_ratio_over_speakers(rng):
    hz = np.array([50.0, 200.0, 1000.0, 2500.0, 5000.0, 7000.0])
    voiced = np.array([0.0, 0.3, 0.3, 0.3, 0.05, 0.05])
    flat = np.full(6, 1 / 6)
    high = np.array([0.3, 0.02, 0.02, 0.02, 0.3, 0.3])

    def frame(profile, noise):
        rows = [
            ("ig", "traversal", f"s{s}-u{u}", np.abs(profile + rng.normal(0, noise, 6)))
            for s in range(10)
            for u in range(3)
        ]
        return pd.DataFrame(rows, columns=["method", "pathway", "utt_id", "freq_profile"])

    manifest = pd.DataFrame(
        [(f"s{s}-u{u}", f"spk{s}") for s in range(10) for u in range(3)],
        columns=["utt_id", "speaker_id"],
    )
    assert formant_verdict(frame(voiced, 0.01), manifest, hz, FAST).status == "holds"
    assert formant_verdict(frame(high, 0.01), manifest, hz, FAST).status == "fails"
    assert formant_verdict(frame(flat, 0.05), manifest, hz, FAST).status == "inconclusive"
    assert formant_verdict(frame(voiced, 0.01), manifest, None, FAST).status == "not computed"


def test_formant_verdict_leaves_out_the_bins_a_band_limited_corpus_has_no_signal_in(rng):
    """Telephone speech upsampled to 16 kHz: nothing above 4 kHz. A map flat over the bins that
    carry signal (and ~0 above 4 kHz, where no map can find anything) passes the claim when the
    silent bins count as "outside", and must not once they are left out; a map that does
    concentrate on F0/formants within the signal band still holds."""
    hz = np.array([50.0, 200.0, 1000.0, 2500.0, 3500.0, 5000.0, 6000.0, 7000.0])
    spread = np.array([3.0, 4.0, 4.0, 4.0, 3.5, 0.4, 0.4, 0.5])  # the features' std per bin
    flat_in_band = np.array([0.2, 0.2, 0.2, 0.2, 0.2, 0.001, 0.001, 0.001])
    voiced = np.array([0.05, 0.3, 0.3, 0.3, 0.05, 0.001, 0.001, 0.001])
    manifest = pd.DataFrame(
        [(f"s{s}-u{u}", f"spk{s}") for s in range(10) for u in range(3)],
        columns=["utt_id", "speaker_id"],
    )

    def frame(profile):
        rows = [
            ("ig", "traversal", f"s{s}-u{u}", np.abs(profile + rng.normal(0, 0.01, 8)))
            for s in range(10)
            for u in range(3)
        ]
        return pd.DataFrame(rows, columns=["method", "pathway", "utt_id", "freq_profile"])

    assert formant_verdict(frame(flat_in_band), manifest, hz, FAST).status == "holds"  # flattered
    fair = formant_verdict(frame(flat_in_band), manifest, hz, FAST, spread)
    assert fair.status != "holds", fair.detail
    assert "3 of 8 bins (5000-7000 Hz) carry no signal" in fair.detail
    assert formant_verdict(frame(voiced), manifest, hz, FAST, spread).status == "holds"
    only_voice = np.array([0.4, 4.0, 4.0, 4.0, 0.4, 0.4, 0.4, 0.5])
    assert formant_verdict(frame(voiced), manifest, hz, FAST, only_voice).status == "not computed"


# ---- 000 with several seeds (retrain.seeds): the effect pools them, over speakers and seeds

SEED_MODELS = ("ecapa--ig", "ecapa--ig--seed1", "ecapa--ig--seed2")


def _seeds(rng, clean: pd.DataFrame, target_means: list[float]) -> list[pd.DataFrame]:
    """One retraining per seed: the clean scores plus the seed's own noise, targets moved to
    ``target_mean`` (clean targets ~ N(3, 1))."""
    return [
        clean.assign(
            score=clean["score"]
            + rng.normal(0.0, 0.7, len(clean))
            + (mean - 3.0) * clean["label"].to_numpy()
        )
        for mean in target_means
    ]


def _seed_systems(clean, seeds) -> dict[tuple[str, str, str], pd.DataFrame]:
    systems = {("ecapa", "none", "cosine"): clean}
    systems.update({(m, MASKED, "cosine"): s for m, s in zip(SEED_MODELS, seeds, strict=False)})
    return systems


def test_pooled_interval_of_agreeing_seeds_is_no_wider_than_one_seed(rng):
    clean = _trial_scores(rng, 3.0)
    seeds = _seeds(rng, clean, [2.5, 2.5, 2.5])
    scores = _scores(_seed_systems(clean, seeds), "l")
    one = ("ecapa--ig", MASKED, "cosine")
    pooled = pooled_eer_effect(
        scores,
        _manifest(),
        [(m, MASKED, "cosine") for m in SEED_MODELS],
        [("ecapa", "none", "cosine")],
        "l",
        FAST,
    )
    single = paired_eer_effect(scores, _manifest(), one, ("ecapa", "none", "cosine"), "l", FAST)
    assert pooled is not None and single is not None
    assert "of 3 vs 1 seeds" in pooled.method and "seeds" not in single.method
    assert pooled.ci_high - pooled.ci_low <= single.ci_high - single.ci_low
    assert pooled.ci_low <= pooled.value <= pooled.ci_high


def test_verdict_is_inconclusive_when_the_seeds_disagree_across_the_bound(rng):
    clean = _trial_scores(rng, 3.0)
    # seed 0 and seed 1 as good as clean, seed 2 collapsed: each alone is clear-cut
    seeds = _seeds(rng, clean, [4.0, 4.0, 0.3])

    def judged(models: int) -> str:
        systems = _seed_systems(clean, seeds[:models])
        metrics = pd.DataFrame([r.__dict__ for r in _eer_rows(systems, "l")])
        v = reliability_verdict(
            metrics, _scores(systems, "l"), _manifest(), "ecapa", "l", FAST, 2.5
        )
        assert (f"mean of {models} seeds" in v.detail) == (models > 1), v.detail
        return v.status

    assert judged(1) == "holds"
    assert judged(2) == "holds"  # two agreeing seeds
    assert judged(3) == "inconclusive"
    alone = _seed_systems(clean, [seeds[2]])
    metrics = pd.DataFrame([r.__dict__ for r in _eer_rows(alone, "l")])
    assert (
        reliability_verdict(metrics, _scores(alone, "l"), _manifest(), "ecapa", "l", FAST, 2.5)
    ).status == "fails"


def test_the_seen_classification_design_has_its_own_verdict_beside_the_claims(rng):
    """A leaky design (training inputs masked with their Classification maps) failing does not
    decide the claim, which the class-free design tests; it gets a verdict of its own."""
    seen = "masked:integrated_gradients/seen-classification/product"
    systems = {
        **_table2_systems(rng, None, 0.3),  # the Traversal design: kept, far below its control
        ("ecapa-retrained-seen", seen, "cosine"): _trial_scores(rng, 0.3),  # collapsed
    }
    metrics = pd.DataFrame([r.__dict__ for r in _eer_rows(systems, "l")])
    args = (metrics, _scores(systems, "l"), _manifest(), "ecapa", "l", FAST, 1.21)
    claim = reliability_verdict(*args)
    variant = reliability_verdict(*args, seen_classification=True)
    assert claim.status == "holds" and "seen-classification" not in claim.detail, claim.detail
    assert variant.status == "fails" and "Integrated Gradients (seen-classification)" in (
        variant.detail
    )
    assert "not its test" in variant.claim and "not its test" not in claim.claim
    alone = {k: v for k, v in systems.items() if k[1] != seen}
    metrics = pd.DataFrame([r.__dict__ for r in _eer_rows(alone, "l")])
    none = reliability_verdict(
        metrics,
        _scores(alone, "l"),
        _manifest(),
        "ecapa",
        "l",
        FAST,
        1.21,
        seen_classification=True,
    )
    assert none.status == "not computed"


def test_formant_verdict_leaves_out_a_map_flat_over_frequency(rng):
    """A CAM of a time-only layer is the same in every bin: its ratio is 1 by construction, so
    it neither holds nor fails the claim; it is named as no test of it."""
    hz = np.array([50.0, 200.0, 1000.0, 2500.0, 5000.0, 7000.0])
    voiced = np.array([0.0, 0.3, 0.3, 0.3, 0.05, 0.05])
    rows = [
        (method, "cam" if method == "layer_cam" else "traversal", f"s{s}-u{u}", profile)
        for method, profile in (("layer_cam", np.full(6, 0.2)), ("ig", voiced))
        for s in range(6)
        for u in range(2)
    ]
    frame = pd.DataFrame(rows, columns=["method", "pathway", "utt_id", "freq_profile"])
    manifest = pd.DataFrame(
        [(f"s{s}-u{u}", f"spk{s}") for s in range(6) for u in range(2)],
        columns=["utt_id", "speaker_id"],
    )
    v = formant_verdict(frame, manifest, hz, FAST)
    assert v.status == "holds" and "Layer-CAM: the same in every bin" in v.detail, v.detail
    only_flat = formant_verdict(frame[frame["method"] == "layer_cam"], manifest, hz, FAST)
    assert only_flat.status == "not computed" and "the same in every bin" in only_flat.detail
