"""Trial explanations: why the system accepted an impostor or rejected a genuine pair.

Each explained trial (``voxray.report.trial_views``) is shown as the two spectrograms with
each method's map of their side, and the time regions that drive the score: the frames whose
summed (over bins) attribution is largest, merged into intervals. Below, the frequency
profile of what makes trials match against what makes single embeddings.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from voxray.attribution.base import Pathway
from voxray.attribution.heatmap import COLOUR_PERCENTILE, bin_edges, draw_map
from voxray.report.html import Image, Section, Table
from voxray.report.names import method_name
from voxray.report.plots import frequency_profile_plot
from voxray.report.profiles import mean_profiles
from voxray.report.sections.base import ReportContext, missing, section
from voxray.report.trial_views import TrialView

TITLE = "Trial explanations: the worst false accepts and rejects"
INTRO = (
    "Each verification trial explained by the trial stage (by default the worst false accepts "
    "and false rejects at each list's EER threshold): both spectrograms with every method's map "
    "of the cosine score with respect to that side, the other side's embedding held fixed, "
    "drawn red (positive) to blue (negative) with the colour scale ending at the "
    f"{COLOUR_PERCENTILE:g}th percentile of |value| (the few brighter cells saturate). "
    "Where the trial stage decomposed a trial jointly (Integrated Gradients, both sides moved "
    "together from a baseline pair), a table gives s(x), the baseline's s(x'), the share of "
    "their difference each side's map accounts for and the completeness error. "
    "Shaded on the spectrograms: the frames whose summed attribution raises the score most (the "
    "time regions driving the decision); the table lists them per method. Below, the frequency "
    "profile of what makes trials match against what makes single embeddings (the same method "
    "on the Traversal pathway)."
)
#: what each ``trial.joint_baseline`` compares a trial with, as the report names it.
JOINT_BASELINES = {
    "cohort_mean": "a typical impostor trial: the list's impostor trial whose score is nearest "
    "the mean impostor score (each side cut or repeated to its side's length)",
}

#: the share of an utterance's frames, the most relevant ones, marked as driving the score.
TOP_FRAMES = 0.15


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
        y_edges = bin_edges(hz) if hz is not None and len(hz) == x.shape[1] else None
        t_edges = np.arange(x.shape[0] + 1) * shift_s
        panels = [(f"{side}: {utt}", x, False)] + [
            (method_name(m), v.maps[side][m], True) for m in methods if m in v.maps[side]
        ]
        for col, (title, m, signed) in enumerate(panels):
            ax = axes[row, col]
            ys = y_edges if y_edges is not None else np.arange(m.shape[1] + 1) - 0.5
            frames = min(m.shape[0], x.shape[0])
            draw_map(ax, m[:frames], t_edges[: frames + 1], ys, signed)
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


def joint_table(views: list[TrialView]) -> pd.DataFrame:
    """Per trial and jointly decomposed method: s(x), the baseline pair's s(x'), the share of
    s(x) - s(x') each side's map accounts for, the completeness error and the baseline."""
    rows = []
    for v in views:
        for method, j in sorted(v.joint.items()):
            rows.append(
                {
                    "Trial": f"{v.utt_a} / {v.utt_b}",
                    "Error": v.kind,
                    "Method": method_name(method),
                    "s(x)": j.score,
                    "s(x')": j.baseline_score,
                    "Share a": j.share("a"),
                    "Share b": j.share("b"),
                    "Completeness error": j.error,
                    "Baseline": f"{j.baseline}: {j.pair[0]} / {j.pair[1]}",
                }
            )
    return pd.DataFrame(rows)


def joint_caption(views: list[TrialView]) -> str:
    """The joint table's caption, naming each baseline the table uses."""
    kinds = sorted({j.baseline for v in views for j in v.joint.values()})
    named = "; ".join(
        f"{k}, {JOINT_BASELINES.get(k, 'as the trial stage names it')}" for k in kinds
    )
    return (
        "Joint decomposition: both sides on one path from a baseline pair x' to the trial x, "
        "so the two maps add up to s(x) - s(x'); each side's share of that difference, and "
        f"how far their sum is from it (relative). Baseline: {named}"
    )


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


@section("trials", TITLE, INTRO, order=80)
def trials(ctx: ReportContext, s: Section) -> None:
    views = ctx.out.trial_views
    if not views:
        s.blocks.append(missing("no trial attributions in attributions/ (the trial stage)"))
        return
    shift = ctx.extractor.frame_shift_ms / 1000.0
    s.blocks.append(Table(regions_table(views, shift), "Time regions that raise the score"))
    if any(v.joint for v in views):
        s.blocks.append(Table(joint_table(views), joint_caption(views)))
    for v in views:
        png = trial_figure(v, ctx.hz, shift)
        s.blocks.append(Image(png, f"trial maps of {v.utt_a} and {v.utt_b}"))
    profiles = mean_profiles(ctx.out.profiles) if ctx.out.profiles is not None else {}
    pairs = profile_pairs(profiles)
    if pairs:
        hz = ctx.hz
        if hz is not None and any(len(p) != len(hz) for p in pairs.values()):
            hz = None
        s.blocks.append(
            Image(
                frequency_profile_plot(pairs, hz),
                "Frequency profile of trial maps against single-embedding maps",
            )
        )
