"""Lehmann & Stadelmann 2020 section 4.2 / Fig. 2: the BiLSTM's test EER per LSTM width.

A trial trains one width from scratch on the training speakers (the run's head, optimiser
settings and training segment length) with section 3.3's early stopping on a held-out
validation split, restores the best epoch's weights and scores the test trials by the cosine
of whole-utterance embeddings, with the EER's speaker-bootstrap interval. It reports the
validation loss every epoch and the EER (``voxray.train.sweep_eval``) at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
import torch

from voxray.config import ModelConfig, TrainConfig, WidthSweepConfig
from voxray.config.evaluation import IntervalConfig
from voxray.eval.scoring import score_trials
from voxray.models import build_classifier
from voxray.models.base import SpeakerClassifier
from voxray.train.data import loop_crop, random_start
from voxray.train.early_stop import EarlyStopping
from voxray.train.sweep_eval import SweepTest, eer_report

Report = Callable[[dict[str, Any]], None]


@dataclass
class WidthData:
    """What every width trial needs, shipped once through the object store."""

    model_cfg: ModelConfig
    input_dim: int
    #: training utterance -> class index; ``val_ids`` of them are held out for validation.
    train_feats: dict[str, np.ndarray]
    train_labels: dict[str, int]
    val_ids: list[str]
    segment_frames: int
    test: SweepTest


def width_classifier(data: WidthData, width: int) -> SpeakerClassifier:
    """The run's BiLSTM at LSTM width ``width``: the embedding is lstm2's 2 x width output."""
    cfg = replace(data.model_cfg, channels=width, embedding_dim=2 * width)
    return build_classifier(cfg, data.input_dim, len(set(data.train_labels.values())))


def _batch(
    data: WidthData, utts: list[str], rng: np.random.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of ``utts`` (random starts, or the first frames without ``rng``) and labels."""
    n = data.segment_frames
    crops = [
        loop_crop(m, random_start(m.shape[0], n, rng) if rng else 0, n)
        for m in (data.train_feats[u] for u in utts)
    ]
    labels = torch.tensor([data.train_labels[u] for u in utts])
    return torch.from_numpy(np.stack(crops).astype(np.float32)), labels


def _epoch(
    model: SpeakerClassifier,
    opt: torch.optim.Optimizer,
    data: WidthData,
    train_ids: list[str],
    batch_size: int,
    rng: np.random.Generator,
) -> None:
    model.train()
    order = rng.permutation(len(train_ids))
    for start in range(0, len(order), batch_size):
        xb, yb = _batch(data, [train_ids[i] for i in order[start : start + batch_size]], rng)
        loss, _ = model.loss(xb, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()


@torch.inference_mode()
def validation_loss(model: SpeakerClassifier, data: WidthData, batch_size: int) -> float:
    """The mean margin loss on the validation utterances' first-segment crops."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(data.val_ids), batch_size):
        xb, yb = _batch(data, data.val_ids[start : start + batch_size], None)
        loss, _ = model.loss(xb, yb)
        total += float(loss) * len(yb)
        count += len(yb)
    return total / max(count, 1)


def train_width(
    width: int,
    data: WidthData,
    sweep: WidthSweepConfig,
    train: TrainConfig,
    report: Report,
) -> tuple[SpeakerClassifier, EarlyStopping]:
    """Train one width with early stopping; returns the model at its best epoch."""
    torch.manual_seed(train.seed)
    rng = np.random.default_rng(train.seed)
    model = width_classifier(data, width)
    opt = torch.optim.Adam(model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    held = set(data.val_ids)
    train_ids = sorted(u for u in data.train_feats if u not in held)
    stopper = EarlyStopping(sweep.patience)
    for epoch in range(1, sweep.max_epochs + 1):
        _epoch(model, opt, data, train_ids, train.batch_size, rng)
        loss = validation_loss(model, data, train.batch_size)
        stop = stopper.update(epoch, loss, model)
        report({"epoch": epoch, "val_loss": loss})
        if stop:
            break
    model.load_state_dict(stopper.best_state)
    return model.eval(), stopper


@torch.inference_mode()
def test_scores(model: SpeakerClassifier, test: SweepTest) -> np.ndarray:
    """Cosine scores of the test trials from whole-utterance embeddings."""
    emb = {
        u: model.embed(torch.from_numpy(x)[None]).float().numpy()[0] for u, x in test.feats.items()
    }
    return score_trials(test.trials, emb)


def width_trial(
    config: dict[str, Any],
    data: WidthData,
    sweep: WidthSweepConfig,
    train: TrainConfig,
    intervals: IntervalConfig,
    report: Report | None = None,
) -> dict[str, Any]:
    """The Tune trainable (``config["width"]``); ``report`` is ``ray.tune.report`` unless
    given. Returns the last report: the EER with its interval and the epochs it trained."""
    if report is None:
        from ray import tune

        report = tune.report
    width = int(config["width"])
    model, stopper = train_width(width, data, sweep, train, report)
    final = {
        "epoch": stopper.best_epoch + stopper.stale,
        "best_epoch": stopper.best_epoch,
        "val_loss": stopper.best,
        **eer_report("cosine", test_scores(model, data.test), data.test, intervals),
    }
    report(final)
    return final
