"""A small in-process trainer for the evaluators' auxiliary models: the shuffled-label twin of
the sanity checks and the AlexNet gender classifier of Sarvaš 2021. They train on a few hundred
fixed-length crops already in memory, where a Ray Train run would cost more to start than
to train; the speaker models themselves train on Ray Train (voxray.train.trainer)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from voxray.models.base import SpeakerClassifier


def fit_classifier(
    model: SpeakerClassifier,
    feats: Tensor,
    labels: Tensor,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` on ``feats`` (N, T, F) / ``labels`` (N,) with Adam; returns the mean
    loss of each epoch. The model is left in eval mode."""
    if feats.shape[0] != labels.shape[0] or feats.shape[0] == 0:
        raise ValueError(f"fit_classifier: {feats.shape[0]} crops for {labels.shape[0]} labels")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(feats.shape[0], generator=gen)
        total, seen = 0.0, 0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two items
                continue
            loss, _ = model.loss(feats[idx], labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            seen += len(idx)
        losses.append(total / max(seen, 1))
    model.eval()
    return losses


@torch.inference_mode()
def accuracy(
    model: SpeakerClassifier, feats: Tensor, labels: Tensor, batch_size: int = 64
) -> float:
    """Top-1 accuracy of ``model`` on ``feats`` (N, T, F)."""
    model.eval()
    hits = [
        (model(feats[i : i + batch_size]).argmax(1) == labels[i : i + batch_size])
        .float()
        .sum()
        .item()
        for i in range(0, feats.shape[0], batch_size)
    ]
    return float(np.sum(hits) / max(feats.shape[0], 1))
