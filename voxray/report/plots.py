"""The report's figures as PNG bytes (matplotlib's Agg canvas, no pyplot global state).

Every function takes plain arrays or frames and returns the encoded PNG, so the HTML
module only embeds bytes. One style for all figures: 9-point text, light grid, the
tab10 palette for methods, grey dashed / black dotted lines for the random and
time-aligned references.
"""

from __future__ import annotations

import functools
import io
from typing import Callable, Mapping, ParamSpec, Sequence

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.stats import norm

from voxray.report.frequency import VOICE_REGIONS
from voxray.report.names import condition_name, method_name, method_pathway_name

STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 7.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.family": "DejaVu Sans",
}
WIDTH_IN = 9.4
DPI = 110
REFERENCE_STYLE = {
    "random": {"color": "0.45", "linestyle": "--"},
    "time_aligned": {"color": "black", "linestyle": ":"},
    "original": {"color": "0.6", "linestyle": "-."},
}
REGION_COLOURS = {"F0": "#f4a261", "F1": "#2a9d8f", "F2": "#8ab17d"}
DET_TICKS = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
MAX_LEGEND = 14
P = ParamSpec("P")


def styled(fn: Callable[P, bytes]) -> Callable[P, bytes]:
    """Run a plotting function under the report's rcParams (text sizes are read at draw calls)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> bytes:
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def _figure(
    rows: int = 1,
    cols: int = 1,
    height_in: float = 3.2,
    width_in: float = WIDTH_IN,
    sharex: bool = False,
) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(width_in, height_in * rows), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False, sharex=sharex)


def to_png(fig: Figure) -> bytes:
    """Encode a figure (tight layout) as PNG bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


VARIANT_NAMES = {
    "spearman": "Spearman",
    "ssim": "SSIM",
    "top1": "Top-1",
    "verification": "verification score",
}


def variant_name(variant: str) -> str:
    return VARIANT_NAMES.get(variant, variant)


def _legend(ax: Axes, outside: bool = False) -> None:
    """At most MAX_LEGEND entries; ``outside`` puts it right of the axes (single-panel figures)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if outside:
        ax.legend(
            handles[:MAX_LEGEND],
            labels[:MAX_LEGEND],
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
        )
    else:
        ax.legend(handles[:MAX_LEGEND], labels[:MAX_LEGEND], loc="best", frameon=False)


def _line_style(method: str, index: int) -> dict[str, object]:
    base = method.partition("/")[0]
    if base in REFERENCE_STYLE:
        return {**REFERENCE_STYLE[base], "linewidth": 1.4}
    return {"color": f"C{index % 10}", "linewidth": 1.6}


def _method_label(method: str) -> str:
    base = method.partition("/")[0]
    return method_name(base) if base in REFERENCE_STYLE else method_pathway_name(method)


@styled
def curves_plot(
    panels: Sequence[tuple[str, pd.DataFrame]],
    xlabel: str | Sequence[str],
    ylabel: str,
    x_percent: bool = False,
    y_percent: bool = False,
    cols: int = 2,
) -> bytes:
    """Panels of curves: each ``(title, frame)`` with columns method, x, y; one line per
    method (methods first, references last and dashed). ``xlabel``: one for all panels or
    one per panel; ``*_percent`` scales fractions to %."""
    xlabels = [xlabel] * len(panels) if isinstance(xlabel, str) else list(xlabel)
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = _figure(rows, cols, height_in=3.0)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, frame), xl in zip(axes.flat, panels, xlabels, strict=False):
        methods = sorted(
            set(frame["method"]), key=lambda m: (m.partition("/")[0] in REFERENCE_STYLE, m)
        )
        for i, method in enumerate(methods):
            pts = frame[frame["method"] == method].sort_values("x")
            x = pts["x"].to_numpy() * (100 if x_percent else 1)
            y = pts["y"].to_numpy() * (100 if y_percent else 1)
            ax.plot(x, y, label=_method_label(method), **_line_style(method, i))
        ax.set_title(title)
        ax.set_xlabel(xl)
        ax.set_ylabel(ylabel)
        _legend(ax)
    return to_png(fig)


@styled
def det_plot(det: pd.DataFrame, list_order: Sequence[str] = ()) -> bytes:
    """DET curves on normal-deviate (probit) axes, one panel per trial list.

    ``det`` has columns model, method (the trial list), variant (the condition), x (false
    alarm rate) and y (miss rate), both fractions; panels follow ``list_order``, then the
    other lists sorted.
    """
    found = set(det["method"])
    lists = [x for x in list_order if x in found] + sorted(found - set(list_order))
    cols = min(2, len(lists))
    fig, axes = _figure(-(-len(lists) // cols), cols, height_in=3.6)
    for ax in axes.flat[len(lists) :]:
        ax.set_visible(False)
    lo, hi = DET_TICKS[0], DET_TICKS[-1]
    for ax, lst in zip(axes.flat, lists, strict=False):
        sub = det[det["method"] == lst]
        for i, ((model, cond), pts) in enumerate(
            sorted(sub.groupby(["model", "variant"]), key=lambda kv: kv[0])
        ):
            fpr = np.clip(pts["x"].to_numpy(), lo / 2, 1 - 1e-6)
            fnr = np.clip(pts["y"].to_numpy(), lo / 2, 1 - 1e-6)
            ax.plot(
                norm.ppf(fpr),
                norm.ppf(fnr),
                color=f"C{i % 10}",
                linewidth=1.5,
                label=f"{model}, {condition_name(cond)}",
            )
        ticks = norm.ppf(DET_TICKS)
        labels = [f"{100 * t:g}" for t in DET_TICKS]
        ax.set_xticks(ticks, labels)
        ax.set_yticks(ticks, labels)
        ax.set_xlim(norm.ppf(lo), norm.ppf(hi))
        ax.set_ylim(norm.ppf(lo), norm.ppf(hi))
        ax.plot(
            [norm.ppf(lo), norm.ppf(hi)], [norm.ppf(lo), norm.ppf(hi)], color="0.8", linewidth=0.8
        )
        ax.set_xlabel("False alarm rate (%)")
        ax.set_ylabel("Miss rate (%)")
        ax.set_title(f"DET: {lst}")
        _legend(ax)
    return to_png(fig)


@styled
def frequency_profile_plot(profiles: Mapping[str, np.ndarray], hz: np.ndarray | None) -> bytes:
    """Mean importance per fbank bin on a Hz axis (log scale) with the F0, F1 and F2 regions
    shaded; on the coefficient index when there is no Hz axis (MFCC attributions)."""
    fig, axes = _figure(height_in=3.4)
    ax = axes[0, 0]
    if hz is not None:
        for name, lo, hi in VOICE_REGIONS:
            ax.axvspan(lo, hi, color=REGION_COLOURS.get(name, "0.9"), alpha=0.18, linewidth=0)
            ax.text(
                np.sqrt(lo * hi),
                1.0,
                name,
                transform=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=8,
            )
    for i, (label, p) in enumerate(sorted(profiles.items())):
        x = hz if hz is not None and len(hz) == len(p) else np.arange(len(p))
        ax.plot(x, p, color=f"C{i % 10}", linewidth=1.5, label=method_pathway_name(label))
    if hz is not None:
        ax.set_xscale("log")
        ax.set_xlabel("Frequency (Hz, mel-bin centres)")
    else:
        ax.set_xlabel("Coefficient")
    ax.set_ylabel("Share of importance per bin")
    ax.set_title("Mean frequency-importance profile")
    _legend(ax, outside=True)
    return to_png(fig)


@styled
def band_plot(shares: pd.DataFrame) -> bytes:
    """Grouped bars: each method's share of importance per band; the black tick is the share a
    uniform map would give (``shares`` rows: labels and ``uniform``; columns: bands)."""
    methods = [m for m in shares.index if m != "uniform"]
    bands = list(shares.columns)
    fig, axes = _figure(height_in=3.2)
    ax = axes[0, 0]
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(bands))
    for i, m in enumerate(methods):
        ax.bar(
            x - 0.4 + width * (i + 0.5),
            100 * shares.loc[m].to_numpy(),
            width,
            color=f"C{i % 10}",
            label=method_pathway_name(m),
        )
    if "uniform" in shares.index:
        ax.scatter(
            x,
            100 * shares.loc["uniform"].to_numpy(),
            marker="_",
            s=900,
            color="black",
            zorder=3,
            label="uniform map",
        )
    ax.set_xticks(x, bands)
    ax.set_ylabel("Share of importance (%)")
    ax.set_title("Importance per frequency band")
    _legend(ax, outside=True)
    return to_png(fig)


@styled
def embedding_plot(
    xy: np.ndarray,
    speakers: Sequence[str],
    genders: Sequence[str],
    title: str,
    top_speakers: int = 10,
) -> bytes:
    """Two panels of one 2-D projection ``xy`` (N, 2): coloured by speaker (the
    ``top_speakers`` most frequent, the others grey) and by gender."""
    fig, axes = _figure(1, 2, height_in=3.5)
    spk = np.asarray(speakers, dtype=object)
    counts = pd.Series(spk).value_counts()
    top = sorted(counts.index, key=lambda s: (-counts[s], str(s)))[:top_speakers]
    ax = axes[0, 0]
    rest = ~np.isin(spk, top)
    if rest.any():
        ax.scatter(xy[rest, 0], xy[rest, 1], s=6, color="0.8", label="other speakers", linewidths=0)
    for i, s in enumerate(top):
        m = spk == s
        ax.scatter(xy[m, 0], xy[m, 1], s=12, color=f"C{i % 10}", label=str(s), linewidths=0)
    ax.set_title(f"{title}: by speaker")
    _legend(ax, outside=True)
    ax = axes[0, 1]
    gen = np.array([g if g else "unknown" for g in genders], dtype=object)
    colours = {"m": "#1f77b4", "f": "#d62728", "unknown": "0.7"}
    for i, g in enumerate(sorted(set(gen))):
        m = gen == g
        ax.scatter(
            xy[m, 0],
            xy[m, 1],
            s=10,
            color=colours.get(str(g).lower(), f"C{(i + 2) % 10}"),
            label=str(g),
            linewidths=0,
        )
    ax.set_title(f"{title}: by gender")
    _legend(ax, outside=True)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color("0.85")
    return to_png(fig)


@styled
def training_plot(histories: Mapping[str, pd.DataFrame]) -> bytes:
    """Loss and training accuracy (%) per epoch, one line per model."""
    fig, axes = _figure(1, 2, height_in=3.0)
    for i, (name, h) in enumerate(sorted(histories.items())):
        h = h.sort_values("epoch")
        if "loss" in h:
            axes[0, 0].plot(
                h["epoch"], h["loss"], marker="o", markersize=3, color=f"C{i % 10}", label=name
            )
        if "accuracy" in h:
            axes[0, 1].plot(
                h["epoch"],
                100 * h["accuracy"],
                marker="o",
                markersize=3,
                color=f"C{i % 10}",
                label=name,
            )
    for ax, what in zip(axes.flat, ("Training loss", "Training accuracy (%)"), strict=False):
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(what)
        _legend(ax)
    return to_png(fig)


@styled
def sweep_plot(points: pd.DataFrame) -> bytes:
    """The Tune sweep: frozen-model EER (%) against the kept fraction of bins (%), one colour
    per method; filled markers for the method's own masks, hollow ones for its random
    reference (the same maps permuted over the bins, so the same kept fraction). Columns:
    method, kept_fraction, eer, eer_random (fractions)."""
    fig, axes = _figure(1, 1, height_in=3.4, width_in=WIDTH_IN * 0.7)
    ax = axes[0, 0]
    for i, (method, g) in enumerate(sorted(points.groupby("method"), key=lambda kv: kv[0])):
        g = g.sort_values("kept_fraction")
        colour = f"C{i % 10}"
        kept = 100 * g["kept_fraction"]
        ax.plot(kept, 100 * g["eer"], "o-", color=colour, label=method_name(method))
        if "eer_random" in g and g["eer_random"].notna().any():
            ax.plot(kept, 100 * g["eer_random"], "o--", color=colour, mfc="none", alpha=0.7)
    ax.plot([], [], "o--", color="0.45", mfc="none", label="random mask, same kept fraction")
    ax.set_xlabel("Bins kept by the mask (%)")
    ax.set_ylabel("EER of the frozen model (%)")
    _legend(ax, outside=True)
    return to_png(fig)
