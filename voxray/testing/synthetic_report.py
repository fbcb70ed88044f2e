"""A small synthetic output folder holding every table the report reads.

It lets the report be previewed, and tested, without running the pipeline: the tables
follow ``voxray.schema`` and the value conventions of the stages that write them (see
voxray/pipeline/*), with made-up numbers. ``python -m voxray.testing.synthetic_report OUT``
writes one and renders OUT/report/index.html.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import yaml

from voxray import schema
from voxray.config import VoxrayConfig, replace
from voxray.io.run_state import mark_stage_done
from voxray.io.storage import Storage
from voxray.pipeline.verification_eval import curve_table
from voxray.report.names import MULTISPEAKER_LIST

SPEAKERS = (("id10001", "m"), ("id10002", "f"), ("id10003", "m"), ("id10004", "f"))
UTTS_PER_SPEAKER = 6
LISTS = ("veri_test2.txt", "list_test_hard2.txt")
EMBEDDING_DIM = 32
FRAMES = 120


#: metrics/ rows that are counts or training logs, not estimates: no interval.
UNESTIMATED = ("trials", "utterances", "train_", "flagged")


def _with_interval(row: tuple) -> schema.MetricRow:
    """A (model, condition, list, scorer, metric, value) tuple as a row whose estimate has a
    narrow interval (+-2% of the value, 40 trials), as a run on many speakers would give."""
    r = schema.MetricRow(*row)
    if r.metric.startswith(UNESTIMATED):
        return r
    half = 0.02 * abs(r.value)
    return replace(r, ci_low=r.value - half, ci_high=r.value + half, n=40)


def _metric_rows(rows: list[tuple | schema.MetricRow]) -> pa.Table:
    """metrics/ from ``MetricRow``s or (model, condition, list, scorer, metric, value) tuples
    (these with an interval)."""
    return schema.metrics_table(
        r if isinstance(r, schema.MetricRow) else _with_interval(r) for r in rows
    )


def _utterances() -> pd.DataFrame:
    rows = []
    for i, (spk, gender) in enumerate(SPEAKERS):
        for j in range(UTTS_PER_SPEAKER):
            utt = f"{spk}/vid{j % 2}/{j:05d}.wav"
            rows.append(
                {
                    "utt_id": utt,
                    "speaker_id": spk,
                    "video_id": f"vid{j % 2}",
                    "path": f"wav/{utt}",
                    "num_samples": 16000 * (3 + j),
                    "sample_rate": 16000,
                    "duration_s": 3.0 + j,
                    "split": "train" if i == 0 else "test",
                    "gender": gender,
                    "iden_split": 3,
                }
            )
    return pd.DataFrame(rows)


def verification_metrics(
    cfg: VoxrayConfig, base: str
) -> list[tuple[str, str, str, str, str, float]]:
    """EER/minDCF rows: the base model on clean and masked data, each retrained model on its
    masked data and on clean data, and the clustering scorers on clean data."""
    rows = []
    scorers = {
        "cosine": 0.031,
        "mean_dot": 0.036,
        "mean_cossim": 0.034,
        "ahc-average": 0.032,
        "ahc-single": 0.041,
        "ahc-weighted": 0.033,
        "ds-average": 0.052,
    }
    for k, lst in enumerate(LISTS):
        hard = 1.0 + 0.8 * k
        for scorer, eer in scorers.items():
            rows += [
                (base, "none", lst, scorer, "eer", eer * hard),
                (base, "none", lst, scorer, "mindcf_p0.01", 0.3 * hard),
                (base, "none", lst, scorer, "trials", 40.0),
            ]
        for c, cond in enumerate(cfg.mask.conditions):
            masked = cond.parts.masked
            retrained = f"{base}--{cond.method}-{c}"
            for model, condition, eer in (
                (base, masked, 0.09 + 0.01 * c),
                (retrained, masked, 0.042 + 0.001 * c),
                (retrained, "none", 0.05 + 0.002 * c),
            ):
                rows += [
                    (model, condition, lst, "cosine", "eer", eer * hard),
                    (
                        model,
                        condition,
                        lst,
                        "cosine",
                        "mindcf_p0.01",
                        min(1.0, 0.35 * hard + 0.01 * c),
                    ),
                    (model, condition, lst, "cosine", "trials", 40.0),
                ]
    return rows


def analysis_metrics(base: str) -> list[tuple | schema.MetricRow]:
    rows = [
        (base, "none", "train", "", "train_loss", 1.25),
        (base, "none", "train", "", "train_top1", 0.91),
        (base, "none", "train", "", "train_seconds", 62.5),
        (base, "none", "train", "", "train_epochs", 3.0),
        (base, "none", "iden", "cosine", "top1", 0.875),
    ]
    for scorer in ("top1", "verification"):
        for cond, dele, ins in (
            ("grad_cam_pp/cam", 0.31, 0.58),
            ("score_cam/cam", 0.33, 0.55),
            ("layer_cam/cam", 0.27, 0.63),
            ("saliency/classification", 0.36, 0.51),
            ("random", 0.40, 0.45),
            ("time_aligned", 0.52, 0.60),
        ):
            rows += [
                (base, cond, "faithfulness", scorer, "deletion_auc", dele),
                (base, cond, "faithfulness", scorer, "insertion_auc", ins),
            ]
    for cond, drop in (("lrp_epsilon", 0.55), ("saliency", 0.25), ("random", 0.08)):
        for f in (0.0, 0.001, 0.005, 0.01):
            rows.append(
                (
                    base,
                    cond,
                    "pixel_flipping",
                    "",
                    f"acc@{f:g}",
                    0.9 * (1 - drop * min(1.0, 100 * f)),
                )
            )
    rows += _multispeaker_metrics(base) + _sweep_metrics(base)
    for method, sp, ssim, flagged in (
        ("saliency", 0.12, 0.20, 0.0),
        ("integrated_gradients", 0.71, 0.80, 1.0),
        ("layer_cam", 0.05, 0.11, 0.0),
    ):
        rows += [
            (base, method, "sanity", "", "spearman_final", sp),
            (base, method, "sanity", "", "ssim_final", ssim),
            (base, method, "sanity", "", "flagged", flagged),
            (base, method, "sanity", "", "label_spearman", sp / 2),
        ]
    rows += _gender_metrics()
    return rows


def _multispeaker_metrics(base: str) -> list[tuple | schema.MetricRow]:
    """Li et al. 2022 Table 2's rows: per case, the original top-1 and per CAM and layers the
    masked top-1, precision and recall."""
    rows: list[tuple | schema.MetricRow] = []
    for case_i, case in enumerate(("A-B", "A-B-A", "B-A-B", "A-B-C")):
        lst = MULTISPEAKER_LIST
        rows.append(
            replace(
                _with_interval((base, "original", lst, "", "top1", 0.49 - 0.05 * case_i)), case=case
            )
        )
        for m_i, method in enumerate(("grad_cam_pp", "score_cam", "layer_cam")):
            for l_i, layers in enumerate(("block1", "block2", "block3", "block3+block2")):
                top1 = 0.4 + 0.05 * m_i + 0.02 * l_i - 0.03 * case_i
                rows += [
                    replace(_with_interval((base, f"{method}@{layers}", lst, "", m, v)), case=case)
                    for m, v in (
                        ("top1", top1),
                        ("precision", 0.6 + 0.1 * m_i),
                        ("recall", 0.7 - 0.05 * l_i),
                    )
                ]
    return rows + mixture_metrics(base)


def _sweep_metrics(base: str) -> list[tuple]:
    """Lehmann & Stadelmann 2020 Figs. 2-3 rows: EER per LSTM width and per segment length."""
    rows: list[tuple] = [
        (base, f"width={w}", "lstm_width", "cosine", "eer", eer)
        for w, eer in ((64, 0.30), (128, 0.22), (256, 0.23))
    ]
    for scorer, scale in (("mean_cossim", 1.0), ("mean_dot", 1.1)):
        rows += [
            (base, f"segment_s={s:g}", "segment_length", scorer, "eer", scale * eer)
            for s, eer in ((0.5, 0.35), (1.0, 0.25), (2.0, 0.18), (4.0, 0.12))
        ]
    return rows


def mixture_metrics(base: str) -> list[schema.MetricRow]:
    """Li et al. 2022 Fig. 4 rows: Top-1 of A on B-A-B mixtures as each CAM's bins (all
    layers) or random bins are deleted / revealed, point by point and as AUCs."""
    rows = []
    q = np.linspace(0.0, 1.0, 5)
    for cond, rate in (
        ("grad_cam_pp@block3+block2+block1", 2.0),
        ("layer_cam@block3+block2+block1", 6.0),
        ("random", 1.0),
    ):
        curves = {"deletion": 0.9 * np.exp(-rate * q), "insertion": 0.9 * (1 - np.exp(-rate * q))}
        for mode, y in curves.items():
            values = [(f"{mode}@{x:g}", v) for x, v in zip(q, y, strict=True)]
            values.append((f"{mode}_auc", float(np.sum((y[1:] + y[:-1]) * np.diff(q)) / 2)))
            rows += [
                replace(
                    _with_interval((base, cond, MULTISPEAKER_LIST, "top1", m, float(v))),
                    case="B-A-B",
                )
                for m, v in values
            ]
    return rows


def _gender_metrics() -> list[tuple | schema.MetricRow]:
    """The gender classifiers' flipping accuracies, LRP against random."""
    rows: list[tuple | schema.MetricRow] = []
    for model, acc0, acc5 in (
        ("alexnet-gender", 0.962, 0.21),
        ("alexnet-gender-augmented", 0.971, 0.44),
    ):
        rows += [
            (model, "lrp_epsilon", "gender", "", "acc@0", acc0),
            (model, "lrp_epsilon", "gender", "", "acc@0.005", acc5),
            (model, "random", "gender", "", "acc@0", acc0),
            (model, "random", "gender", "", "acc@0.005", acc0 - 0.02),
        ]
    return rows


def _curves(base: str, rng: np.random.Generator) -> pa.Table:
    tables: list[pa.Table] = []
    t = np.linspace(-3, 3, 60)
    for lst, shift in zip(LISTS, (0.0, 0.4), strict=True):
        tables.append(curve_table("det", base, lst, "none", 1 - _phi(t), _phi(t - 3.6 + shift)))
        tables.append(
            curve_table(
                "det",
                f"{base}--masked",
                lst,
                "masked:saliency/seen-classification/product",
                1 - _phi(t),
                _phi(t - 3.0 + shift),
            )
        )
    x = np.linspace(0, 1, 11)
    for method, k in (
        ("layer_cam/cam", 6.0),
        ("grad_cam_pp/cam", 4.0),
        ("random", 1.5),
        ("time_aligned", 0.8),
    ):
        tables.append(curve_table("deletion", base, method, "top1", x, np.exp(-k * x)))
        tables.append(curve_table("insertion", base, method, "top1", x, 1 - np.exp(-k * x)))
    fr = np.array([0.0, 0.001, 0.0025, 0.005, 0.01])
    for method, drop in (("lrp_epsilon", 55.0), ("random", 8.0)):
        flipped = 0.9 * np.clip(1 - drop * fr, 0, 1)
        tables.append(curve_table("pixel_flipping", base, method, "", fr, flipped))
    depth = np.arange(6)
    for method, floor in (("saliency", 0.1), ("integrated_gradients", 0.7)):
        for variant in ("spearman", "ssim"):
            noise = 0.01 * rng.standard_normal(len(depth))
            y = floor + (1 - floor) * np.exp(-depth) + noise
            tables.append(curve_table("sanity_cascading", base, method, variant, depth, y))
    return pa.concat_tables(tables)


def _phi(x: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return norm.cdf(x)


def write_synthetic_outputs(
    out: Storage, cfg: VoxrayConfig, base: str | None = None, seed: int = 0
) -> pd.DataFrame:
    """Write a complete synthetic output folder under ``out``; returns the metrics rows written."""
    rng = np.random.default_rng(seed)
    base = base or cfg.train.name
    manifest = _utterances()
    test = _write_inputs(out, manifest)
    metrics = verification_metrics(cfg, base) + analysis_metrics(base)
    table = _metric_rows(metrics)
    out.write_table(f"{schema.METRICS_PATH}/synthetic.parquet", table)
    out.write_table("curves/synthetic.parquet", _curves(base, rng))
    _write_embeddings(out, manifest, base, rng)
    _write_maps(out, cfg, base, test[:2], rng)
    _write_training(out, cfg, base, len(manifest))
    return table.to_pandas()


def _write_inputs(out: Storage, manifest: pd.DataFrame) -> list[str]:
    """The manifest, the trial lists over its test utterances and one quarantined file; the
    test utterances."""
    out.write_table(
        schema.MANIFEST_PATH,
        pa.Table.from_pandas(manifest, schema=schema.MANIFEST, preserve_index=False),
    )
    test = manifest[manifest["split"] == "test"]["utt_id"].tolist()
    trials = {"list": [], "label": [], "utt_a": [], "utt_b": []}
    for lst in LISTS:
        for a, b in zip(test[:-1], test[1:], strict=True):
            for k, v in zip(
                trials, (lst, int(a.split("/")[0] == b.split("/")[0]), a, b), strict=True
            ):
                trials[k].append(v)
    out.write_table(schema.TRIALS_PATH, schema.table(schema.TRIALS, trials))
    out.write_table(
        "quarantine.parquet/manifest-0.parquet",
        schema.table(
            schema.QUARANTINE,
            {
                "path": ["wav/id10009/x/00001.wav"],
                "stage": ["manifest"],
                "reason": ["wav/id10009/x/00001.wav: sample rate 8000 Hz, expected 16000"],
                "cause": ["input"],
            },
        ),
    )
    return test


def _write_embeddings(
    out: Storage, manifest: pd.DataFrame, base: str, rng: np.random.Generator
) -> None:
    """One embedding an utterance, near its speaker's centre."""
    centres = rng.standard_normal((len(SPEAKERS), EMBEDDING_DIM)) * 3
    emb = [
        centres[i // UTTS_PER_SPEAKER] + rng.standard_normal(EMBEDDING_DIM)
        for i in range(len(manifest))
    ]
    n = len(manifest)
    out.write_table(
        "embeddings/part-0.parquet",
        schema.table(
            schema.EMBEDDINGS,
            {
                "utt_id": manifest["utt_id"].tolist(),
                "segment": [-1] * n,
                "start_frame": [0] * n,
                "num_frames": [FRAMES] * n,
                "model": [base] * n,
                "condition": ["none"] * n,
                "embedding": schema.floats_column(emb),
            },
        ),
    )


def _map_columns(chosen: list[str], bins: int, mats: list[np.ndarray]) -> dict[str, object]:
    """The columns features/ and attributions/ share: a ``(FRAMES, bins)`` map an utterance."""
    n = len(chosen)
    return {
        "utt_id": chosen,
        "num_frames": [FRAMES] * n,
        "num_bins": [bins] * n,
        "values": schema.floats_column(mats),
    }


def _write_maps(
    out: Storage, cfg: VoxrayConfig, base: str, chosen: list[str], rng: np.random.Generator
) -> None:
    """Features of ``chosen`` and their saliency and Layer-CAM maps (a peak in frequency)."""
    bins = cfg.features.num_mel_bins
    feats = [rng.standard_normal((FRAMES, bins)).astype(np.float32) for _ in chosen]
    out.write_table(
        f"features/kind={cfg.model.feature_kind}/part-0.parquet",
        schema.table(schema.FEATURES, _map_columns(chosen, bins, feats)),
    )
    peak = {"saliency": 12, "layer_cam": 30}
    for method, pathway in (("saliency", "classification"), ("layer_cam", "cam")):
        maps = [
            np.exp(-0.5 * ((np.arange(bins) - peak[method]) / 6.0) ** 2)[None]
            * rng.random((FRAMES, 1))
            for _ in chosen
        ]
        columns = _map_columns(chosen, bins, maps)
        columns.update(
            model=[base] * 2,
            pathway=[pathway] * 2,
            params=[json.dumps({})] * 2,
            target=[0, 1],
            freq_profile=schema.floats_column([m.sum(axis=0) for m in maps]),
            completeness_error=[None, None],
        )
        out.write_table(
            f"attributions/method={method}/part-0.parquet",
            schema.table(schema.ATTRIBUTIONS, columns),
        )


def _write_training(out: Storage, cfg: VoxrayConfig, base: str, n: int) -> None:
    """The model's history, a tune result with its best condition, and the stage markers."""
    history = pa.Table.from_pylist(
        [{"epoch": e, "loss": 3.0 / e, "accuracy": 1 - 0.6 / e} for e in range(1, 4)]
    )
    out.write_table(f"models/{base}/history.parquet", history)
    tune_rows = [
        {
            "trial_id": f"trial_{i}",
            "config": json.dumps({"method": m, "tau": tau}),
            "metric": metric,
            "value": value,
            "status": "done",
        }
        for i, (m, tau, eer) in enumerate((("saliency", 0.1, 0.08), ("layer_cam", 0.2, 0.06)))
        for metric, value in (("eer", eer), ("epoch", 1.0))
    ]
    out.write_table("tune/results.parquet", pa.Table.from_pylist(tune_rows, schema=schema.TUNE))
    out.write_text(
        "tune/best.yaml",
        yaml.safe_dump({"mask": {"conditions": [{"method": "layer_cam", "threshold": 0.2}]}}),
    )
    for i, stage in enumerate(("manifest", "features", "train", "embed", "attribute", "evaluate")):
        mark_stage_done(
            out,
            stage,
            {
                "inputs": n,
                "outputs": n - (stage == "manifest"),
                "quarantined": int(stage == "manifest"),
                "skipped": 0,
                "seconds": 10.0 * (i + 1),
                "profile": cfg.profile,
            },
        )


def main(argv: list[str] | None = None) -> int:
    from voxray.pipeline.context import RunContext
    from voxray.pipeline.report_stage import INDEX, run_report

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m voxray.testing.synthetic_report OUT_DIR", file=sys.stderr)
        return 2
    cfg = replace(VoxrayConfig(), out=args[0], profile="synthetic")
    ctx = RunContext(cfg)
    write_synthetic_outputs(ctx.out, cfg)
    run_report(ctx)
    print(ctx.out.uri(INDEX))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
