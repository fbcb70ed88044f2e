"""Every figure function returns a decodable PNG of a sensible size, for typical and edge inputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image as PILImage

from voxray.report import plots
from voxray.report.sections.embeddings import embedding_plot, project_2d
from voxray.report.sections.frequency import band_plot, band_shares
from voxray.report.sections.training import training_plot
from voxray.report.sections.verification import det_plot


def _decoded(png: bytes) -> PILImage.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    img = PILImage.open(io.BytesIO(png))
    img.load()
    return img


def _curve(method: str, variant: str = "", model: str = "m", n: int = 6) -> pd.DataFrame:
    x = np.linspace(0, 1, n)
    return pd.DataFrame(
        {"model": model, "method": method, "variant": variant, "x": x, "y": np.exp(-3 * x)}
    )


def _det() -> pd.DataFrame:
    fpr = np.linspace(1.0, 0.0, 50)
    return pd.DataFrame(
        {"model": "ecapa", "method": "vox1-o", "variant": "none", "x": fpr, "y": 1 - fpr}
    )


HZ = np.geomspace(40, 7800, 20)
PROFILES = {
    "saliency/classification": np.linspace(1, 0, 20),
    "layer_cam/cam": np.linspace(0, 1, 20),
}

CASES = {
    "curves": lambda: plots.curves_plot(
        [
            ("Deletion", pd.concat([_curve("layer_cam/cam"), _curve("random")])),
            ("Insertion", _curve("time_aligned")),
        ],
        ["a", "b"],
        "y",
        x_percent=True,
    ),
    "curves-one-panel": lambda: plots.curves_plot(
        [("P", _curve("lrp_epsilon"))], "x", "y", y_percent=True
    ),
    "det": lambda: det_plot(_det(), ["vox1-o"]),
    "det-perfect": lambda: det_plot(_det().assign(y=0.0)),
    "profile-hz": lambda: plots.frequency_profile_plot(PROFILES, HZ),
    "profile-mfcc": lambda: plots.frequency_profile_plot(PROFILES, None),
    "bands": lambda: band_plot(band_shares(PROFILES, HZ)),
    "embedding": lambda: embedding_plot(
        np.random.default_rng(0).normal(size=(30, 2)),
        [f"s{i % 12}" for i in range(30)],
        ["m", "f", ""] * 10,
        "PCA",
    ),
    "training": lambda: training_plot(
        {"ecapa": pd.DataFrame({"epoch": [1, 2], "loss": [2.0, 1.0], "accuracy": [0.5, 0.7]})}
    ),
}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
def test_plot_is_a_valid_png(name: str) -> None:
    img = _decoded(CASES[name]())
    assert 300 <= img.width <= 1200 and 150 <= img.height <= 2000


def test_single_panel_figure_fills_the_report_width() -> None:
    img = _decoded(CASES["profile-hz"]())
    assert img.width == round(plots.WIDTH_IN * plots.DPI)


def test_projection_separates_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16)) * 5
    x = np.concatenate([c + rng.normal(size=(10, 16)) * 0.1 for c in centres])
    for method in ("pca", "tsne"):
        xy = project_2d(x, method, seed=0)
        assert xy.shape == (30, 2)
        within = np.mean(
            [
                np.linalg.norm(
                    xy[i * 10 : (i + 1) * 10] - xy[i * 10 : (i + 1) * 10].mean(0), axis=1
                ).mean()
                for i in range(3)
            ]
        )
        between = np.linalg.norm(xy[:10].mean(0) - xy[10:20].mean(0))
        assert between > 3 * within, method
    with pytest.raises(ValueError, match="at least 3"):
        project_2d(x[:2], "pca")
