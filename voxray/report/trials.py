"""The report's trial explanations: why the system accepted an impostor or rejected a
genuine pair.

Each explained trial of attributions/ (pathway ``trial``) is shown as the two spectrograms
with each method's map of their side, and the time regions that drive the score: the frames
whose summed (over bins) attribution is largest, merged into intervals. The trial stage
writes the worst false accepts and rejects at the EER threshold under its default selection;
the label and the score (cosine of the whole-utterance embeddings) come from trials.parquet
and embeddings/.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.compute as pc
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from voxray import schema
from voxray.attribution.base import Pathway
from voxray.io.storage import Storage, StorageError
from voxray.log import get_logger
from voxray.report.names import method_name

log = get_logger(__name__)
#: the share of an utterance's frames, the most relevant ones, marked as driving the score.
TOP_FRAMES = 0.15


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

    @property
    def kind(self) -> str:
        """``false accept``, ``false reject`` or, for a correctly decided trial, its label."""
        if self.label is None:
            return "trial"
        return {0: "false accept", 1: "false reject"}[self.label]


def driving_regions(
    m: np.ndarray, shift_s: float, share: float = TOP_FRAMES
) -> list[tuple[float, float]]:
    """``(start_s, end_s)`` intervals of the frames whose summed attribution over the bins is
    in the top ``share`` and positive (they raise the score), consecutive frames merged,
    most important interval first."""
    per_frame = np.asarray(m, dtype=np.float64).sum(axis=1)
    k = max(1, int(round(share * len(per_frame))))
    top = np.argsort(-per_frame)[:k]
    keep = np.zeros(len(per_frame), bool)
    keep[top[per_frame[top] > 0]] = True
    intervals: list[tuple[int, int]] = []
    for t in np.flatnonzero(keep):
        if intervals and intervals[-1][1] == t:
            intervals[-1] = (intervals[-1][0], t + 1)
        else:
            intervals.append((int(t), int(t) + 1))
    intervals.sort(key=lambda iv: -per_frame[iv[0] : iv[1]].sum())
    return [(a * shift_s, b * shift_s) for a, b in intervals]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def load_trial_views(out: Storage, base: str, kind: str, count: int) -> list[TrialView]:
    """Up to ``count`` explained trials of model ``base``: false accepts first (highest score
    first), then false rejects (lowest first), then the others."""
    try:
        if not out.parquet_files(schema.ATTRIBUTIONS_PATH):
            return []
        attrs = out.read_table(
            schema.ATTRIBUTIONS_PATH,
            columns=[
                "list",
                "utt_a",
                "utt_b",
                "side",
                "method",
                "num_frames",
                "num_bins",
                "values",
            ],
            filter=(pc.field("pathway") == Pathway.TRIAL.value) & (pc.field("model") == base),
        )
    except (StorageError, ValueError) as exc:
        log.warning("report: no trial attributions: %s", exc)
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
        views[(lst, a, b)].maps.setdefault(side, {})[str(method)] = m
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


def trial_figure(v: TrialView, hz: np.ndarray | None, shift_s: float) -> bytes:
    """PNG: one row per side, its spectrogram then each method's map; the frames that drive
    the score (per the first method) shaded on the spectrogram."""
    sides = [s for s in ("a", "b") if s in v.features and s in v.maps]
    methods = sorted({m for s in sides for m in v.maps[s]})
    cols = 1 + len(methods)
    fig = Figure(figsize=(3.4 * cols, 2.6 * len(sides)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(sides), cols, squeeze=False)
    for row, side in enumerate(sides):
        x = v.features[side]
        utt = v.utt_a if side == "a" else v.utt_b
        y_edges = _edges(hz) if hz is not None and len(hz) == x.shape[1] else None
        t_edges = np.arange(x.shape[0] + 1) * shift_s
        panels = [(f"{side}: {utt}", x, False)] + [
            (method_name(m), v.maps[side][m], True) for m in methods if m in v.maps[side]
        ]
        for col, (title, m, signed) in enumerate(panels):
            ax = axes[row, col]
            ys = y_edges if y_edges is not None else np.arange(m.shape[1] + 1) - 0.5
            frames = min(m.shape[0], x.shape[0])
            if signed:
                vmax = float(np.abs(m).max()) or 1.0
                ax.pcolormesh(
                    t_edges[: frames + 1], ys, m[:frames].T, cmap="RdBu_r", vmin=-vmax, vmax=vmax
                )
            else:
                ax.pcolormesh(t_edges[: frames + 1], ys, m[:frames].T, cmap="magma")
            ax.set_title(title, fontsize=8, loc="left")
            ax.set_xlabel("time (s)", fontsize=8)
            ax.tick_params(labelsize=7)
        first = next((v.maps[side][m] for m in methods if m in v.maps[side]), None)
        if first is not None:
            for start, end in driving_regions(first, shift_s):
                axes[row, 0].axvspan(start, end, color="yellow", alpha=0.35, linewidth=0)
        axes[row, 0].set_ylabel("frequency (Hz)" if y_edges is not None else "bin", fontsize=8)
    for ax in axes.ravel()[len(sides) * cols :]:
        ax.set_axis_off()
    fig.suptitle(f"{v.kind}, {v.list}: score {v.score:.3f}", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


def _edges(centres: np.ndarray) -> np.ndarray:
    mid = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def regions_table(views: list[TrialView], shift_s: float) -> pd.DataFrame:
    """Per trial, side and method: the (at most three) time regions that raise the score most."""
    rows = []
    for v in views:
        for side in ("a", "b"):
            for method, m in sorted(v.maps.get(side, {}).items()):
                regions = driving_regions(m, shift_s)[:3]
                rows.append(
                    {
                        "Trial": f"{v.utt_a} / {v.utt_b}",
                        "Error": v.kind,
                        "Score": v.score,
                        "Side": side,
                        "Method": method_name(method),
                        "Regions (s)": ", ".join(f"{a:.2f}-{b:.2f}" for a, b in regions) or "none",
                    }
                )
    return pd.DataFrame(rows)


def profile_pairs(profiles: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The trial profiles and, for each trial method, its single-embedding (Traversal) profile:
    ``{label: (F,)}`` with labels ``method/trial`` and ``method/traversal``."""
    out: dict[str, np.ndarray] = {}
    for label, p in sorted(profiles.items()):
        method, _, pathway = label.partition("/")
        if pathway == Pathway.TRIAL:
            out[label] = p
            single = f"{method}/{Pathway.TRAVERSAL.value}"
            if single in profiles:
                out[single] = profiles[single]
    return out
