"""The attribution rows per call come from memory measured on the model: the bytes autograd
saves per row and frame equal a hand count, and the rows that fit follow the budget."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from voxray.config import AttributionConfig
from voxray.models.ecapa_tdnn import EcapaTdnn
from voxray.pipeline.batch_memory import bytes_per_row_frame, rows_that_fit, saved_bytes


def test_bytes_per_row_frame_is_the_hand_count() -> None:
    # Linear saves its input (80 floats a frame) for the weight gradient, Tanh its output (16)
    model = nn.Sequential(nn.Linear(80, 16), nn.Tanh())
    assert bytes_per_row_frame(model, 80, "cpu", frames=50) == (80 + 16) * 4


def test_ecapa_rows_scale_linearly() -> None:
    torch.manual_seed(0)
    model = EcapaTdnn(input_dim=80, channels=32, embedding_dim=16).eval()
    per = bytes_per_row_frame(model, 80, "cpu", frames=60)
    one = saved_bytes(model, torch.zeros(1, 60, 80))
    five = saved_bytes(model, torch.zeros(5, 60, 80))
    assert five - one == int(round(4 * 60 * per))


def test_rows_that_fit() -> None:
    # 1 MB a row-frame, 300 frames: 300 MB a row; 1 GB fits 3 rows, capped by the upper bound
    assert rows_that_fit(1e9, 1e6, 300, 64) == 3
    assert rows_that_fit(1e12, 1e6, 300, 64) == 64
    assert rows_that_fit(1.0, 1e6, 300, 64) == 1  # never below one row


def test_memory_fraction_is_validated() -> None:
    with pytest.raises(ValueError, match="memory_fraction"):
        AttributionConfig(memory_fraction=0.0)
