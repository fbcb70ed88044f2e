"""Display tables from hand-made metrics rows: values, units (fractions -> %), order, gaps."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from voxray.report.metrics import EER
from voxray.report.names import condition_name, order_lists, parse_masked, scorer_name
from voxray.report.sections.clustering import clustering_table
from voxray.report.sections.faithfulness import faithfulness_table
from voxray.report.sections.flipping import gender_table, pixel_flipping_table
from voxray.report.sections.identification import identification_table
from voxray.report.sections.multispeaker import multispeaker_table
from voxray.report.sections.quarantine import quarantine_first, quarantine_summary
from voxray.report.sections.reliability import CONTROL, leak_table, reliability_table, seeds_note
from voxray.report.sections.sanity import sanity_table
from voxray.report.sections.stages import split_table, stage_table
from voxray.report.sections.training import training_table
from voxray.report.sections.tune import sweep_plot, sweep_points, tune_table
from voxray.report.sections.verification import EER_CI, verification_table
from voxray.schema import MetricRow

IG = "masked:integrated_gradients/traversal/product"
IG_MASK = "masked:integrated_gradients/traversal/threshold:signed@0.1"
SHAP = "masked:gradient_shap/traversal/product"
IG_SHUFFLED = "masked:integrated_gradients/traversal/product/shuffled"


def _table2_rows() -> list[tuple]:
    rows = [
        ("ecapa", "none", "vox1-o", "cosine", "eer", 0.0348),
        ("ecapa", "none", "vox1-o", "cosine", "mindcf_p0.01", 0.31),
        ("ecapa", "none", "vox1-o", "cosine", "mindcf_p0.05", 0.2),
    ]
    for i, cond in enumerate((IG, IG_MASK, SHAP)):
        retrained = f"ecapa--r{i}"
        rows += [
            (retrained, cond, "vox1-o", "cosine", "eer", 0.04 + i / 100),
            (retrained, cond, "vox1-o", "cosine", "mindcf_p0.01", 0.4 + i / 100),
            (retrained, "none", "vox1-o", "cosine", "eer", 0.05 + i / 100),
            (retrained, "none", "vox1-o", "cosine", "mindcf_p0.01", 0.5 + i / 100),
            ("ecapa", cond, "vox1-o", "cosine", "eer", 0.1 + i / 100),
            ("ecapa", cond, "vox1-o", "cosine", "mindcf_p0.01", 0.6 + i / 100),
            # another list and scorer must not leak into the table
            (retrained, cond, "vox1-h", "cosine", "eer", 0.9),
            ("ecapa", cond, "vox1-o", "mean_cossim", "eer", 0.8),
        ]
    return rows


def test_reliability_table_reproduces_table2_of_000(make_metrics) -> None:
    t = reliability_table(
        make_metrics(_table2_rows()), "ecapa", "vox1-o", condition_order=[IG, IG_MASK, SHAP]
    )
    assert list(t.index) == [
        "None (clean)",
        "Integrated Gradients",
        "Integrated Gradients + mask(0.1, signed)",
        "GradientShap",
    ]
    eer = EER
    dcf = "minDCF (p=0.01)"
    assert t[("Retrained, masked test", eer)].tolist() == pytest.approx([3.48, 4.0, 5.0, 6.0])
    assert t[("Retrained, masked test", dcf)].tolist() == pytest.approx([0.31, 0.40, 0.41, 0.42])
    assert t[("Retrained, clean test", eer)].tolist() == pytest.approx([3.48, 5.0, 6.0, 7.0])
    assert t[("Base, masked test", eer)].tolist() == pytest.approx([3.48, 10.0, 11.0, 12.0])
    assert t[("Base, masked test", dcf)].tolist() == pytest.approx([0.31, 0.6, 0.61, 0.62])
    assert t[("Zhang et al. 2023 (VoxCeleb1)", eer)].tolist() == [3.48, 4.21, 4.29, 4.55]
    assert t[CONTROL].isna().all().all()  # no control conditions in these metrics


def test_reliability_table_shows_the_shuffled_control_beside_its_condition(make_metrics) -> None:
    rows = _table2_rows() + [
        ("ecapa--ctl", IG_SHUFFLED, "vox1-o", "cosine", "eer", 0.45),
        ("ecapa--ctl", "none", "vox1-o", "cosine", "eer", 0.3),
        ("ecapa", IG_SHUFFLED, "vox1-o", "cosine", "eer", 0.48),
    ]
    t = reliability_table(make_metrics(rows), "ecapa", "vox1-o")
    assert "Integrated Gradients, shuffled maps" not in t.index  # beside IG, not a row
    control = t.loc["Integrated Gradients", CONTROL]
    assert control.tolist() == pytest.approx([48.0, 45.0])
    assert np.isnan(t.loc["GradientShap", (CONTROL, f"Base, masked test {EER}")])
    assert t.loc["Integrated Gradients", ("Zhang et al. 2023 (VoxCeleb1)", EER)] == 4.21
    alone = reliability_table(make_metrics(_table2_rows()[:3] + rows[-3:]), "ecapa", "vox1-o")
    assert list(alone.index) == ["None (clean)", "Integrated Gradients, shuffled maps"]
    assert np.isnan(
        alone.loc["Integrated Gradients, shuffled maps", ("Zhang et al. 2023 (VoxCeleb1)", EER)]
    )


def test_reliability_table_without_masked_conditions_keeps_the_clean_row(make_metrics) -> None:
    t = reliability_table(make_metrics(_table2_rows()[:3]), "ecapa", "vox1-o")
    assert list(t.index) == ["None (clean)"]
    assert reliability_table(None, "ecapa", "vox1-o").empty


def test_reliability_table_shows_each_seed_and_their_mean_per_variant(make_metrics) -> None:
    """retrain.seeds 3 and both variants: one row per variant, named; its retrained columns the
    seeds' mean, the Seeds columns their count and each seed's masked-test EER."""
    rows = _table2_rows()[:3] + [("ecapa", IG, "vox1-o", "cosine", "eer", 0.2)]
    for variant, eers in (("", (0.04, 0.05, 0.06)), ("--continue", (0.10, 0.20, 0.30))):
        for k, eer in enumerate(eers):
            model = f"ecapa--ig{variant}" + (f"--seed{k}" if k else "")
            rows += [(model, IG, "vox1-o", "cosine", "eer", eer)]
            rows += [(model, "none", "vox1-o", "cosine", "eer", eer / 2)]
    t = reliability_table(make_metrics(rows), "ecapa", "vox1-o")
    scratch, cont = "Integrated Gradients [scratch]", "Integrated Gradients [continue]"
    assert list(t.index) == ["None (clean)", scratch, cont]
    masked = t[("Retrained, masked test", EER)]
    assert masked[[scratch, cont]].tolist() == pytest.approx([5.0, 20.0])
    assert t.loc[cont, ("Retrained, clean test", EER)] == pytest.approx(10.0)
    assert t.loc[scratch, ("Base, masked test", EER)] == pytest.approx(20.0)
    assert t.loc[scratch, ("Seeds", "n")] == "3"
    assert t.loc[cont, ("Seeds", f"Retrained, masked test {EER}, each")] == "10.00, 20.00, 30.00"


def test_seed_figure_only_for_the_seed_conditions(make_metrics) -> None:
    other = "masked:saliency/traversal/threshold:signed@0.2"
    variant = "masked:integrated_gradients/seen-classification/product"
    rows = _table2_rows()[:3] + [
        ("ecapa--x", other, "vox1-o", "cosine", "eer", 0.05),
        ("ecapa--y", variant, "vox1-o", "cosine", "eer", 0.05),
    ]
    t = reliability_table(make_metrics(rows), "ecapa", "vox1-o")
    seed = t[("Zhang et al. 2023 (VoxCeleb1)", EER)]
    # the seed's figure is of its method and rule, under either design; Saliency has none
    assert math.isnan(seed["Saliency + mask(0.2, signed)"])
    assert seed["Integrated Gradients (seen-classification)"] == 4.21


def test_clustering_table_is_003s_layout(make_metrics) -> None:
    rows = []
    for lst, k in (("list_test_hard2.txt", 2.0), ("veri_test2.txt", 1.0)):
        for scorer, eer in (
            ("ds-weighted", 0.067),
            ("ahc-average", 0.0554),
            ("mean_cossim", 0.0584),
            ("mean_dot", 0.0599),
            ("ahc-complete", 0.066),
            ("cosine", 0.05),
        ):
            rows.append(("ecapa", "none", lst, scorer, "eer", eer * k))
    rows.append(
        ("ecapa", IG, "veri_test2.txt", "ahc-average", "eer", 0.5)
    )  # masked: not in Lehmann & Stadelmann 2020's table
    t = clustering_table(make_metrics(rows), "ecapa", ("veri_test2.txt", "list_test_hard2.txt"))
    assert list(t.index) == [
        "Cosine",
        "Mean-DotProduct",
        "Mean-CosSim",
        "AHC-Average",
        "AHC-Complete",
        "DS-WeightedAvg",
    ]
    assert list(t.columns) == ["veri_test2.txt EER (%)", "list_test_hard2.txt EER (%)"]
    assert t.loc["AHC-Average"].tolist() == pytest.approx([5.54, 11.08])
    assert t.loc["Mean-CosSim"].tolist() == pytest.approx([5.84, 11.68])


def test_verification_table_orders_base_clean_first_and_converts_units(make_metrics) -> None:
    rows = [
        ("zeta", "none", "a", "cosine", "eer", 0.2),
        ("ecapa", IG, "a", "cosine", "eer", 0.1),
        ("ecapa", "none", "a", "ahc-single", "eer", 0.07),
        ("ecapa", "none", "a", "cosine", "eer", 0.05),
        ("ecapa", "none", "a", "cosine", "mindcf_p0.05", 0.25),
        ("ecapa", "none", "a", "cosine", "trials", 40.0),
        ("ecapa", "none", "faithfulness", "top1", "deletion_auc", 0.3),
        ("ecapa", "none", "train", "", "train_loss", 1.0),
    ]
    t = verification_table(make_metrics(rows), "ecapa")
    assert list(t.index) == ["ecapa", "ecapa", "ecapa", "zeta"]
    assert t["Scorer"].tolist() == ["Cosine", "AHC-Single", "Cosine", "Cosine"]
    assert t["Condition"].tolist()[2] == "Integrated Gradients"
    assert t[EER].tolist() == pytest.approx([5.0, 7.0, 10.0, 20.0])
    assert t["minDCF (p=0.05)"].iloc[0] == pytest.approx(0.25) and math.isnan(
        t["minDCF (p=0.05)"].iloc[1]
    )
    assert t["Trials"].iloc[0] == 40
    assert (t[EER_CI] == "").all()  # tuples carry no interval: the cell stays empty


def test_verification_table_shows_the_eer_interval(make_metrics) -> None:
    rows = [
        MetricRow("ecapa", "none", "a", "cosine", "eer", 0.05, ci_low=0.041, ci_high=0.062, n=900),
        MetricRow("ecapa", IG, "a", "cosine", "eer", 0.1, ci_low=0.08, ci_high=0.13, n=900),
    ]
    t = verification_table(make_metrics(rows), "ecapa")
    assert t[EER_CI].tolist() == ["[4.1, 6.2]", "[8, 13]"]


def test_leak_table_and_seeds_note(make_metrics) -> None:
    cond = "integrated_gradients/seen-classification/product"
    rows = [
        MetricRow(
            "e",
            f"masked:{cond}",
            "leak",
            cond,
            "class_recovery",
            1.0,
            ci_low=1.0,
            ci_high=1.0,
            n=40,
        ),
        MetricRow(
            "e", "none", "leak", cond, "class_recovery", 0.22, ci_low=0.1, ci_high=0.35, n=40
        ),
    ]
    assert math.isnan(leak_table(make_metrics(rows)).iloc[0]["Chance (%)"])  # older outputs
    rows.append(MetricRow("e", "none", "leak", cond, "class_chance", 0.125, n=8))
    t = leak_table(make_metrics(rows))
    assert len(t) == 1
    row = t.iloc[0]
    assert (row["Masked inputs (%)"], row["Raw inputs (%)"], row["Utterances"]) == (100.0, 22.0, 40)
    assert row["Raw 95% CI (%)"] == "[10, 35]" and row["Chance (%)"] == 12.5
    assert leak_table(None).empty
    assert "not measured" in seeds_note({"retrain": {"seeds": 1, "variants": ["scratch"]}})
    assert seeds_note({"retrain": {"seeds": 3, "variants": ["scratch", "continue"]}}) == (
        "Retrainings: 3 seed(s) per condition; variants: scratch, continue."
    )
    assert seeds_note({}) == ""


def test_faithfulness_table_puts_references_last(make_metrics) -> None:
    rows = [
        ("m", c, "faithfulness", s, metric, v)
        for s in ("top1",)
        for c, v in (
            ("random", 0.4),
            ("layer_cam/cam", 0.2),
            ("time_aligned", 0.5),
            ("saliency/traversal", 0.3),
        )
        for metric in ("deletion_auc", "insertion_auc")
    ]
    t = faithfulness_table(make_metrics(rows))
    assert list(t.index) == [
        "Layer-CAM",
        "Saliency (traversal)",
        "Random (reference)",
        "Time-aligned (reference)",
    ]
    assert t[("scorer: top1", "Deletion AUC")].tolist() == pytest.approx([0.2, 0.3, 0.4, 0.5])


def test_multispeaker_table_is_001s_layout(make_metrics) -> None:
    rows = [
        MetricRow("m", "original", "multispeaker", "", "top1", 0.4915, case="A-B"),
        MetricRow("m", "original", "multispeaker", "", "top1", 0.1535, case="B-A-B"),
    ]
    rows += [
        MetricRow("m", f"{meth}@{spec}", "multispeaker", "", "top1", v, case=case)
        for case in ("A-B", "B-A-B")
        for meth, v in (("layer_cam", 0.7155), ("grad_cam_pp", 0.477))
        for spec in ("S4+S3", "S1")
    ]
    rows.append(MetricRow("m", "layer_cam@S1", "multispeaker", "", "recall", 0.9, case="A-B"))
    t = multispeaker_table(make_metrics(rows), cases=("B-A-B", "A-B"))
    assert list(t.index) == ["Original", "S1", "S4+S3"]
    assert list(t.columns) == [
        ("B-A-B", "G-CAM"),
        ("B-A-B", "L-CAM"),
        ("A-B", "G-CAM"),
        ("A-B", "L-CAM"),
    ]
    assert t.loc["Original"].tolist() == pytest.approx([15.35, 15.35, 49.15, 49.15])
    assert t.loc["S1", ("A-B", "L-CAM")] == pytest.approx(71.55)
    recall = multispeaker_table(make_metrics(rows), metric="recall")
    assert recall.loc["S1", ("A-B", "L-CAM")] == pytest.approx(90.0)


def test_sanity_table_flags(make_metrics) -> None:
    rows = [
        ("m", "saliency", "sanity", "", "spearman_final", 0.1),
        ("m", "saliency", "sanity", "", "flagged", 0.0),
        ("m", "integrated_gradients", "sanity", "", "spearman_final", 0.8),
        ("m", "integrated_gradients", "sanity", "", "ssim_final", 0.9),
        ("m", "integrated_gradients", "sanity", "", "flagged", 1.0),
    ]
    t = sanity_table(make_metrics(rows))
    assert t["Flagged"].to_dict() == {"Integrated Gradients": True, "Saliency": False}
    assert t.loc["Integrated Gradients", "SSIM, all layers randomised"] == pytest.approx(0.9)
    assert math.isnan(t.loc["Saliency", "SSIM, all layers randomised"])


def test_gender_table_is_002s_table1_with_seed_figures(make_metrics) -> None:
    rows = [
        ("alexnet-gender", "lrp_epsilon", "gender", "", "acc@0", 0.95),
        ("alexnet-gender", "lrp_epsilon", "gender", "", "acc@0.005", 0.2),
        ("alexnet-gender", "random", "gender", "", "acc@0", 0.95),
        ("alexnet-gender", "random", "gender", "", "acc@0.005", 0.9),
    ]
    t = gender_table(make_metrics(rows))
    assert list(t.index) == [
        ("alexnet-gender", "LRP-\u03b5"),
        ("alexnet-gender", "Random (reference)"),
    ]
    row = t.loc[("alexnet-gender", "LRP-\u03b5")]
    assert row.tolist() == pytest.approx([95.0, 20.0, 97.8, 12.3])
    assert t.columns[1] == ("This run", "Acc. (%) at 0.5%")
    assert np.isnan(t.loc[("alexnet-gender", "Random (reference)")].iloc[2])


def test_pixel_flipping_table_orders_fractions(make_metrics) -> None:
    rows = [
        ("m", c, "pixel_flipping", "", f"acc@{f:g}", v)
        for c in ("random", "lrp_0")
        for f, v in ((0.01, 0.5), (0.0, 0.9), (0.001, 0.8))
    ]
    t = pixel_flipping_table(make_metrics(rows))
    assert list(t.columns) == ["Acc. (%) at 0%", "Acc. (%) at 0.1%", "Acc. (%) at 1%"]
    assert list(t.index) == [("m", "LRP-0"), ("m", "Random (reference)")]
    assert t.iloc[0].tolist() == pytest.approx([90.0, 80.0, 50.0])


def test_identification_and_training_tables(make_metrics) -> None:
    rows = [
        ("ecapa", "none", "iden", "cosine", "top1", 0.8125),
        MetricRow("ecapa", "x@S1", "multispeaker", "", "top1", 0.3, case="A-B"),
        ("ecapa", "none", "train", "", "train_top1", 0.5),
        ("ecapa", "none", "train", "", "train_epochs", 4.0),
    ]
    ident = identification_table(make_metrics(rows))
    assert ident["Top-1 (%)"].tolist() == pytest.approx([81.25])
    train = training_table(make_metrics(rows))
    assert (
        train.loc["ecapa", "Train Top-1 (%)"] == pytest.approx(50.0)
        and train.loc["ecapa", "Epochs"] == 4
    )
    assert math.isnan(train.loc["ecapa", "Final loss"])
    assert train.loc["ecapa", "Kept epoch"] == 4  # no early stopping: the last epoch
    stopped = training_table(
        make_metrics([*rows, ("ecapa", "none", "train", "", "train_best_epoch", 2.0)])
    )
    assert stopped.loc["ecapa", "Kept epoch"] == 2


def test_tune_table_sorts_by_objective_and_expands_config() -> None:
    rows = []
    for i, eer in enumerate((0.3, 0.1, 0.2)):
        cfg = json.dumps({"method": f"m{i}", "tau": 0.1 * (i + 1)})
        rows += [
            {"trial_id": f"t{i}", "config": cfg, "metric": "eer", "value": eer, "status": "done"},
            {"trial_id": f"t{i}", "config": cfg, "metric": "epoch", "value": 2.0, "status": "done"},
        ]
    t = tune_table(pd.DataFrame(rows), top=2)
    assert list(t.index) == ["t1", "t2"]
    assert t[EER].tolist() == pytest.approx([10.0, 20.0])
    assert t["method"].tolist() == ["m1", "m2"] and t["Epochs"].tolist() == [2.0, 2.0]
    # a failed trial is listed after the best ones, whatever top is, with its error
    cfg = json.dumps({"method": "m3", "tau": 0.4})
    error = {"trial_id": "t3", "config": cfg, "metric": "error", "value": float("nan")}
    rows.append(error | {"status": "error: RayTaskError(InjectedFault)"})
    t = tune_table(pd.DataFrame(rows), top=2)
    assert list(t.index) == ["t1", "t2", "t3"]
    assert t.loc["t3", "Status"] == "error: RayTaskError(InjectedFault)"


def test_stage_table_orders_by_finish_time() -> None:
    stages = {
        "train": {"finished_at": "2025-01-02T00:00:00", "inputs": 5, "outputs": 5, "seconds": 12.5},
        "manifest": {
            "finished_at": "2025-01-01T00:00:00",
            "inputs": 6,
            "outputs": 5,
            "quarantined": 1,
        },
    }
    t = stage_table(stages)
    assert list(t.index) == ["manifest", "train"]
    assert t.loc["manifest", "Quarantined"] == 1 and math.isnan(t.loc["manifest", "Seconds"])


def test_split_table_shows_each_pools_parts_in_percent_idle_last() -> None:
    stages = {
        "embed": {"time_split": {"forward": 0.6, "decode": 0.1, "idle": 0.3}},
        "features": {"time_split": {"front-end": 0.5, "idle": 0.5}},
        "manifest": {"seconds": 2.0},  # no pool: no row
    }
    t = split_table(stages)
    assert list(t.index) == ["embed", "features"]
    assert list(t.columns) == ["decode", "forward", "front-end", "idle"]
    assert t.loc["embed", "forward"] == pytest.approx(60.0)
    assert t.loc["features", "forward"] == 0.0  # a part the stage does not have
    assert split_table({"manifest": {}}).empty


def test_quarantine_summary_groups_reasons_without_paths() -> None:
    q = pd.DataFrame(
        {
            "path": ["a.wav", "b.wav", "c.wav"],
            "stage": ["manifest"] * 3,
            "reason": ["a.wav: empty file", "b.wav: empty file", "wrong rate"],
        }
    )
    t = quarantine_summary(q)
    assert t.reset_index().values.tolist() == [
        ["manifest", "<path>: empty file", 2],
        ["manifest", "wrong rate", 1],
    ]
    assert quarantine_first(q, n=2)["Path"].tolist() == ["a.wav", "b.wav"]


@pytest.mark.parametrize(
    "call",
    [
        lambda: verification_table(None, "m"),
        lambda: clustering_table(None, "m"),
        lambda: faithfulness_table(None),
        lambda: multispeaker_table(None),
        lambda: sanity_table(None),
        lambda: gender_table(None),
        lambda: pixel_flipping_table(None),
        lambda: tune_table(None),
        lambda: stage_table({}),
        lambda: quarantine_summary(None),
    ],
    ids=[
        "verification",
        "clustering",
        "faithfulness",
        "multispeaker",
        "sanity",
        "gender",
        "flipping",
        "tune",
        "stages",
        "quarantine",
    ],
)
def test_absent_inputs_give_empty_tables(call) -> None:
    assert call().empty


@pytest.mark.parametrize(
    "raw, shown",
    [
        (IG_MASK, "Integrated Gradients + mask(0.1, signed)"),
        (
            "masked:saliency/traversal/threshold:magnitude@0.2/shuffled",
            "Saliency + mask(0.2, magnitude), shuffled maps",
        ),
        ("none", "None (clean)"),
        (
            "masked:lrp_epsilon/classification/moore@0.005",
            "LRP-\u03b5, Moore augmentation (top 0.5%) (classification)",
        ),
        ("masked:saliency/seen-classification/product", "Saliency (seen-classification)"),
        ("other", "other"),
    ],
    ids=["threshold", "control", "clean", "moore", "seen-classification", "unknown"],
)
def test_condition_names(raw: str, shown: str) -> None:
    assert condition_name(raw) == shown


def test_name_helpers() -> None:
    assert parse_masked("masked:a/b/threshold@x") is None and parse_masked("masked:a/b") is None
    assert parse_masked("masked:a/b/product/other") is None
    assert (
        scorer_name("ahc-weighted") == "AHC-WeightedAvg"
        and scorer_name("ds-average") == "DS-Average"
    )
    assert order_lists(
        ["z", "list_test_all2", "veri_test2.txt"], ("veri_test2.txt", "list_test_all2.txt")
    ) == ["veri_test2.txt", "list_test_all2", "z"]


def test_sweep_points_and_plot_read_the_kept_fraction_of_each_trial() -> None:
    rows = []
    for i, (method, kept, eer, rnd) in enumerate(
        (("saliency", 0.2, 0.1, 0.3), ("integrated_gradients", 0.05, 0.2, 0.45))
    ):
        cfg = json.dumps({"method": method, "tau": 0.1})
        for metric, value in (
            ("eer_gap", eer - rnd),
            ("eer", eer),
            ("eer_random", rnd),
            ("kept_fraction", kept),
            ("epoch", 1.0),
        ):
            rows.append(
                {
                    "trial_id": f"t{i}",
                    "config": cfg,
                    "metric": metric,
                    "value": value,
                    "status": "done",
                }
            )
    results = pd.DataFrame(rows)
    points = sweep_points(results).set_index("trial_id")
    assert points.loc["t0", ["kept_fraction", "eer", "eer_random"]].tolist() == [0.2, 0.1, 0.3]
    assert points.loc["t1", "method"] == "integrated_gradients"
    assert sweep_plot(points.reset_index())[:8] == b"\x89PNG\r\n\x1a\n"
    assert tune_table(results).index[0] == "t1"  # the larger gap below random first
    old = results[~results["metric"].isin(["kept_fraction", "eer_random"])]
    assert sweep_points(old).empty
