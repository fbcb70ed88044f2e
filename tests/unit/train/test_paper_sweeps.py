"""The 003 sweeps' trial functions without Ray (Lehmann & Stadelmann 2020, 4.2 / 4.3): a width
trial trains a tiny BiLSTM with early stopping and reports its EER with an interval; a
segment-length trial scores a frozen model per length; their reports become metrics/ rows."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from voxray.config import ModelConfig, SegmentSweepConfig, TrainConfig, WidthSweepConfig
from voxray.config.evaluation import IntervalConfig
from voxray.models import build_classifier
from voxray.train.data import validation_split
from voxray.train.early_stop import EarlyStopping
from voxray.train.segment_sweep import SegmentData, segment_embeddings, segment_trial
from voxray.train.sweep_eval import SweepTest, metric_rows
from voxray.train.width_sweep import WidthData, width_classifier, width_trial

FAST = IntervalConfig(resamples=100)
BILSTM = ModelConfig(arch="bilstm", channels=8, embedding_dim=16, bottleneck_dim=8)
DIM = 6


def _voices(rng: np.random.Generator, speakers: int, utts: int, prefix: str) -> dict:
    """Utterances whose frames scatter around a per-speaker centre (an easy task)."""
    feats = {}
    for s in range(speakers):
        centre = 2.0 * rng.standard_normal(DIM)
        for u in range(utts):
            frames = int(rng.integers(15, 40))
            x = centre + 0.5 * rng.standard_normal((frames, DIM))
            feats[f"{prefix}{s}/v/{u}"] = x.astype(np.float32)
    return feats


def _test(rng: np.random.Generator) -> SweepTest:
    feats = _voices(rng, 4, 3, "t")
    utts = sorted(feats)
    trials = [(int(a[:2] == b[:2]), a, b) for i, a in enumerate(utts) for b in utts[i + 1 :]]
    return SweepTest(feats, trials)


def _width_data(rng: np.random.Generator) -> WidthData:
    train = _voices(rng, 3, 5, "s")
    labels = {u: int(u[1]) for u in train}
    return WidthData(BILSTM, DIM, train, labels, validation_split(labels, 0.2, 0), 12, _test(rng))


def test_validation_split_holds_out_some_of_every_speaker() -> None:
    labels = {f"s{s}/v/{u}": s for s in range(3) for u in range(10)} | {"s9/v/0": 9}
    held = validation_split(labels, 0.2, seed=0)
    assert sorted({labels[u] for u in held}) == [0, 1, 2]  # the one-utterance speaker stays
    assert all(sum(labels[u] == s for u in held) == 2 for s in range(3))
    assert held == validation_split(labels, 0.2, seed=0)


def test_early_stopping_stops_after_patience_and_keeps_the_best_epoch() -> None:
    model = torch.nn.Linear(2, 1)
    stop = EarlyStopping(patience=2)
    decisions = []
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 1.9, 2.0, 2.1, 1.0], start=1):
        with torch.no_grad():
            model.bias.fill_(float(epoch))
        decisions.append(stop.update(epoch, loss, model))
    assert decisions == [False, False, False, False, False, True, False]
    assert stop.best_epoch == 7 and stop.best == 1.0  # the caller stops at epoch 6
    stop = EarlyStopping(patience=2)
    for epoch, loss in enumerate([3.0, 2.0, 2.5, 2.6], start=1):
        with torch.no_grad():
            model.bias.fill_(float(epoch))
        if stop.update(epoch, loss, model):
            break
    assert (stop.best_epoch, epoch, float(stop.best_state["bias"])) == (2, 4, 2.0)
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)


def test_width_trial_trains_one_width_with_early_stopping(rng: np.random.Generator) -> None:
    data = _width_data(rng)
    assert width_classifier(data, 12).embedder.channels == 12
    reports: list[dict] = []
    sweep = WidthSweepConfig(widths=(8,), max_epochs=6, patience=2)
    train = TrainConfig(batch_size=8, lr=0.01, weight_decay=0.0)
    final = width_trial({"width": 8}, data, sweep, train, FAST, report=reports.append)
    epochs = [r["epoch"] for r in reports[:-1]]
    assert epochs == list(range(1, len(epochs) + 1)) and final == reports[-1]
    assert final["best_epoch"] <= len(epochs) <= final["best_epoch"] + sweep.patience
    assert final["val_loss"] == min(r["val_loss"] for r in reports[:-1])
    # the trained model separates these speakers far better than chance (EER 0.5)
    assert final["ci_low.cosine"] <= final["eer.cosine"] <= final["ci_high.cosine"]
    assert final["eer.cosine"] < 0.25, final
    assert final["n.cosine"] == len(data.test.trials)


def test_segment_embeddings_cover_the_utterance_and_loop_short_ones() -> None:
    model = build_classifier(BILSTM, DIM, 3).eval()
    x = np.random.default_rng(0).standard_normal((50, DIM)).astype(np.float32)
    assert segment_embeddings(model, x, 20, 0.5).shape == (4, 16)  # starts 0, 10, 20, 30
    short = segment_embeddings(model, x[:7], 20, 0.5)
    assert short.shape == (1, 16)
    looped = torch.from_numpy(np.concatenate([x[:7]] * 3)[:20][None])
    np.testing.assert_allclose(short[0], model.embed(looped).detach().numpy()[0], rtol=1e-5)


def test_segment_trial_scores_each_scorer_at_one_length(rng: np.random.Generator) -> None:
    torch.manual_seed(0)
    model = build_classifier(BILSTM, DIM, 3)
    factory = functools.partial(build_classifier, BILSTM, DIM, 3)
    data = SegmentData(model.state_dict(), factory, _test(rng), frame_shift_ms=10.0)
    reports: list[dict] = []
    sweep = SegmentSweepConfig(scorers=("mean_cossim", "mean_dot"))
    out = segment_trial({"segment_s": 0.1}, data, sweep, FAST, report=reports.append)
    assert reports == [out] and out["segment_frames"] == 10
    for scorer in ("mean_cossim", "mean_dot"):
        assert 0.0 <= out[f"ci_low.{scorer}"] <= out[f"eer.{scorer}"] <= out[f"ci_high.{scorer}"]
        assert out[f"n.{scorer}"] == len(data.test.trials)
    only_cos = segment_trial(
        {"segment_s": 0.1}, data, SegmentSweepConfig(scorers=("mean_cossim",)), FAST, reports.append
    )
    assert only_cos["eer.mean_cossim"] == out["eer.mean_cossim"] and "eer.mean_dot" not in only_cos


def test_metric_rows_follow_the_metrics_layout() -> None:
    report = {"eer.cosine": 0.2, "ci_low.cosine": 0.1, "ci_high.cosine": 0.3, "n.cosine": 40.0}
    rows = metric_rows("bilstm", "lstm_width", "width", [(256, report), (64, report)])
    assert [r.condition for r in rows] == ["width=64", "width=256"]
    r = rows[0]
    assert (r.model, r.list, r.scorer, r.metric, r.value) == (
        "bilstm",
        "lstm_width",
        "cosine",
        "eer",
        0.2,
    )
    assert (r.ci_low, r.ci_high, r.n) == (0.1, 0.3, 40)
