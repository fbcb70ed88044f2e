"""Read the explained verification trials: why the system accepted an impostor or rejected
a genuine pair.

Each explained trial of attributions/ (pathway ``trial``) becomes a ``TrialView``: both
sides' features, each method's map of their side and, where the trial stage decomposed it
jointly (rows ``joint_a``/``joint_b``), each method's ``JointView``: s(x), s(x'), what each
side's map sums to, the completeness error and the baseline pair. The trial stage writes the
worst false accepts and rejects at the EER threshold under its default selection; the label
and the score (cosine of the whole-utterance embeddings) come from trials.parquet and embeddings/.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from voxray import schema
from voxray.attribution.base import Pathway
from voxray.io.storage import Storage, StorageError
from voxray.log import get_logger

log = get_logger(__name__)


#: the optional columns of a joint decomposition's rows (``voxray.schema.ATTRIBUTIONS``).
JOINT_COLUMNS = (
    "score",
    "baseline_score",
    "completeness_error",
    "joint_baseline",
    "baseline_utt_a",
    "baseline_utt_b",
)


@dataclass(frozen=True)
class JointView:
    """One method's joint decomposition of a trial: both maps sum to ``score -
    baseline_score`` up to ``error`` (relative), against the baseline pair ``pair`` chosen as
    ``baseline`` names (``trial.joint_baseline``)."""

    score: float
    baseline_score: float
    sums: dict[str, float]
    error: float
    baseline: str
    pair: tuple[str, str]

    def share(self, side: str) -> float:
        """The share of ``score - baseline_score`` that side ``side``'s map accounts for."""
        delta = self.score - self.baseline_score
        return self.sums.get(side, float("nan")) / delta if delta else float("nan")


@dataclass
class TrialView:
    """One explained trial: both sides' features ``(T, F)`` and maps ``{method: (T, F)}``."""

    list: str
    utt_a: str
    utt_b: str
    label: int | None
    score: float
    features: dict[str, np.ndarray] = field(default_factory=dict)
    maps: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    joint: dict[str, JointView] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        """``false accept``, ``false reject`` or, for a correctly decided trial, its label."""
        if self.label is None:
            return "trial"
        return {0: "false accept", 1: "false reject"}[self.label]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def load_trial_views(out: Storage, base: str, kind: str, count: int) -> list[TrialView]:
    """Up to ``count`` explained trials of model ``base``: false accepts first (highest score
    first), then false rejects (lowest first), then the others."""
    attrs = _trial_rows(out, base)
    if attrs is None:
        return []
    attrs = attrs.filter(pc.greater(attrs.column("num_frames"), 0))
    if attrs.num_rows == 0:
        return []
    cols = [attrs.column(c).to_pylist() for c in ("list", "utt_a", "utt_b")]
    keys = sorted(set(zip(*cols, strict=True)))
    utts = sorted({u for _, a, b in keys for u in (a, b)})
    labels = _labels(out)
    emb = _embeddings(out, base, utts)
    views = {
        k: TrialView(
            *k,
            labels.get(k),
            _cosine(emb[k[1]], emb[k[2]]) if k[1] in emb and k[2] in emb else float("nan"),
        )
        for k in keys
    }
    rows = zip(
        *(attrs.column(c).to_pylist() for c in ("list", "utt_a", "utt_b", "side", "method")),
        schema.matrices(attrs),
        strict=True,
    )
    for lst, a, b, side, method, m in rows:
        if side not in schema.JOINT_SIDES:
            views[(lst, a, b)].maps.setdefault(side, {})[str(method)] = m
    for key, method, joint in _joint_views(attrs):
        views[key].joint[method] = joint
    feats = out.read_table(
        f"{schema.FEATURES_PATH}/kind={kind}",
        columns=["utt_id", "num_frames", "num_bins", "values"],
        filter=schema.is_in(schema.FEATURES, "utt_id", utts),
    )
    x_of = dict(zip(feats.column("utt_id").to_pylist(), schema.matrices(feats), strict=True))
    for v in views.values():
        v.features = {s: x_of[u] for s, u in (("a", v.utt_a), ("b", v.utt_b)) if u in x_of}

    def order(v: TrialView) -> tuple[int, float]:
        rank = {"false accept": 0, "false reject": 1}.get(v.kind, 2)
        return rank, -v.score if rank == 0 else v.score

    return sorted(views.values(), key=order)[:count]


def _trial_rows(out: Storage, base: str) -> pa.Table | None:
    """Model ``base``'s trial rows of attributions/ (with the joint columns it holds), or
    None."""
    try:
        if not out.parquet_files(schema.ATTRIBUTIONS_PATH):
            return None
        have = set(out.dataset(schema.ATTRIBUTIONS_PATH).schema.names)
        columns = ["list", "utt_a", "utt_b", "side", "method", "num_frames", "num_bins", "values"]
        return out.read_table(
            schema.ATTRIBUTIONS_PATH,
            columns=columns + [c for c in JOINT_COLUMNS if c in have],
            filter=(pc.field("pathway") == Pathway.TRIAL.value) & (pc.field("model") == base),
        )
    except (StorageError, ValueError) as exc:
        log.warning("report: no trial attributions: %s", exc)
        return None


def _joint_views(attrs: pa.Table) -> list[tuple[tuple[str, str, str], str, JointView]]:
    """((list, utt_a, utt_b), method, JointView) of each complete joint pair of ``attrs``."""
    if not set(JOINT_COLUMNS) <= set(attrs.column_names):
        return []
    joint = attrs.filter(pc.is_in(attrs.column("side"), pa.array(schema.JOINT_SIDES)))
    sums = [float(np.sum(m, dtype=np.float64)) for m in schema.matrices(joint)]
    pairs: dict[tuple, dict[str, tuple[dict, float]]] = {}
    named = ["list", "utt_a", "utt_b", "side", "method", *JOINT_COLUMNS]
    for row, total in zip(joint.select(named).to_pylist(), sums, strict=True):
        key = ((row["list"], row["utt_a"], row["utt_b"]), str(row["method"]))
        pairs.setdefault(key, {})[row["side"]] = (row, total)
    out = []
    for (trial, method), sides in sorted(pairs.items()):
        if set(sides) != set(schema.JOINT_SIDES):
            continue
        r = sides[schema.JOINT_SIDES[0]][0]
        view = JointView(
            float(r["score"]),
            float(r["baseline_score"]),
            {s[-1]: total for s, (_, total) in sides.items()},
            float(r["completeness_error"]),
            str(r["joint_baseline"]),
            (str(r["baseline_utt_a"]), str(r["baseline_utt_b"])),
        )
        out.append((trial, method, view))
    return out


def _labels(out: Storage) -> dict[tuple[str, str, str], int]:
    if not out.exists(schema.TRIALS_PATH):
        return {}
    t = out.read_table(schema.TRIALS_PATH, columns=["list", "label", "utt_a", "utt_b"])
    cols = [t.column(c).to_pylist() for c in ("list", "utt_a", "utt_b", "label")]
    return {(lst, a, b): int(y) for lst, a, b, y in zip(*cols, strict=True)}


def _embeddings(out: Storage, base: str, utts: list[str]) -> dict[str, np.ndarray]:
    if not out.parquet_files(schema.EMBEDDINGS_PATH):
        return {}
    t = out.read_table(
        schema.EMBEDDINGS_PATH,
        columns=["utt_id", "segment", "embedding"],
        filter=(pc.field("model") == base)
        & (pc.field("condition") == "none")
        & (pc.field("segment") < 0)
        & schema.is_in(schema.EMBEDDINGS, "utt_id", utts),
    )
    return dict(
        zip(t.column("utt_id").to_pylist(), schema.column_arrays(t, "embedding"), strict=True)
    )
