"""AlexNet of Sarvaš 2021 on 200 x 80 fbank crops: sizes and parameters by hand, layers, lengths."""

from __future__ import annotations

import pytest
import torch

from tests.support.layers import layer_shapes
from voxray.models.alexnet import AlexNet
from voxray.models.base import count_parameters


def test_parameters_by_hand_for_200x80_crops() -> None:
    # freq 80 -> conv1 (84-11)//4+1 = 19 -> pool 9 -> conv2 9 -> pool 4 -> conv3..5 4 -> pool 1
    # time 200 -> conv1 (204-11)//4+1 = 49 -> pool 24 -> conv2 24 -> pool 11 -> 11 -> pool 5
    convs = (96 * 121 + 96) + (256 * 96 * 25 + 256) + (384 * 256 * 9 + 384)
    convs += (384 * 384 * 9 + 384) + (256 * 384 * 9 + 256)
    fcs = (256 * 1 * 5 * 1024 + 1024) + (1024 * 1024 + 1024)
    assert count_parameters(AlexNet(80, 1024, 200)) == convs + fcs


def test_layers_and_shapes() -> None:
    model = AlexNet(80, 64, 200).eval()
    emb, seen = layer_shapes(model, torch.randn(2, 200, 80))
    assert seen == {
        "conv1": (2, 96, 9, 24),
        "conv2": (2, 256, 4, 11),
        "conv3": (2, 384, 4, 11),
        "conv4": (2, 384, 4, 11),
        "conv5": (2, 256, 1, 5),
        "fc1": (2, 64),
        "fc2": (2, 64),
    }
    assert list(seen) == list(model.layers())
    assert emb.shape == (2, 64) and bool((emb >= 0).all())  # the ReLU'd penultimate layer


def test_other_lengths_and_minimum() -> None:
    model = AlexNet(80, 32, 200).eval()
    assert model.min_frames == 63  # conv5's pool needs 3 columns: 63 is the smallest T giving them
    with torch.no_grad():
        assert model(torch.randn(1, 63, 80)).shape == (1, 32)
        assert model(torch.randn(1, 317, 80)).shape == (1, 32)
    with pytest.raises(ValueError, match="at least 63 frames"):
        model(torch.randn(1, 62, 80))
    with pytest.raises(ValueError, match="input_dim=40"):
        AlexNet(40, 32, 200)
