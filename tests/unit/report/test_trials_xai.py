"""The report's trial explanations (loading, the time regions driving a score, the figure) and
its methods x metrics table (ranking, families, the seeds' tests beside it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from voxray import schema
from voxray.io.sink import write_partitioned
from voxray.io.storage import Storage
from voxray.report.html import PNG_SIGNATURE, Table, render_table
from voxray.report.sections.trials import (
    driving_regions,
    joint_caption,
    joint_table,
    regions_table,
    trial_figure,
)
from voxray.report.sections.xai import family_leaders, methods_table
from voxray.report.trial_views import load_trial_views


def test_driving_regions_are_the_frames_that_raise_the_score_most() -> None:
    m = np.zeros((40, 6))
    m[10:14] = 1.0  # the strongest region
    m[30:32] = 0.5
    m[20:25] = -2.0  # lowers the score: never a driving region
    regions = driving_regions(m, 0.01, share=0.15)
    assert regions == [(0.10, 0.14), (0.30, 0.32)]
    assert driving_regions(-np.ones((10, 3)), 0.01) == []


def _write_trial_outputs(s: Storage) -> None:
    rng = np.random.default_rng(0)
    utts = ["id1/v/1", "id1/v/2", "id2/v/1"]
    feats = {u: rng.standard_normal((20 + 5 * i, 8)).astype(np.float32) for i, u in enumerate(utts)}
    write_partitioned(
        s,
        "features",
        pa.table(
            {
                "utt_id": utts,
                "kind": ["fbank"] * 3,
                "num_frames": pa.array([feats[u].shape[0] for u in utts], pa.int32()),
                "num_bins": pa.array([8] * 3, pa.int32()),
                "values": schema.floats_column([feats[u] for u in utts]),
            }
        ),
        schema.FEATURES,
        ("utt_id", "kind"),
        "kind",
    )
    trials = {"list": ["l"] * 2, "label": [1, 0], "utt_a": utts[:2], "utt_b": [utts[1], utts[2]]}
    s.write_table("trials.parquet", schema.table(schema.TRIALS, trials))
    emb = {u: rng.standard_normal(4).astype(np.float32) for u in utts}
    n = len(utts)
    s.write_table(
        "embeddings/part-0.parquet",
        schema.table(
            schema.EMBEDDINGS,
            {
                "utt_id": utts,
                "segment": pa.array([-1] * n, pa.int32()),
                "start_frame": pa.array([0] * n, pa.int32()),
                "num_frames": pa.array([1] * n, pa.int32()),
                "model": ["m"] * n,
                "condition": ["none"] * n,
                "embedding": schema.floats_column([emb[u] for u in utts]),
            },
        ),
    )
    rows: dict[str, list] = {k: [] for k in ("utt_id", "list", "utt_a", "utt_b", "side", "method")}
    maps = []
    for a, b in zip(trials["utt_a"], trials["utt_b"], strict=True):
        for side, u in (("a", a), ("b", b)):
            for method in ("saliency", "integrated_gradients"):
                for k, v in zip(rows, (u, "l", a, b, side, method), strict=True):
                    rows[k].append(v)
                maps.append(rng.standard_normal(feats[u].shape).astype(np.float32))
    n = len(maps)
    columns = {k: v for k, v in rows.items() if k != "method"}
    _write_maps(
        s,
        maps,
        {**columns, "completeness_error": pa.array([None] * n, pa.float64())},
        rows["method"],
    )


def _write_maps(s: Storage, maps: list[np.ndarray], columns: dict, methods: list[str]) -> None:
    """Trial rows of model ``m`` with ``maps`` and ``columns`` into attributions/."""
    n = len(maps)
    t = schema.table(
        schema.ATTRIBUTIONS,
        {
            **columns,
            "model": ["m"] * n,
            "pathway": ["trial"] * n,
            "params": ["{}"] * n,
            "target": pa.array([-1] * n, pa.int32()),
            "num_frames": pa.array([x.shape[0] for x in maps], pa.int32()),
            "num_bins": pa.array([8] * n, pa.int32()),
            "values": schema.floats_column(maps),
            "freq_profile": schema.floats_column([np.abs(x).mean(0) for x in maps]),
        },
    )
    t = t.append_column("method", pa.array(methods, pa.string()))  # the partition
    keys = ("utt_id", "list", "utt_a", "utt_b", "side")
    write_partitioned(s, "attributions", t, schema.ATTRIBUTIONS, keys, "method")


def test_trial_views_load_both_sides_and_render(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    _write_trial_outputs(s)
    views = load_trial_views(s, "m", "fbank", 10)
    assert [(v.utt_a, v.utt_b, v.kind) for v in views] == [
        ("id1/v/2", "id2/v/1", "false accept"),
        ("id1/v/1", "id1/v/2", "false reject"),
    ]
    for v in views:
        assert set(v.maps) == {"a", "b"}
        assert set(v.maps["a"]) == {"saliency", "integrated_gradients"}
        assert v.maps["a"]["saliency"].shape == v.features["a"].shape
        assert np.isfinite(v.score)
        assert trial_figure(v, None, 0.01).startswith(PNG_SIGNATURE)
    table = regions_table(views, 0.01)
    assert len(table) == 2 * 2 * 2 and set(table["Error"]) == {"false accept", "false reject"}


def _write_joint_rows(s: Storage, a: str, b: str, shapes: tuple[tuple[int, int], ...]) -> None:
    """IG's joint decomposition of trial (a, b): maps summing to 0.3 (a) and 0.1 (b) of
    s(x) - s(x') = 0.9 - 0.4, so shares 0.6 and 0.2 and a completeness error of 0.2."""
    maps = [
        np.full(shape, total / np.prod(shape), np.float32)
        for shape, total in zip(shapes, (0.3, 0.1), strict=True)
    ]
    n = 2
    columns = {
        "utt_id": [a, b],
        "completeness_error": [0.2] * n,
        "list": ["l"] * n,
        "utt_a": [a] * n,
        "utt_b": [b] * n,
        "side": list(schema.JOINT_SIDES),
        "score": [0.9] * n,
        "baseline_score": [0.4] * n,
        "joint_baseline": ["cohort_mean"] * n,
        "baseline_utt_a": ["id3/v/1"] * n,
        "baseline_utt_b": ["id4/v/1"] * n,
    }
    _write_maps(s, maps, columns, ["integrated_gradients"] * n)


def test_the_joint_decomposition_shows_both_scores_the_shares_and_names_the_baseline(
    tmp_path: Path,
) -> None:
    s = Storage(str(tmp_path))
    _write_trial_outputs(s)
    _write_joint_rows(s, "id1/v/1", "id1/v/2", ((20, 8), (25, 8)))
    views = load_trial_views(s, "m", "fbank", 10)
    joint = next(v for v in views if v.utt_a == "id1/v/1").joint
    assert set(joint) == {"integrated_gradients"}
    assert not next(v for v in views if v.utt_a == "id1/v/2").joint
    assert all(set(v.maps) == {"a", "b"} for v in views)  # joint maps are not one-sided maps
    table = joint_table(views)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["s(x)"], row["s(x')"]) == pytest.approx((0.9, 0.4))
    assert (row["Share a"], row["Share b"]) == pytest.approx((0.6, 0.2), rel=1e-5)
    assert row["Completeness error"] == pytest.approx(0.2)
    assert row["Baseline"] == "cohort_mean: id3/v/1 / id4/v/1"
    caption = joint_caption(views)
    assert "cohort_mean, a typical impostor trial" in caption and "s(x) - s(x')" in caption
    html = render_table(Table(table, caption))
    assert "Share a" in html and "cohort_mean: id3/v/1 / id4/v/1" in html and "0.6" in html


def test_trial_views_without_joint_rows_have_no_joint_table(tmp_path: Path) -> None:
    s = Storage(str(tmp_path))
    _write_trial_outputs(s)
    views = load_trial_views(s, "m", "fbank", 10)
    assert views and not any(v.joint for v in views) and joint_table(views).empty


def _metrics() -> pd.DataFrame:
    rows = []
    values = {  # method -> (FaithfulnessCorrelation, MaxSensitivity, MPRT)
        "integrated_gradients/classification": (0.6, 0.1, 0.2),
        "saliency/classification": (0.1, 0.5, 0.3),
        "layer_cam/cam": (0.4, 0.2, 0.9),
    }
    families = ("faithfulness", "robustness", "randomisation")
    names = ("FaithfulnessCorrelation", "MaxSensitivity", "MPRT")
    for method, vals in values.items():
        for fam, name, v in zip(families, names, vals, strict=True):
            rows.append(("m", "none", "xai_sample", "", name, v, fam, method))
    rows.append(
        (
            "m",
            "integrated_gradients/classification",
            "faithfulness",
            "top1",
            "deletion_auc",
            0.3,
            None,
            None,
        )
    )
    rows.append(("m", "saliency", "sanity", "", "spearman_final", 0.8, None, None))
    return schema.metrics_table(schema.MetricRow(*r) for r in rows).to_pandas()


def test_methods_table_ranks_and_shows_the_seeds_tests() -> None:
    t = methods_table(_metrics(), "m")
    assert list(t["Method"]) == [
        "Integrated Gradients (classification)",
        "Layer-CAM",
        "Saliency (classification)",
    ]
    assert list(t["Mean rank"]) == [1.0, pytest.approx(2 + 1 / 3), pytest.approx(2 + 2 / 3)]
    assert "faithfulness: FaithfulnessCorrelation" in t.columns
    assert t["Deletion AUC"].iloc[0] == 0.3
    assert t["Sanity Spearman"].iloc[2] == 0.8
    leaders = family_leaders(_metrics(), "m")
    assert list(leaders["Family"]) == ["faithfulness", "robustness", "randomisation"]
    assert list(leaders["First"]) == ["Integrated Gradients (classification)"] * 3
    assert methods_table(_metrics(), "other").empty
