"""Every figure function returns a decodable PNG of a sensible size, for typical and edge inputs,
and draws what its data says: the Figure each function encodes is captured before it is saved
and its artists checked (lines' x/y data, bar heights, scatter points, colours, labels), and
one PNG is read back to find the colours where the data puts them."""

from __future__ import annotations

import io

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from PIL import Image as PILImage
from scipy.stats import norm

from voxray.report import plots
from voxray.report.names import method_pathway_name
from voxray.report.profiles import VOICE_REGIONS
from voxray.report.sections.embeddings import embedding_plot, project_2d
from voxray.report.sections.frequency import band_plot, band_shares
from voxray.report.sections.training import training_plot
from voxray.report.sections.tune import sweep_plot
from voxray.report.sections.verification import DET_TICKS, det_plot


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


# --------------------------------------------------------------------------- what is drawn


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """The Figures the plot functions encode, captured as ``to_png`` receives them."""
    figures: list[Figure] = []
    encode = plots.to_png

    def capture(fig: Figure) -> bytes:
        figures.append(fig)
        return encode(fig)

    from voxray.report import sections

    # every module that encodes a figure: plots itself and the sections that import to_png
    for module in (plots, *(getattr(sections, m) for m in dir(sections))):
        if getattr(module, "to_png", None) is encode:
            monkeypatch.setattr(module, "to_png", capture)
    return figures


def _visible_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_visible()]


def _same_colour(a: object, b: object) -> bool:
    return np.allclose(to_rgba(a), to_rgba(b))


def test_curves_draw_each_method_scaled_with_references_last(drawn: list[Figure]) -> None:
    CASES["curves"]()
    deletion, insertion = _visible_axes(drawn[0])
    assert (deletion.get_title(), deletion.get_xlabel(), deletion.get_ylabel()) == (
        "Deletion",
        "a",
        "y",
    )
    assert (insertion.get_title(), insertion.get_xlabel()) == ("Insertion", "b")
    method, random = deletion.get_lines()
    x = np.linspace(0, 1, 6)
    np.testing.assert_allclose(method.get_xdata(), 100 * x)  # x_percent
    np.testing.assert_allclose(method.get_ydata(), np.exp(-3 * x))  # y left as fractions
    assert method.get_label() == method_pathway_name("layer_cam/cam")
    assert _same_colour(method.get_color(), "C0") and method.get_linestyle() == "-"
    assert _same_colour(random.get_color(), "0.45") and random.get_linestyle() == "--"
    (aligned,) = insertion.get_lines()
    assert _same_colour(aligned.get_color(), "black") and aligned.get_linestyle() == ":"
    assert [t.get_text() for t in deletion.get_legend().get_texts()] == [
        method.get_label(),
        random.get_label(),
    ]
    drawn.clear()
    CASES["curves-one-panel"]()
    (ax,) = _visible_axes(drawn[0])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 100 * np.exp(-3 * x))  # y_percent


def test_det_curves_are_on_probit_axes_clipped_to_the_plotted_range(drawn: list[Figure]) -> None:
    CASES["det"]()
    (ax,) = _visible_axes(drawn[0])
    assert ax.get_title() == "DET: vox1-o"
    curve, diagonal = ax.get_lines()
    fpr = np.linspace(1.0, 0.0, 50)
    lo = DET_TICKS[0] / 2
    np.testing.assert_allclose(curve.get_xdata(), norm.ppf(np.clip(fpr, lo, 1 - 1e-6)))
    np.testing.assert_allclose(curve.get_ydata(), norm.ppf(np.clip(1 - fpr, lo, 1 - 1e-6)))
    assert curve.get_label() == "ecapa, None (clean)"
    np.testing.assert_allclose(ax.get_xlim(), norm.ppf([0.001, 0.4]))
    np.testing.assert_allclose(diagonal.get_xdata(), diagonal.get_ydata())
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "0.1", "0.5", "1", "2", "5", "10", "20", "40"
    ]  # fmt: skip
    drawn.clear()
    CASES["det-perfect"]()
    (ax,) = _visible_axes(drawn[0])
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), norm.ppf(lo))  # no miss at all


@pytest.mark.parametrize("axis", ["hz", "mfcc"])
def test_frequency_profiles_follow_their_bins(drawn: list[Figure], axis: str) -> None:
    CASES[f"profile-{axis}"]()
    (ax,) = _visible_axes(drawn[0])
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {method_pathway_name(m) for m in PROFILES}
    for label, profile in PROFILES.items():
        line = lines[method_pathway_name(label)]
        np.testing.assert_allclose(line.get_xdata(), HZ if axis == "hz" else np.arange(20))
        np.testing.assert_allclose(line.get_ydata(), profile)
    # the voice regions are shaded, at their frequencies, only on a Hz axis
    spans = [p for p in ax.patches if p.get_x() > 0]
    if axis == "hz":
        assert ax.get_xscale() == "log"
        got = sorted((p.get_x(), p.get_x() + p.get_width()) for p in spans)
        assert got == sorted((lo, hi) for _, lo, hi in VOICE_REGIONS)
        assert [t.get_text() for t in ax.texts] == [name for name, _, _ in VOICE_REGIONS]
    else:
        assert ax.get_xscale() == "linear" and not ax.texts


def test_band_bars_are_each_methods_share_and_the_uniform_tick(drawn: list[Figure]) -> None:
    shares = band_shares(PROFILES, HZ)
    CASES["bands"]()
    (ax,) = _visible_axes(drawn[0])
    methods = [m for m in shares.index if m != "uniform"]
    bands = list(shares.columns)
    assert [t.get_text() for t in ax.get_xticklabels()] == bands
    for i, m in enumerate(methods):
        bars = ax.containers[i]
        assert bars.get_label() == method_pathway_name(m)
        heights = [b.get_height() for b in bars]
        np.testing.assert_allclose(heights, 100 * shares.loc[m].to_numpy())
        assert all(_same_colour(b.get_facecolor(), f"C{i}") for b in bars)
    (uniform,) = ax.collections
    np.testing.assert_allclose(uniform.get_offsets()[:, 1], 100 * shares.loc["uniform"])
    np.testing.assert_allclose(uniform.get_offsets()[:, 0], np.arange(len(bands)))


def test_embedding_colours_the_top_speakers_and_each_gender(drawn: list[Figure]) -> None:
    xy = np.random.default_rng(0).normal(size=(30, 2))
    speakers = [f"s{i % 12}" for i in range(30)]
    CASES["embedding"]()
    by_speaker, by_gender = _visible_axes(drawn[0])
    groups = {c.get_label(): c for c in by_speaker.collections}
    # s0..s5 hold 3 points, s6..s11 2: the ten most frequent, ties by name, then the others
    top = ["s0", "s1", "s2", "s3", "s4", "s5", "s10", "s11", "s6", "s7"]
    assert list(groups) == ["other speakers", *top]
    others = groups["other speakers"]
    np.testing.assert_allclose(others.get_offsets(), xy[[8, 9, 20, 21]])
    assert _same_colour(others.get_facecolor()[0], "0.8")
    for i, s in enumerate(top):
        idx = [k for k, sp in enumerate(speakers) if sp == s]
        np.testing.assert_allclose(groups[s].get_offsets(), xy[idx])
        assert _same_colour(groups[s].get_facecolor()[0], f"C{i}")
    genders = {c.get_label(): c for c in by_gender.collections}
    assert list(genders) == ["f", "m", "unknown"]
    colours = {"m": "#1f77b4", "f": "#d62728", "unknown": "0.7"}
    for k, (g, c) in enumerate(genders.items()):
        np.testing.assert_allclose(c.get_offsets(), xy[[1, 0, 2][k] :: 3])
        assert _same_colour(c.get_facecolor()[0], colours[g])


def test_training_plots_loss_and_accuracy_per_epoch(drawn: list[Figure]) -> None:
    CASES["training"]()
    loss, accuracy = _visible_axes(drawn[0])
    (ll,) = loss.get_lines()
    (al,) = accuracy.get_lines()
    np.testing.assert_allclose(ll.get_xdata(), [1, 2])
    np.testing.assert_allclose(ll.get_ydata(), [2.0, 1.0])
    np.testing.assert_allclose(al.get_ydata(), [50.0, 70.0])  # accuracy in %
    assert (loss.get_title(), accuracy.get_title()) == ("Loss", "Training accuracy (%)")
    assert ll.get_label() == al.get_label() == "ecapa"


def test_training_plot_draws_the_validation_loss_dashed_under_early_stopping(
    drawn: list[Figure],
) -> None:
    history = pd.DataFrame(
        {"epoch": [1, 2, 3], "loss": [2.0, 1.0, 0.5], "accuracy": [0.5, 0.7, 0.8]}
    )
    training_plot({"bilstm": history.assign(val_loss=[1.5, 1.2, 1.3])})
    train, val = _visible_axes(drawn[0])[0].get_lines()
    np.testing.assert_allclose(val.get_ydata(), [1.5, 1.2, 1.3])
    assert (train.get_linestyle(), val.get_linestyle()) == ("-", "--")
    assert val.get_color() == train.get_color()


def test_sweep_plots_eer_against_kept_bins_with_hollow_random_references(
    drawn: list[Figure],
) -> None:
    points = pd.DataFrame(
        {
            "method": ["saliency", "saliency", "layer_cam"],
            "kept_fraction": [0.2, 0.1, 0.1],
            "eer": [0.12, 0.15, 0.3],
            "eer_random": [0.2, 0.25, np.nan],
        }
    )
    png = sweep_plot(points)
    assert abs(_decoded(png).width - plots.WIDTH_IN * 0.7 * plots.DPI) <= 1
    (ax,) = _visible_axes(drawn[0])
    cam, sal, sal_random, legend_only = ax.get_lines()
    np.testing.assert_allclose(cam.get_xydata(), [[10, 30]])
    np.testing.assert_allclose(sal.get_xydata(), [[10, 15], [20, 12]])  # sorted by kept fraction
    np.testing.assert_allclose(sal_random.get_xydata(), [[10, 25], [20, 20]])
    assert sal_random.get_markerfacecolor() == "none" and sal_random.get_linestyle() == "--"
    assert _same_colour(sal.get_color(), "C1") and _same_colour(sal_random.get_color(), "C1")
    assert len(legend_only.get_xdata()) == 0


def test_band_png_shows_each_bar_colour_where_its_bar_stands() -> None:
    """The encoded pixels: a one-method band plot, read back, has the bar's colour in the
    column of each band, up to a height that grows with its share."""
    shares = pd.DataFrame({"low": [0.7, 0.5], "high": [0.3, 0.5]}, index=["saliency", "uniform"])
    img = matplotlib.image.imread(io.BytesIO(band_plot(shares)), format="png")[..., :3]
    c0 = np.array(to_rgba("C0")[:3])
    is_bar = np.abs(img - c0).max(axis=2) < 0.02
    columns = np.flatnonzero(is_bar.any(axis=0))
    assert columns.size > 0
    # two bars, left to right: split at the widest gap of bar-coloured columns
    split = int(np.argmax(np.diff(columns)))
    low, high = columns[: split + 1], columns[split + 1 :]
    assert low.size and high.size and low.max() < high.min()
    # from the bar's top to its base (the black uniform tick crosses the taller bar)
    rows = [np.flatnonzero(is_bar[:, int(np.median(c))]) for c in (low, high)]
    height = [r.max() - r.min() + 1 for r in rows]
    assert height[0] / height[1] == pytest.approx(0.7 / 0.3, rel=0.05)
