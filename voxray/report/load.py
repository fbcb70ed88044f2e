"""Read what a run left in its output folder (local or s3://), tolerating what is absent.

Every table is optional: a stage that did not run leaves no files, and the report says so
instead of failing. A table that exists but cannot be read is also left out, with the
reason kept in ``RunOutputs.problems`` so the report can show it. Large tables are read
in bounded slices: embeddings and frequency profiles of at most ``max_points``
utterances, attribution maps only of the utterances drawn as heat maps.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from voxray import schema
from voxray.attribution.base import Pathway
from voxray.io.run_state import STAGES_DIR
from voxray.io.storage import Storage, StorageError
from voxray.log import get_logger, redact
from voxray.report.trial_views import TrialView, load_trial_views

log = get_logger(__name__)
#: the pathway shown in a heat map when a method has several (the classification output first).
PATHWAY_PREFERENCE = (Pathway.CLASSIFICATION, Pathway.CAM, Pathway.LRP, Pathway.TRAVERSAL)


@dataclass
class Heatmap:
    """One utterance's input features ``(T, F)``, its attribution maps
    ``{method/pathway: (T, F)}`` and, where the run wrote them (audio/), its audio as FLAC
    bytes: the original and each map's ``{method/pathway: (kept, removed)}``."""

    utt_id: str
    features: np.ndarray
    maps: dict[str, np.ndarray]
    original: bytes | None = None
    audio: dict[str, tuple[bytes, bytes]] = field(default_factory=dict)


@dataclass
class RunOutputs:
    """The output tables the report reads; None (or empty) where the run has none."""

    metrics: pd.DataFrame | None = None
    curves: pd.DataFrame | None = None
    manifest: pd.DataFrame | None = None
    trials: pd.DataFrame | None = None
    #: scores/: one row per scored trial (model, condition, list, scorer, utt_a, utt_b, label,
    #: score), for the verdicts' paired effects.
    scores: pd.DataFrame | None = None
    quarantine: pd.DataFrame | None = None
    tune_results: pd.DataFrame | None = None
    tune_best: str | None = None
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    histories: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: columns method, pathway, utt_id, freq_profile ((F,) arrays).
    profiles: pd.DataFrame | None = None
    #: ``(F,)`` each feature bin's std over the frames of a sample of the profiled utterances:
    #: where the corpus carries signal (the frequency verdict leaves silent bins out).
    bin_spread: np.ndarray | None = None
    #: columns utt_id, speaker_id, gender, embedding ((D,) arrays): base model, clean, whole
    #: utterances.
    embeddings: pd.DataFrame | None = None
    heatmaps: list[Heatmap] = field(default_factory=list)
    #: explained verification trials (the trial pathway), worst errors first.
    trial_views: list[TrialView] = field(default_factory=list)
    #: output path -> why it could not be read.
    problems: dict[str, str] = field(default_factory=dict)


class _Reader:
    """Reads tables of one output folder, recording unreadable ones instead of raising."""

    def __init__(self, out: Storage) -> None:
        self.out = out
        self.problems: dict[str, str] = {}

    def table(
        self, rel: str, columns: list[str] | None = None, filter: pc.Expression | None = None
    ) -> pa.Table | None:
        try:
            if not self.out.parquet_files(rel):
                return None
            return self.out.read_table(rel, columns=columns, filter=filter)
        except (StorageError, pa.ArrowException, OSError, ValueError) as exc:
            self.problems[rel] = redact(f"{type(exc).__name__}: {exc}")
            log.warning("report: cannot read %s: %s", self.out.uri(rel), self.problems[rel])
            return None

    def frame(
        self, rel: str, columns: list[str] | None = None, filter: pc.Expression | None = None
    ) -> pd.DataFrame | None:
        t = self.table(rel, columns, filter)
        return None if t is None else t.to_pandas()

    def bytes(self, rel: str) -> bytes | None:
        try:
            return self.out.read_bytes(rel) if self.out.exists(rel) else None
        except (StorageError, OSError) as exc:
            self.problems[rel] = redact(str(exc))
            return None

    def text(self, rel: str) -> str | None:
        try:
            return self.out.read_text(rel) if self.out.exists(rel) else None
        except (StorageError, OSError, UnicodeDecodeError) as exc:
            self.problems[rel] = redact(f"{type(exc).__name__}: {exc}")
            return None


def speakers(manifest: pd.DataFrame | None) -> dict[str, str]:
    """utt_id -> speaker_id of ``manifest`` (empty when there is none or it names no speakers):
    what a speaker-resampled interval groups the utterances by."""
    if manifest is None or not {"utt_id", "speaker_id"} <= set(manifest.columns):
        return {}
    return dict(zip(manifest["utt_id"], manifest["speaker_id"], strict=True))


def _sample(ids: list[str], n: int, seed: int) -> list[str]:
    """At most ``n`` of ``ids``, drawn reproducibly (sorted first, so the order of files does not
    matter)."""
    ids = sorted(set(ids))
    if n <= 0 or len(ids) <= n:
        return ids
    pick = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return [ids[i] for i in sorted(pick)]


def _with_case_column(metrics: pd.DataFrame | None) -> pd.DataFrame | None:
    """metrics/ with its ``case`` column, also for outputs written before it existed (they
    named the multi-speaker case in the list, ``multispeaker:<case>``)."""
    if metrics is None:
        return None
    if "case" not in metrics:
        metrics = metrics.assign(case=None)
    old = metrics["list"].astype(str).str.startswith("multispeaker:")
    if old.any():
        metrics = metrics.copy()
        metrics.loc[old, "case"] = metrics.loc[old, "list"].str.partition(":")[2]
        metrics.loc[old, "list"] = "multispeaker"
    return metrics


def _stages(reader: _Reader) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    try:
        files = reader.out.find(STAGES_DIR, (".json",))
    except StorageError as exc:
        reader.problems[STAGES_DIR] = redact(str(exc))
        return out
    for rel in files:
        text = reader.text(rel)
        if text is None:
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            reader.problems[rel] = f"not valid JSON: {exc}"
            continue
        if isinstance(record, dict):
            out[posixpath.basename(rel)[: -len(".json")]] = record
    return out


def _histories(reader: _Reader) -> dict[str, pd.DataFrame]:
    out: dict[str, pd.DataFrame] = {}
    try:
        if not reader.out.exists(schema.MODELS_PATH):
            return out
        names = sorted(
            posixpath.basename(p.rstrip("/"))
            for p in reader.out.fs.ls(reader.out.path(schema.MODELS_PATH), detail=False)
        )
    except (StorageError, OSError) as exc:
        reader.problems[schema.MODELS_PATH] = redact(f"{type(exc).__name__}: {exc}")
        return out
    for name in names:
        rel = f"{schema.MODELS_PATH}/{name}/history.parquet"
        if not reader.out.exists(rel):
            continue
        frame = reader.frame(rel)
        if frame is not None and "epoch" in frame:
            out[name] = frame
    return out


def _embeddings(
    reader: _Reader, manifest: pd.DataFrame | None, base: str, max_points: int, seed: int
) -> pd.DataFrame | None:
    whole = (
        (pc.field("model") == base) & (pc.field("condition") == "none") & (pc.field("segment") < 0)
    )
    ids = reader.table(schema.EMBEDDINGS_PATH, columns=["utt_id"], filter=whole)
    if ids is None or ids.num_rows == 0:
        return None
    chosen = _sample(ids.column("utt_id").to_pylist(), max_points, seed)
    t = reader.table(
        schema.EMBEDDINGS_PATH,
        columns=["utt_id", "embedding"],
        filter=whole & schema.is_in(schema.EMBEDDINGS, "utt_id", chosen),
    )
    if t is None:
        return None
    frame = pd.DataFrame(
        {
            "utt_id": t.column("utt_id").to_pylist(),
            "embedding": schema.column_arrays(t, "embedding"),
        }
    )
    frame = frame.drop_duplicates("utt_id").sort_values("utt_id", ignore_index=True)
    if manifest is not None and {"speaker_id", "gender"} <= set(manifest.columns):
        frame = frame.merge(manifest[["utt_id", "speaker_id", "gender"]], on="utt_id", how="left")
    else:
        frame = frame.assign(speaker_id=np.nan, gender="")
    frame["speaker_id"] = frame["speaker_id"].fillna(frame["utt_id"].str.split("/").str[0])
    frame["gender"] = frame["gender"].fillna("")
    return frame


def _attribution_keys(reader: _Reader, base: str) -> pd.DataFrame | None:
    t = reader.table(
        schema.ATTRIBUTIONS_PATH,
        columns=["utt_id", "method", "pathway", "num_frames"],
        filter=pc.field("model") == base,
    )
    if t is None or t.num_rows == 0:
        return None
    keys = t.to_pandas()
    keys["method"] = keys["method"].astype(str)
    return keys[keys["num_frames"] > 0]


def _profiles(
    reader: _Reader, keys: pd.DataFrame, base: str, max_points: int, seed: int
) -> pd.DataFrame | None:
    chosen: set[str] = set()
    for _, group in keys.groupby(["method", "pathway"]):
        chosen.update(_sample(list(group["utt_id"]), max_points, seed))
    filt = (pc.field("model") == base) & schema.is_in(schema.ATTRIBUTIONS, "utt_id", chosen)
    t = reader.table(
        schema.ATTRIBUTIONS_PATH,
        columns=["utt_id", "method", "pathway", "num_frames", "freq_profile"],
        filter=filt,
    )
    if t is None:
        return None
    frame = pd.DataFrame(
        {
            "utt_id": t.column("utt_id").to_pylist(),
            "method": [str(m) for m in t.column("method").to_pylist()],
            "pathway": t.column("pathway").to_pylist(),
            "freq_profile": schema.column_arrays(t, "freq_profile"),
        }
    )
    return frame[t.column("num_frames").to_numpy() > 0].reset_index(drop=True)


#: the profiled utterances whose features give ``RunOutputs.bin_spread``.
SPREAD_UTTERANCES = 64


def _bin_spread(reader: _Reader, kind: str, utt_ids: list[str], seed: int) -> np.ndarray | None:
    """Each feature bin's std over the frames of up to ``SPREAD_UTTERANCES`` of ``utt_ids``."""
    chosen = _sample(utt_ids, SPREAD_UTTERANCES, seed)
    feats = reader.table(
        f"{schema.FEATURES_PATH}/kind={kind}",
        columns=["utt_id", "num_frames", "num_bins", "values"],
        filter=schema.is_in(schema.FEATURES, "utt_id", chosen),
    )
    mats = [m for m in schema.matrices(feats) if m.size] if feats is not None else []
    if not mats or len({m.shape[1] for m in mats}) != 1:
        return None
    return np.concatenate(mats).astype(np.float64).std(axis=0)


def shown_maps(keys: pd.DataFrame, count: int) -> dict[str, dict[str, str]]:
    """The heat maps the report shows, from attribution keys (utt_id, method, pathway): the
    ``count`` utterances explained by the most methods (ties: by utt_id), each with
    ``{method: the pathway shown}`` (PATHWAY_PREFERENCE). The attribute stage writes their
    audio (voxray.pipeline.explanation_audio)."""
    if count <= 0:
        return {}
    keys = keys[keys["pathway"] != "trial"]  # a trial map explains a pair: see trial_views.py
    per_utt = keys.groupby("utt_id")["method"].nunique()
    chosen = sorted(per_utt.index, key=lambda u: (-per_utt[u], u))[:count]
    rank = {p: i for i, p in enumerate(PATHWAY_PREFERENCE)}
    shown: dict[str, dict[str, str]] = {u: {} for u in chosen}
    for u, m, p in keys[keys["utt_id"].isin(chosen)][["utt_id", "method", "pathway"]].itertuples(
        index=False
    ):
        old = shown[u].get(str(m))
        if old is None or rank.get(p, 99) < rank.get(old, 99):
            shown[u][str(m)] = p
    return shown


def _audio(
    reader: _Reader, base: str, utt_id: str, maps: list[str]
) -> tuple[bytes | None, dict[str, tuple[bytes, bytes]]]:
    """The utterance's original audio and each map's (kept, removed) audio that audio/ holds."""
    original = reader.bytes(schema.audio_file(base, utt_id))
    parts: dict[str, tuple[bytes, bytes]] = {}
    for key in maps:
        method, pathway = key.split("/")
        got = [
            reader.bytes(schema.audio_file(base, utt_id, method, pathway, part))
            for part in schema.AUDIO_PARTS
        ]
        if all(got):
            parts[key] = (got[0], got[1])
    return original, parts


def _heatmaps(
    reader: _Reader, keys: pd.DataFrame, base: str, kind: str, count: int
) -> list[Heatmap]:
    """The maps ``shown_maps`` chooses, with the utterances' features and audio."""
    shown = shown_maps(keys, count)
    if not shown:
        return []
    chosen = list(shown)
    filt = (pc.field("model") == base) & schema.is_in(schema.ATTRIBUTIONS, "utt_id", chosen)
    attrs = reader.table(
        schema.ATTRIBUTIONS_PATH,
        columns=["utt_id", "method", "pathway", "num_frames", "num_bins", "values"],
        filter=filt,
    )
    feats = reader.table(
        f"{schema.FEATURES_PATH}/kind={kind}",
        columns=["utt_id", "num_frames", "num_bins", "values"],
        filter=schema.is_in(schema.FEATURES, "utt_id", chosen),
    )
    if attrs is None or feats is None:
        return []
    attrs = attrs.filter(pc.greater(attrs.column("num_frames"), 0))
    feature_of = dict(zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True))
    maps: dict[str, dict[str, np.ndarray]] = {}
    for u, m, p, a in zip(
        attrs.column("utt_id").to_pylist(),
        attrs.column("method").to_pylist(),
        attrs.column("pathway").to_pylist(),
        schema.matrices(attrs),
        strict=True,
    ):
        if shown[u].get(str(m)) == p:
            maps.setdefault(u, {})[f"{m}/{p}"] = a
    out = []
    for u in chosen:
        x = feature_of.get(u)
        if x is None or u not in maps:
            continue
        picked = {k: a for k, a in sorted(maps[u].items()) if a.shape[1] == x.shape[1]}
        if not picked:
            continue
        frames = min(x.shape[0], *(a.shape[0] for a in picked.values()))
        original, audio = _audio(reader, base, u, list(picked))
        maps_u = {k: a[:frames] for k, a in picked.items()}
        out.append(Heatmap(u, x[:frames], maps_u, original, audio))
    return out


def load_outputs(
    out: Storage,
    base: str,
    feature_kind: str,
    max_points: int,
    heatmap_utterances: int,
    seed: int = 0,
) -> RunOutputs:
    """Everything the report shows, read from ``out`` (see the module doc for the bounds)."""
    r = _Reader(out)
    res = RunOutputs()
    res.metrics = _with_case_column(r.frame(schema.METRICS_PATH))
    res.curves = r.frame(schema.CURVES_PATH)
    res.manifest = r.frame(schema.MANIFEST_PATH)
    res.trials = r.frame(schema.TRIALS_PATH)
    res.scores = r.frame(schema.SCORES_PATH)
    res.quarantine = r.frame(schema.QUARANTINE_PATH)
    res.tune_results = r.frame(f"{schema.TUNE_PATH}/results.parquet")
    res.tune_best = r.text(f"{schema.TUNE_PATH}/best.yaml")
    res.stages = _stages(r)
    res.histories = _histories(r)
    res.embeddings = _embeddings(r, res.manifest, base, max_points, seed)
    keys = _attribution_keys(r, base)
    if keys is not None and not keys.empty:
        res.profiles = _profiles(r, keys, base, max_points, seed)
        if res.profiles is not None:
            res.bin_spread = _bin_spread(r, feature_kind, list(res.profiles["utt_id"]), seed)
        res.heatmaps = _heatmaps(r, keys, base, feature_kind, heatmap_utterances)
    res.trial_views = load_trial_views(out, base, feature_kind, 2 * heatmap_utterances)
    res.problems = r.problems
    return res
