"""The report's figure style, and the figures several sections draw, as PNG bytes
(matplotlib's Agg canvas, no pyplot global state); a section's own figures live in its
module (``voxray.report.sections``) and draw with ``figure``, ``legend`` and ``to_png``.

Every figure function takes plain arrays or frames and returns the encoded PNG, so the
HTML module only embeds bytes. One style for all figures: 9-point text, light grid, the
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

from voxray.report.names import method_name, method_pathway_name
from voxray.report.profiles import VOICE_REGIONS

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
MAX_LEGEND = 14
P = ParamSpec("P")


def styled(fn: Callable[P, bytes]) -> Callable[P, bytes]:
    """Run a plotting function under the report's rcParams (text sizes are read at draw calls)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> bytes:
        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper


def figure(
    rows: int = 1,
    cols: int = 1,
    height_in: float = 3.2,
    width_in: float = WIDTH_IN,
    sharex: bool = False,
) -> tuple[Figure, np.ndarray]:
    """A figure of ``rows`` x ``cols`` axes (always a 2-D array), ``height_in`` per row."""
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


def legend(ax: Axes, outside: bool = False) -> None:
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


def draw_curves(ax: Axes, frame: pd.DataFrame, x_scale: float = 1, y_scale: float = 1) -> None:
    """One line per method of ``frame`` (columns method, x, y), methods first and references
    last; where the frame has ci_low and ci_high, each point's interval as an error bar in
    the line's colour (a point without one gets none)."""
    methods = sorted(
        set(frame["method"]), key=lambda m: (m.partition("/")[0] in REFERENCE_STYLE, m)
    )
    for i, method in enumerate(methods):
        pts = frame[frame["method"] == method].sort_values("x")
        x = pts["x"].to_numpy(dtype=float) * x_scale
        style = _line_style(method, i)
        ax.plot(x, pts["y"].to_numpy(dtype=float) * y_scale, label=_method_label(method), **style)
        if {"ci_low", "ci_high"} <= set(pts.columns):
            lo = pts["ci_low"].to_numpy(dtype=float) * y_scale
            hi = pts["ci_high"].to_numpy(dtype=float) * y_scale
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.vlines(x[ok], lo[ok], hi[ok], color=style["color"], linewidth=1.0, alpha=0.7)


@styled
def curves_plot(
    panels: Sequence[tuple[str, pd.DataFrame]],
    xlabel: str | Sequence[str],
    ylabel: str,
    x_percent: bool = False,
    y_percent: bool = False,
    cols: int = 2,
) -> bytes:
    """Panels of curves: each ``(title, frame)`` with columns method, x, y (and optionally
    ci_low, ci_high: error bars); one line per method (methods first, references last and
    dashed). ``xlabel``: one for all panels or one per panel; ``*_percent`` scales fractions
    to %."""
    xlabels = [xlabel] * len(panels) if isinstance(xlabel, str) else list(xlabel)
    cols = min(cols, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = figure(rows, cols, height_in=3.0)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, frame), xl in zip(axes.flat, panels, xlabels, strict=False):
        draw_curves(ax, frame, 100 if x_percent else 1, 100 if y_percent else 1)
        ax.set_title(title)
        ax.set_xlabel(xl)
        ax.set_ylabel(ylabel)
        legend(ax)
    return to_png(fig)


@styled
def frequency_profile_plot(profiles: Mapping[str, np.ndarray], hz: np.ndarray | None) -> bytes:
    """Mean importance per fbank bin on a Hz axis (log scale) with the F0, F1 and F2 regions
    shaded; on the coefficient index when there is no Hz axis (MFCC attributions)."""
    fig, axes = figure(height_in=3.4)
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
    legend(ax, outside=True)
    return to_png(fig)
