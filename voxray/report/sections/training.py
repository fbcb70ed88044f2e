"""Training: final figures per trained model and the per-epoch loss and accuracy."""

from __future__ import annotations

from typing import Mapping

import pandas as pd
from matplotlib.ticker import MaxNLocator

from voxray.report.html import Image, Section
from voxray.report.metrics import empty_table, select_rows
from voxray.report.plots import figure, legend, styled, to_png
from voxray.report.sections.base import ReportContext, section, table_or_missing

TITLE = "Training"
INTRO = "Final training figures per model (metrics/) and the per-epoch history."


def training_table(metrics: pd.DataFrame | None) -> pd.DataFrame:
    """Per trained model: epochs trained, the epoch whose weights were kept (the best one under
    early stopping, else the last), final loss and training Top-1 (%), training seconds."""
    rows = select_rows(metrics, list="train")
    if rows.empty:
        return empty_table()
    wide = rows.pivot_table(index="model", columns="metric", values="value", aggfunc="last")
    wide = wide.reindex(
        columns=["train_epochs", "train_best_epoch", "train_loss", "train_top1", "train_seconds"]
    )
    out = pd.DataFrame(
        {
            "Epochs": wide["train_epochs"],
            "Kept epoch": wide["train_best_epoch"].fillna(wide["train_epochs"]),
            "Final loss": wide["train_loss"],
            "Train Top-1 (%)": 100 * wide["train_top1"],
            "Seconds": wide["train_seconds"],
        }
    )
    out.index.name = "Model"
    return out


@styled
def training_plot(histories: Mapping[str, pd.DataFrame]) -> bytes:
    """Loss and training accuracy (%) per epoch, one line per model; the validation loss
    (early stopping) dashed beside the training loss."""
    fig, axes = figure(1, 2, height_in=3.0)
    for i, (name, h) in enumerate(sorted(histories.items())):
        h = h.sort_values("epoch")
        if "loss" in h:
            axes[0, 0].plot(
                h["epoch"], h["loss"], marker="o", markersize=3, color=f"C{i % 10}", label=name
            )
        if "val_loss" in h and h["val_loss"].notna().any():
            axes[0, 0].plot(h["epoch"], h["val_loss"], linestyle="--", color=f"C{i % 10}")
        if "accuracy" in h:
            axes[0, 1].plot(
                h["epoch"],
                100 * h["accuracy"],
                marker="o",
                markersize=3,
                color=f"C{i % 10}",
                label=name,
            )
    for ax, what in zip(axes.flat, ("Loss", "Training accuracy (%)"), strict=False):
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(what)
        legend(ax)
    return to_png(fig)


@section("training", TITLE, INTRO, order=150)
def training(ctx: ReportContext, s: Section) -> None:
    t = training_table(ctx.out.metrics)
    s.blocks.append(table_or_missing(t, "no training metrics in metrics/"))
    if ctx.out.histories:
        s.blocks.append(
            Image(
                training_plot(ctx.out.histories),
                "training loss (validation loss dashed, under early stopping) and accuracy "
                "per epoch",
            )
        )
