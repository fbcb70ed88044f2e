"""Check an output folder against the output contract (README "Outputs"): required columns,
list-column sizes, no duplicated keys, every reported EER recomputed independently from
scores/ with scikit-learn's ROC, and the optional audio/ files (named as the contract names
them, decodable, each map's kept and removed parts beside its original, of the same length,
and of a map attributions/ holds). ``voxray check OUT`` runs it for a user; the end-to-end tests
run it on every output folder they make, and ``sklearn_eer`` is the tests' reference EER."""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
import pandas as pd
import soundfile as sf

from voxray import schema
from voxray.config import S3Config
from voxray.io.storage import Storage

REQUIRED = {
    schema.MANIFEST_PATH: [
        "utt_id",
        "speaker_id",
        "video_id",
        "path",
        "num_samples",
        "sample_rate",
        "duration_s",
        "split",
        "gender",
    ],
    "quarantine.parquet": ["path", "stage", "reason"],
    "features": ["utt_id", "kind", "num_frames", "num_bins", "values"],
    "embeddings": ["utt_id", "segment", "model", "condition", "embedding"],
    "attributions": [
        "utt_id",
        "model",
        "method",
        "pathway",
        "params",
        "num_frames",
        "num_bins",
        "values",
        "freq_profile",
        "completeness_error",
    ],
    "masked": ["utt_id", "kind", "method", "threshold", "num_frames", "num_bins", "values"],
    "scores": ["list", "label", "utt_a", "utt_b", "model", "condition", "scorer", "score"],
    "metrics": ["model", "condition", "list", "scorer", "metric", "value"],
}
KEYS = {
    schema.MANIFEST_PATH: ["utt_id"],
    "features": ["utt_id", "kind"],
    "embeddings": ["utt_id", "segment", "model", "condition"],
    # trial rows: one per trial and side explained
    "attributions": ["utt_id", "method", "pathway", "list", "utt_a", "utt_b", "side"],
    "masked": ["utt_id", "condition"],
    "scores": ["list", "utt_a", "utt_b", "model", "condition", "scorer"],
    # XAI metrics name their method and family, one row per utterance scored (the
    # meta-evaluation's speaker intervals); multi-speaker rows their case
    "metrics": [
        "model",
        "condition",
        "list",
        "scorer",
        "metric",
        "method",
        "family",
        "case",
        "utt_id",
    ],
}


def row_keys(rel: str, columns: Iterable[str]) -> list[str]:
    """The columns that identify one row of table ``rel`` (optional ones only where present)."""
    have = set(columns)
    return [k for k in KEYS.get(rel, ()) if k in have]


def sklearn_eer(scores: np.ndarray, labels: np.ndarray) -> float:
    """EER from scikit-learn's ROC: where the miss and false-alarm rates cross, linearly
    interpolated between the two operating points around the crossing."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1 - tpr
    d = fnr - fpr
    k = int(np.argmax(d <= 0))
    if k == 0:
        return float(fpr[0])
    t = d[k - 1] / (d[k - 1] - d[k])
    return float(fnr[k - 1] + t * (fnr[k] - fnr[k - 1]))


def check(out: str, s3: S3Config = S3Config()) -> list[str]:
    """The contract's violations in output folder ``out`` (local or s3://), each naming its
    table; empty when the folder meets the contract."""
    s = Storage(out, s3)
    problems: list[str] = []
    tables: dict[str, pd.DataFrame] = {}
    for rel, cols in REQUIRED.items():
        if not s.parquet_files(rel):
            continue
        df = s.read_pandas(rel)
        tables[rel] = df
        missing = [c for c in cols if c not in df.columns]
        if missing:
            problems.append(f"{rel}: missing columns {missing}")
            continue
        if {"num_frames", "num_bins", "values"} <= set(df.columns):
            bad = int((df["values"].map(len) != df["num_frames"] * df["num_bins"]).sum())
            if bad:
                problems.append(
                    f"{rel}: {bad} rows whose values are not num_frames x num_bins long"
                )
        if "freq_profile" in df.columns:
            bad = int((df["freq_profile"].map(len) != df["num_bins"]).sum())
            if bad:
                problems.append(f"{rel}: {bad} rows whose freq_profile is not num_bins long")
        keys = row_keys(rel, df.columns)
        if keys and df.duplicated(keys).any():
            problems.append(f"{rel}: {int(df.duplicated(keys).sum())} duplicated rows (key {keys})")
    if not tables:
        problems.append(f"{s.uri()}: none of the output tables {list(REQUIRED)}")
    if "scores" in tables and "metrics" in tables:
        problems += _eer_problems(tables["scores"], tables["metrics"])
    problems += _audio_problems(s, tables.get("attributions"))
    problems += _joint_problems(tables.get("attributions"))
    return problems


#: how far a joint row's stored completeness error may be from the one its values give (the
#: maps are stored as float32).
JOINT_TOLERANCE = 1e-3


def _joint_problems(attributions: pd.DataFrame | None) -> list[str]:
    """Joint decompositions (side ``joint_a``/``joint_b``): both rows of each, a named
    baseline, and a completeness error that is what the two maps' values, score and
    baseline_score give."""
    if attributions is None or "side" not in attributions.columns:
        return []
    rows = attributions[attributions["side"].isin(schema.JOINT_SIDES)]
    problems = []
    for key, g in rows.groupby(["model", "method", "list", "utt_a", "utt_b"]):
        where = f"attributions: joint {'/'.join(map(str, key))}"
        if sorted(g["side"]) != list(schema.JOINT_SIDES):
            problems.append(f"{where}: sides {sorted(g['side'])}, not both of a joint pair")
            continue
        named = ["joint_baseline", "baseline_utt_a", "baseline_utt_b"]
        if any(c not in g.columns or g[c].isna().any() for c in named):
            problems.append(f"{where}: its baseline is not named ({', '.join(named)})")
            continue
        if g["num_frames"].eq(0).any():  # quarantined: no values to check
            continue
        total = sum(float(np.sum(v, dtype=np.float64)) for v in g["values"])
        delta = float(g["score"].iloc[0]) - float(g["baseline_score"].iloc[0])
        error = abs(total - delta) / max(abs(delta), np.finfo(np.float64).tiny)
        stored = g["completeness_error"].to_numpy(float)
        if not np.allclose(stored, error, rtol=JOINT_TOLERANCE, atol=JOINT_TOLERANCE):
            problems.append(f"{where}: completeness_error {stored} but its maps give {error:.4g}")
    return problems


def _audio_problems(s: Storage, attributions: pd.DataFrame | None) -> list[str]:
    """The audio/ files against the contract (design.md, "Output layout")."""
    frames: dict[tuple[str, str, str, str, str], int] = {}
    problems = []
    for rel in s.find(schema.AUDIO_PATH):
        key = schema.parse_audio_file(rel)
        if key is None:
            problems.append(f"{rel}: not an audio/ file the contract names")
            continue
        try:
            frames[key] = sf.info(io.BytesIO(s.read_bytes(rel))).frames
        except (sf.LibsndfileError, RuntimeError) as exc:
            problems.append(f"{rel}: does not decode: {exc}")
    have = set()
    if attributions is not None:
        cols = ["model", "utt_id", "method", "pathway"]
        have = set(attributions[cols].astype(str).itertuples(index=False, name=None))
    for (model, utt, method, pathway, part), n in sorted(frames.items()):
        if not method:
            continue
        original = frames.get((model, utt, "", "", schema.AUDIO_ORIGINAL))
        other = next(p for p in schema.AUDIO_PARTS if p != part)
        where = schema.audio_file(model, utt, method, pathway, part)
        if original != n:
            problems.append(f"{where}: {n} samples, its original has {original}")
        if (model, utt, method, pathway, other) not in frames:
            problems.append(f"{where}: no {other} part beside it")
        if (model, utt, method, pathway) not in have:
            problems.append(f"{where}: attributions/ holds no such map")
    return problems


def _eer_problems(scores: pd.DataFrame, metrics: pd.DataFrame) -> list[str]:
    """Every reported EER against sklearn_eer of its scores, within a trial's share of error."""
    problems = []
    eers = metrics[metrics.metric == "eer"]
    for key, g in scores.groupby(["model", "condition", "scorer", "list"]):
        y = g["label"].to_numpy(int)
        if y.min() == y.max():
            continue
        match = eers[
            (eers.model == key[0])
            & (eers.condition == key[1])
            & (eers.scorer == key[2])
            & (eers.list == key[3])
        ]
        if match.empty:
            problems.append(f"metrics: no eer for {key}")
            continue
        mine = sklearn_eer(g["score"].to_numpy(float), y)
        tol = 0.005 + 1.0 / min((y == 1).sum(), (y == 0).sum())
        if abs(float(match["value"].iloc[0]) - mine) > tol:
            problems.append(
                f"metrics: eer {float(match['value'].iloc[0]):.4f} for {key}, sklearn gives "
                f"{mine:.4f}"
            )
    return problems
