"""Heat-map PNGs: valid, sized by the number of panels, axes in Hz when bin centres are given."""

from __future__ import annotations

import io

import matplotlib.image as mpimg
import numpy as np
import pytest

from voxray.attribution.heatmap import render_heatmaps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def features(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(120, 40))


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
