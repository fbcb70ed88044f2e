"""Top-1 / Top-k identification accuracy against scikit-learn and hand cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import top_k_accuracy_score

from voxray.eval.identification import top1_accuracy, topk_accuracy


@pytest.mark.parametrize("k", [1, 3, 5], ids=["top1", "top3", "top5"])
def test_topk_matches_sklearn(rng, k):
    scores = rng.normal(size=(200, 12))
    labels = rng.integers(0, 12, size=200)
    scores[np.arange(100), labels[:100]] += 1.5  # half the examples lean to their label
    expected = top_k_accuracy_score(labels, scores, k=k, labels=np.arange(12))
    assert topk_accuracy(scores, labels, k) == pytest.approx(expected)


def test_top1_by_hand():
    scores = np.array([[0.1, 0.7, 0.2], [2.0, 1.0, 0.0], [0.3, 0.3, 0.1], [-1.0, -2.0, -0.5]])
    labels = np.array([1, 2, 1, 0])
    # example 2 ties its label with class 0: counted correct (no class strictly higher)
    assert top1_accuracy(scores, labels) == pytest.approx(2 / 4)
    assert topk_accuracy(scores, labels, 2) == pytest.approx(3 / 4)
    assert topk_accuracy(scores, labels, 3) == 1.0


def test_accepts_torch_logits():
    logits = torch.tensor([[0.0, 3.0], [1.0, -1.0], [0.5, 0.2]])
    assert top1_accuracy(logits, torch.tensor([1, 0, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("scores", "labels", "k", "message"),
    [
        (np.zeros((2, 3)), np.array([0, 3]), 1, "label 3 of example 1 is outside"),
        (np.zeros((2, 3)), np.array([0, 1]), 4, r"k must lie in \[1, 3\]"),
        (np.zeros((2, 3)), np.array([0, 1]), 0, r"k must lie in \[1, 3\]"),
        (np.zeros((2, 3)), np.array([0, 1, 2]), 1, r"\(2, 3\) and \(3,\)"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), 1, "integer class indices"),
        (np.array([[0.0, np.nan]]), np.array([0]), 1, "example 0 contain NaN"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), 1, "at least one example"),
    ],
    ids=["label-range", "k-big", "k-zero", "shapes", "float-labels", "nan", "empty"],
)
def test_bad_input_raises(scores, labels, k, message):
    with pytest.raises(ValueError, match=message):
        topk_accuracy(scores, labels, k)
