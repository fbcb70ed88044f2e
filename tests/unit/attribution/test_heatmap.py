"""Heat-map PNGs: valid, sized by the number of panels, axes in Hz when bin centres are given;
colour scales that end at a percentile of |value|, so one extreme cell does not blank a map."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import numpy as np
import pytest
from matplotlib.figure import Figure

from voxray.attribution.heatmap import (
    COLOUR_PERCENTILE,
    bin_edges,
    colour_limit,
    draw_map,
    render_heatmaps,
)
from voxray.report.sections.trials import trial_figure
from voxray.report.trial_views import TrialView

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def features(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(120, 40))


@pytest.fixture
def sparse(features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A gradient map of real speech, in miniature: small noise, one cell 1000x larger."""
    m = rng.normal(scale=1e-3, size=features.shape)
    m[10, 5] = 1.0
    return m


@pytest.mark.parametrize("with_hz", [True, False], ids=["hz", "bins"])
def test_renders_a_png_with_one_panel_per_map(
    features: np.ndarray, rng: np.random.Generator, with_hz: bool
) -> None:
    hz = np.geomspace(60.0, 7600.0, 40) if with_hz else None
    cam = rng.uniform(size=features.shape)
    maps = {"integrated_gradients/traversal": rng.normal(size=features.shape), "layer_cam/cam": cam}
    png = render_heatmaps(features, maps, hz, frame_shift_s=0.01, title="utt id00001/abc/00001")
    assert png[:8] == PNG_MAGIC and len(png) > 20_000
    three = mpimg.imread(io.BytesIO(png), format="png").shape
    more = render_heatmaps(features, {**maps, "a": cam, "b": -cam}, hz)
    five = mpimg.imread(io.BytesIO(more), format="png").shape
    assert three[0] < five[0]  # five panels wrap onto a second row
    assert three[1] > 2 * three[0]  # three panels side by side


def test_rejects_maps_that_do_not_match_the_features(features: np.ndarray) -> None:
    with pytest.raises(ValueError, match="map 'x' has shape"):
        render_heatmaps(features, {"x": np.zeros((10, 40))}, None)
    with pytest.raises(ValueError, match="40 increasing bin centres"):
        render_heatmaps(features, {}, np.linspace(8000, 0, 40))
    with pytest.raises(ValueError, match=r"\(T, F\)"):
        render_heatmaps(features[0], {}, None)


def test_a_sparse_signed_map_ends_its_scale_at_the_percentile(sparse: np.ndarray) -> None:
    limit = colour_limit(sparse, signed=True)
    assert limit == pytest.approx(np.percentile(np.abs(sparse), COLOUR_PERCENTILE))
    assert limit < 0.01 * np.abs(sparse).max()  # the outlier saturates, not the rest
    assert colour_limit(-sparse, signed=True) == limit


def test_a_map_with_almost_no_nonzero_cells_ends_at_its_max() -> None:
    m = np.zeros((50, 20))  # 1000 cells, 3 nonzero: the 99.5th percentile is 0
    m[3, 4], m[7, 1], m[9, 9] = 0.2, -0.5, 0.1
    assert colour_limit(m, signed=True) == 0.5
    assert colour_limit(np.abs(m), signed=False) == 0.5
    assert colour_limit(np.zeros((4, 3)), signed=True) == 1.0
    assert colour_limit(np.zeros((4, 3)), signed=False) is None  # flat: matplotlib's scale


def test_unsigned_maps_end_at_the_percentile_of_their_values(features: np.ndarray) -> None:
    cam = np.linspace(0.0, 1.0, features.size).reshape(features.shape)  # normalised to its peak
    assert colour_limit(cam, signed=False) == pytest.approx(np.percentile(cam, COLOUR_PERCENTILE))
    assert colour_limit(cam, signed=False) > 0.99
    log_mel = features - 20.0  # all negative: the scale runs from the minimum up
    assert colour_limit(log_mel, signed=False) == pytest.approx(
        np.percentile(log_mel, COLOUR_PERCENTILE)
    )


def test_draw_map_saturates_beyond_the_limit_and_says_so(sparse: np.ndarray) -> None:
    fig = Figure()
    ax1, ax2, ax3 = fig.subplots(1, 3)
    t, y = np.arange(sparse.shape[0] + 1) * 0.01, np.arange(sparse.shape[1] + 1) - 0.5
    limit = colour_limit(sparse, signed=True)
    mesh = draw_map(ax1, sparse, t, y, signed=True, colorbar=True)
    assert (mesh.norm.vmin, mesh.norm.vmax) == (-limit, limit)
    assert mesh.colorbar.extend == "both"
    cam = np.abs(sparse)
    mesh = draw_map(ax2, cam, t, y, signed=False, colorbar=True)
    assert mesh.norm.vmax == colour_limit(cam, signed=False) and mesh.colorbar.extend == "max"
    few = np.zeros_like(sparse)
    few[0, 0] = -2.0  # the limit is its max: nothing beyond it
    assert draw_map(ax3, few, t, y, signed=True, colorbar=True).colorbar.extend == "neither"


def test_bin_edges_are_midpoints_with_extrapolated_ends() -> None:
    edges = bin_edges(np.array([100.0, 200.0, 400.0, 800.0]))
    np.testing.assert_allclose(edges, [50.0, 150.0, 300.0, 600.0, 1000.0])
    np.testing.assert_allclose(bin_edges(np.array([5.0])), [4.5, 5.5])


def _coloured_share(png: bytes) -> float:
    """The share of the image's pixels drawn in a clear colour (not white, grey or black)."""
    rgb = mpimg.imread(io.BytesIO(png), format="png")[..., :3]
    return float((rgb.max(axis=-1) - rgb.min(axis=-1) > 0.25).mean())


@pytest.mark.parametrize("with_hz", [True, False], ids=["fbank", "mfcc"])
def test_one_extreme_cell_does_not_blank_a_drawn_map(
    features: np.ndarray, sparse: np.ndarray, with_hz: bool
) -> None:
    hz = np.geomspace(60.0, 7600.0, features.shape[1]) if with_hz else None
    dense = sparse.copy()
    dense[10, 5] = 0.0

    def trial(m: np.ndarray) -> bytes:
        v = TrialView("l", "id1/a/1", "id2/b/1", 0, 0.5, {"a": features}, {"a": {"ig": m}})
        return trial_figure(v, hz, 0.01)

    for render in (lambda m: render_heatmaps(features, {"ig": m}, hz), trial):
        png = render(sparse)
        assert png[:8] == PNG_MAGIC
        # under a max-|value| scale the outlier washed the rest to white (a fifth fewer
        # coloured pixels); at the percentile the map looks as it does without the outlier
        assert _coloured_share(png) > 0.95 * _coloured_share(render(dense))
