"""Deletion / insertion (Li et al. 2022) and pixel flipping (Sarvaš 2021) on synthetic scorers whose
output depends on a known set of bins, so the oracle saliency and the expected curves are exact."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor

from voxray.eval.faithfulness import (
    cosine_score,
    deletion_curve,
    insertion_curve,
    masking_curves,
    pixel_flipping,
    probability_score,
    top1_score,
    trapezoid_auc,
)

B, T, F = 3, 20, 10  # 200 bins per item


def _key_bins(rng: np.random.Generator, fraction: float) -> np.ndarray:
    key = np.zeros((T, F), dtype=bool)
    key.flat[rng.choice(T * F, int(round(fraction * T * F)), replace=False)] = True
    return key


class KeyScore:
    """Fraction of the key bins still present (non-zero); counts its calls and rows."""

    def __init__(self, key: np.ndarray) -> None:
        self.key = torch.from_numpy(key)
        self.calls: list[int] = []

    def __call__(self, feats: Tensor, items: Tensor) -> Tensor:
        self.calls.append(len(feats))
        return (feats[:, self.key] != 0).double().mean(dim=1)


@pytest.fixture
def batch(rng: np.random.Generator) -> tuple[Tensor, np.ndarray, Tensor]:
    feats = torch.from_numpy(1.0 + rng.random((B, T, F))).float()  # no zeros in the input
    key = _key_bins(rng, 0.1)
    oracle = np.broadcast_to(key, (B, T, F)) + 0.01 * rng.random((B, T, F))
    return feats, key, torch.from_numpy(oracle).float()


def test_oracle_deletion_and_insertion_are_exact(batch) -> None:
    feats, key, oracle = batch
    score = KeyScore(key)
    curves = masking_curves(feats, oracle, score, steps=10)
    np.testing.assert_allclose(curves["deletion"].scores, [1.0] + [0.0] * 10)
    np.testing.assert_allclose(curves["insertion"].scores, [0.0] + [1.0] * 10)
    assert curves["deletion"].auc == pytest.approx(0.05)
    assert curves["insertion"].auc == pytest.approx(0.95)
    assert score.calls == [2 * B * 11]  # every variant of the batch in one call


def test_oracle_beats_random_and_time_aligned(batch) -> None:
    feats, key, oracle = batch
    score = KeyScore(key)
    ref = {
        o: masking_curves(feats, None, score, steps=10, order=o, seed=3)
        for o in ("random", "time_aligned")
    }
    ours = masking_curves(feats, oracle, score, steps=10)
    for o, curves in ref.items():
        assert ours["deletion"].auc < curves["deletion"].auc - 0.3, o
        assert ours["insertion"].auc > curves["insertion"].auc + 0.3, o
    # random deletion removes key bins in proportion: about 1 - fraction
    expected = 1 - np.linspace(0, 1, 11)
    np.testing.assert_allclose(ref["random"]["deletion"].scores, expected, atol=0.12)


def test_random_order_is_seeded(batch) -> None:
    feats, key, _ = batch
    a = deletion_curve(feats, None, KeyScore(key), steps=10, order="random", seed=5)
    b = deletion_curve(feats, None, KeyScore(key), steps=10, order="random", seed=5)
    c = deletion_curve(feats, None, KeyScore(key), steps=10, order="random", seed=6)
    np.testing.assert_array_equal(a.per_item, b.per_item)
    assert not np.array_equal(a.per_item, c.per_item)


class Recorder:
    def __init__(self) -> None:
        self.rows: list[Tensor] = []
        self.items: list[Tensor] = []

    def __call__(self, feats: Tensor, items: Tensor) -> Tensor:
        self.rows.append(feats.clone())
        self.items.append(items.clone())
        return (feats != 0).double().mean(dim=(1, 2)) * (items.double() + 1)


def test_time_aligned_masks_whole_frames_left_to_right() -> None:
    feats = torch.ones(1, 10, 4)
    rec = Recorder()
    deletion_curve(feats, None, rec, steps=5, order="time_aligned")
    rows = rec.rows[0]
    assert rows.shape == (6, 10, 4)
    for s in range(6):
        expected = torch.ones(10, 4)
        expected[: 2 * s] = 0
        assert torch.equal(rows[s], expected), s
    rec = Recorder()
    insertion_curve(torch.ones(1, 7, 3), None, rec, steps=2, order="time_aligned")
    # half of 7 frames rounds up to 4 whole frames
    assert rec.rows[0][1].sum(dim=1).tolist() == [3.0] * 4 + [0.0] * 3


def test_vad_removes_non_speech_and_keeps_items_apart() -> None:
    feats = torch.arange(1, 2 * 6 * 2 + 1, dtype=torch.float32).reshape(2, 6, 2)
    speech = torch.tensor([[1, 1, 0, 0, 1, 1], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    maps = torch.zeros(2, 6, 2)
    maps[0, 2] = 100.0  # the most salient bins are in non-speech frames: ignored
    maps[0, 4, 1] = 5.0
    maps[1, 2, 0] = 5.0
    rec = Recorder()
    curve = deletion_curve(feats, maps, rec, steps=2, speech=speech)
    shapes = sorted(tuple(r.shape) for r in rec.rows)
    assert shapes == [(3, 3, 2), (3, 4, 2)]  # item 1 keeps 3 frames, item 0 keeps 4
    first = next(r for r, i in zip(rec.rows, rec.items, strict=True) if i[0] == 0)
    assert torch.equal(first[0], feats[0][speech[0]])
    half = first[1]
    assert (half == 0).sum() == 4 and half[2, 1] == 0  # the top speech bin goes first
    # scores are scaled by item + 1: the per-item rows come back to the right item
    np.testing.assert_allclose(curve.per_item, [[1.0, 0.5, 0.0], [2.0, 1.0, 0.0]])


def test_pixel_flipping_oracle_drops_faster_than_random(rng: np.random.Generator) -> None:
    t, f = 40, 50  # 2000 bins; 20 key bins = 1%
    feats = torch.from_numpy(1.0 + rng.random((2, t, f))).float()
    key = np.zeros((t, f), dtype=bool)
    key.flat[rng.choice(t * f, 20, replace=False)] = True
    relevance = np.where(key, 1.0 + rng.random((2, t, f)), -rng.random((2, t, f)))
    score = KeyScore(key)
    fractions = (0.0, 0.001, 0.0025, 0.005, 0.01)
    lrp = pixel_flipping(feats, relevance, score, fractions)
    rnd = pixel_flipping(feats, None, score, fractions, order="random", seed=1)
    np.testing.assert_allclose(lrp.scores, [1.0, 0.9, 0.75, 0.5, 0.0])
    assert (rnd.scores > 0.9).all()
    # only positive relevance is flipped: an all-negative map flips nothing
    untouched = pixel_flipping(feats, -np.abs(relevance), score, fractions)
    np.testing.assert_allclose(untouched.scores, 1.0)


class KeyClassifier(torch.nn.Module):
    """Logits (N, 2): class 0 = mean of the key bins, class 1 = a fixed bar of 1.2."""

    def __init__(self, key: np.ndarray) -> None:
        super().__init__()
        self.key = torch.from_numpy(key)

    def forward(self, x: Tensor) -> Tensor:
        k = x[:, self.key].mean(dim=1)
        return torch.stack([k, torch.full_like(k, 1.2)], dim=1)


def test_model_score_functions(batch) -> None:
    feats, key, oracle = batch
    model = KeyClassifier(key)
    targets = torch.tensor([0, 0, 1])
    items = torch.tensor([0, 1, 2, 2])
    rows = torch.cat([feats, feats[2:]])
    rows[3] = 0
    logits = model(rows)
    np.testing.assert_array_equal(
        top1_score(model, targets)(rows, items).numpy(),
        (logits.argmax(1) == targets[items]).numpy(),
    )
    p = torch.softmax(logits.double(), 1)
    np.testing.assert_allclose(
        probability_score(model, targets)(rows, items).numpy(),
        p[torch.arange(4), targets[items]].numpy(),
        rtol=1e-12,
    )
    embed = torch.nn.Flatten()
    cos = cosine_score(embed, embed(feats))(rows, items).numpy()
    np.testing.assert_allclose(cos[:3], 1.0, rtol=1e-6)
    assert cos[3] == 0.0
    # items 0 and 1 target the key class, the oracle destroys it at the first step
    curve = deletion_curve(feats, oracle, top1_score(model, targets), steps=10)
    np.testing.assert_allclose(curve.per_item[:2, 1:], 0.0)
    assert curve.per_item[:2, 0].tolist() == [1.0, 1.0]


def test_max_rows_chunks_calls(batch) -> None:
    feats, key, oracle = batch
    score = KeyScore(key)
    a = masking_curves(feats, oracle, score, steps=4, max_rows=7)
    assert score.calls == [7, 7, 7, 7, 2]  # 3 items x 2 modes x 5 steps = 30 rows
    b = masking_curves(feats, oracle, KeyScore(key), steps=4)
    np.testing.assert_array_equal(a["deletion"].per_item, b["deletion"].per_item)


def test_trapezoid_auc() -> None:
    assert trapezoid_auc([0, 0.5, 1], [1, 0, 0]) == pytest.approx(0.25)
    assert trapezoid_auc([0, 0.001, 0.01], [1, 1, 0]) == pytest.approx(0.001 + 0.0045)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(maps=None), "needs maps"),
        (dict(maps=torch.zeros(B, T, F + 1)), "shape"),
        (dict(order="backwards"), "unknown order"),
        (dict(steps=0), "steps"),
        (dict(speech=torch.zeros(B, T, dtype=torch.bool)), "no speech frames"),
        (dict(speech=torch.ones(B, T + 1, dtype=torch.bool)), "speech mask"),
        (dict(modes=("erase",)), "modes"),
    ],
    ids=["no-maps", "maps-shape", "order", "steps", "empty-speech", "speech-shape", "modes"],
)
def test_bad_input_is_named(batch, kwargs: dict, message: str) -> None:
    feats, key, oracle = batch
    args = dict(maps=oracle) | kwargs
    maps = args.pop("maps")
    with pytest.raises(ValueError, match=message):
        masking_curves(feats, maps, KeyScore(key), **args)


def test_score_fn_must_return_one_score_per_row(batch) -> None:
    feats, _, oracle = batch
    with pytest.raises(ValueError, match="one score per row"):
        deletion_curve(feats, oracle, lambda x, i: x.sum(), steps=2)
