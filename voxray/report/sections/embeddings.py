"""The embedding space: the base model's embeddings projected to 2-D by PCA and t-SNE (as in
Lehmann & Stadelmann 2020 and Tai et al. 2020), coloured by speaker and by gender."""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import pandas as pd

from voxray.report.html import Image, Section
from voxray.report.plots import figure, legend, styled, to_png
from voxray.report.sections.base import ReportContext, missing, section

TITLE = "Embedding space: PCA and t-SNE"
#: what the reader is looking at (formatted with the run's config as ``cfg``).
INTRO = (
    "The base model's whole-utterance embeddings of clean data (at most "
    "{cfg.report.max_points} utterances, length-normalised) projected to 2-D, coloured by "
    "speaker (the ten with the most utterances; others grey) and by gender."
)


def project_2d(x: np.ndarray, method: Literal["pca", "tsne"], seed: int = 0) -> np.ndarray:
    """Project embeddings ``(N, D)`` to ``(N, 2)``.

    Embeddings are length-normalised first (the scorers compare angles). t-SNE uses a
    perplexity below N / 3 so that small runs (a few dozen utterances) still project, and
    starts from the PCA layout so the result is reproducible for a seed.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"need at least 3 embeddings of shape (N, D) to project; got {x.shape}")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(x)
    if method == "tsne":
        perplexity = float(min(30.0, max(1.0, (x.shape[0] - 1) / 3.0)))
        return TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed
        ).fit_transform(x)
    raise ValueError(f"unknown projection {method!r}: use 'pca' or 'tsne'")


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
    fig, axes = figure(1, 2, height_in=3.5)
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
    legend(ax, outside=True)
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
    legend(ax, outside=True)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color("0.85")
    return to_png(fig)


@section("embeddings", TITLE, INTRO, order=140)
def embeddings(ctx: ReportContext, s: Section) -> None:
    e = ctx.out.embeddings
    if e is None or len(e) < 3:
        s.blocks.append(missing("fewer than 3 clean whole-utterance embeddings of the base model"))
        return
    x = np.stack(e["embedding"].to_list())
    methods = ["pca", "tsne"] if ctx.cfg.report.tsne else ["pca"]
    for method in methods:
        xy = project_2d(x, method, seed=ctx.cfg.seed)
        name = "PCA" if method == "pca" else "t-SNE"
        s.blocks.append(
            Image(
                embedding_plot(xy, list(e["speaker_id"]), list(e["gender"]), name),
                f"{name} of the embeddings by speaker and by gender",
            )
        )
