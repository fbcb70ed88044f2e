"""Heat maps of one utterance: its input features next to each method's attribution map, as a
PNG (matplotlib's Agg canvas, no pyplot state, safe in Ray workers).

Time runs along x (seconds), frequency along y: in Hz at the bin centres when ``hz`` is
given (fbank; the mel bins are drawn at their true, non-uniform positions), else the bin
index (MFCC coefficients have no frequency). Signed maps use a diverging colormap centred on
zero; non-negative maps (CAMs, normalised magnitudes) a sequential one.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: panels per row.
COLUMNS = 4


def _edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges around increasing centres (midpoints, the ends extrapolated)."""
    mid = (centres[1:] + centres[:-1]) / 2
    first = centres[0] - (mid[0] - centres[0]) if len(mid) else centres[0] - 0.5
    last = centres[-1] + (centres[-1] - mid[-1]) if len(mid) else centres[-1] + 0.5
    return np.concatenate([[first], mid, [last]])


def _panel(
    ax: Axes,
    fig: Figure,
    name: str,
    m: np.ndarray,
    hz: np.ndarray | None,
    shift: float,
    signed: bool,
) -> None:
    t_edges = np.arange(m.shape[0] + 1) * shift
    if hz is not None:
        y_edges, ylabel = _edges(hz), "frequency (Hz)"
    else:
        y_edges, ylabel = np.arange(m.shape[1] + 1) - 0.5, "bin"
    if signed:
        vmax = float(np.abs(m).max()) or 1.0
        mesh = ax.pcolormesh(
            t_edges, y_edges, m.T, cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="flat"
        )
    else:
        mesh = ax.pcolormesh(t_edges, y_edges, m.T, cmap="magma", shading="flat")
    ax.set_title(name, fontsize=9, loc="left")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    fig.colorbar(mesh, ax=ax, fraction=0.046, pad=0.02)


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
        _panel(ax, fig, name, m, hz, frame_shift_s, signed)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()
