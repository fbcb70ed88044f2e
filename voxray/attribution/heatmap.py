"""Heat maps of one utterance: its input features next to each method's attribution map, as a
PNG (matplotlib's Agg canvas, no pyplot state, safe in Ray workers).

Time runs along x (seconds), frequency along y: in Hz at the bin centres when ``hz`` is
given (fbank; the mel bins are drawn at their true, non-uniform positions), else the bin
index (MFCC coefficients have no frequency). Signed maps use a diverging colormap centred on
zero; non-negative maps (CAMs, normalised magnitudes) a sequential one. The colour scale ends
at the ``COLOUR_PERCENTILE``-th percentile of |value| (``colour_limit``), not at the largest:
gradient maps of real speech are sparse with a few extreme cells, which would otherwise wash
every other cell out to the colormap's centre. Brighter cells saturate, and the colour bar's
pointed ends say so.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure

#: panels per row.
COLUMNS = 4
#: the percentile of |value| at which a map's colour scale ends.
COLOUR_PERCENTILE = 99.5


def bin_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around increasing centres (midpoints, the ends extrapolated), so that
    ``pcolormesh`` draws each bin at its true, possibly non-uniform, position."""
    mid = (centres[1:] + centres[:-1]) / 2
    first = centres[0] - (mid[0] - centres[0]) if len(mid) else centres[0] - 0.5
    last = centres[-1] + (centres[-1] - mid[-1]) if len(mid) else centres[-1] + 0.5
    return np.concatenate([[first], mid, [last]])


def colour_limit(m: np.ndarray, signed: bool) -> float | None:
    """Where ``m``'s colour scale ends: ``COLOUR_PERCENTILE`` of |m| for a signed map (drawn
    over +-limit), of ``m`` otherwise (drawn from its minimum up to the limit).

    A percentile, not the maximum, so that a few extreme cells saturate instead of washing
    out a sparse map; a dense map (the features, a CAM normalised to its peak) loses only its
    brightest half percent of cells to saturation, which does not show. Where the percentile
    leaves no scale (nearly every cell at the floor: zero for a signed map, the minimum
    otherwise) the maximum is used, so the few cells off the floor still show.
    A signed all-zero map gets 1.0 (a scale around zero, drawn white); an unsigned flat one
    None, matplotlib's own scale, as a fixed limit could fall below its value.
    """
    a = np.abs(m) if signed else np.asarray(m)
    floor = 0.0 if signed else float(a.min())
    limit = float(np.percentile(a, COLOUR_PERCENTILE))
    if limit <= floor:
        limit = float(a.max())
    if limit > floor:
        return limit
    return 1.0 if signed else None


def draw_map(
    ax: Axes,
    m: np.ndarray,
    t_edges: np.ndarray,
    y_edges: np.ndarray,
    signed: bool,
    colorbar: bool = False,
) -> QuadMesh:
    """Draw ``m`` ``(T, F)`` on ``ax`` over cell edges ``t_edges`` ``(T + 1,)`` and
    ``y_edges`` ``(F + 1,)``: red (positive) to blue (negative) around zero when ``signed``,
    else dark to bright; the scale ends at ``colour_limit``. With ``colorbar``, a colour bar
    beside it, pointed at the ends where some cell is beyond the limit (saturated)."""
    limit = colour_limit(m, signed)
    if signed:
        mesh = ax.pcolormesh(
            t_edges, y_edges, m.T, cmap="RdBu_r", vmin=-limit, vmax=limit, shading="flat"
        )
    else:
        mesh = ax.pcolormesh(t_edges, y_edges, m.T, cmap="magma", vmax=limit, shading="flat")
    if colorbar:
        beyond = limit is not None and float((np.abs(m) if signed else m).max()) > limit
        extend = ("both" if signed else "max") if beyond else "neither"
        ax.get_figure().colorbar(mesh, ax=ax, fraction=0.046, pad=0.02, extend=extend)
    return mesh


def _panel(
    ax: Axes, name: str, m: np.ndarray, hz: np.ndarray | None, shift: float, signed: bool
) -> None:
    t_edges = np.arange(m.shape[0] + 1) * shift
    if hz is not None:
        y_edges, ylabel = bin_edges(hz), "frequency (Hz)"
    else:
        y_edges, ylabel = np.arange(m.shape[1] + 1) - 0.5, "bin"
    draw_map(ax, m, t_edges, y_edges, signed, colorbar=True)
    ax.set_title(name, fontsize=9, loc="left")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)


def render_heatmaps(
    features: np.ndarray,
    maps: Mapping[str, np.ndarray],
    hz: np.ndarray | None,
    frame_shift_s: float = 0.01,
    title: str = "",
) -> bytes:
    """PNG bytes: ``features`` ``(T, F)`` then each ``maps[name]`` ``(T, F)``, side by side.

    Args:
        hz: ``(F,)`` increasing bin centre frequencies, or None for bin indices.
        frame_shift_s: seconds between frames (the x axis).
    """
    feats = np.asarray(features, dtype=np.float64)
    if feats.ndim != 2 or min(feats.shape) < 1:
        raise ValueError(f"render_heatmaps: features must be (T, F), got shape {feats.shape}")
    panels = [("input features", feats, False)]
    for name, m in maps.items():
        arr = np.asarray(m, dtype=np.float64)
        if arr.shape != feats.shape:
            raise ValueError(
                f"render_heatmaps: map {name!r} has shape {arr.shape}, the features {feats.shape}"
            )
        panels.append((name, arr, bool((arr < 0).any())))
    if hz is not None:
        hz = np.asarray(hz, dtype=np.float64)
        if hz.shape != (feats.shape[1],) or np.any(np.diff(hz) <= 0):
            raise ValueError(
                f"render_heatmaps: hz must be {feats.shape[1]} increasing bin centres, "
                f"got shape {hz.shape}"
            )
    cols = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, m, signed) in zip(axes, panels, strict=False):
        _panel(ax, name, m, hz, frame_shift_s, signed)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()
