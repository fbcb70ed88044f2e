"""ResNet34SE against Li et al. 2022 Table 1: parameter count from the table, stage shapes, TSP, SE
algebra."""

from __future__ import annotations

import pytest
import torch

from tests.support.layers import layer_shapes
from voxray.models.base import count_parameters
from voxray.models.resnet_se import ResNet34SE, SEBasicBlock, TemporalStatsPool


def _table1_parameters(c: int, bins: int, emb: int) -> int:
    """Parameters of Table 1 counted by hand: 3x3 convs without bias + BN (2 per channel),
    SE with reduction 8 (two Linear layers with bias), 1x1 conv + BN shortcuts where the shape
    changes, TSP (no parameters) and the dense layer."""

    def block(cin: int, w: int, shortcut: bool) -> int:
        r = w // 8
        n = cin * w * 9 + 2 * w + w * w * 9 + 2 * w + (w * r + r) + (r * w + w)
        return n + (cin * w + 2 * w if shortcut else 0)

    total = 1 * c * 9 + 2 * c  # stem
    cin = c
    for w, blocks, stride in [(c, 3, 1), (2 * c, 4, 2), (4 * c, 6, 2), (8 * c, 3, 2)]:
        total += block(cin, w, stride != 1 or cin != w) + (blocks - 1) * block(w, w, False)
        cin = w
    return total + 2 * 8 * c * bins * emb + emb


@pytest.mark.parametrize(
    ("input_dim", "bins", "pooled"),
    [(80, 10, 5120), (64, 8, 4096)],
    ids=["fbank80-001", "fbank64-002"],
)
def test_parameters_and_pooled_size_follow_table1(input_dim: int, bins: int, pooled: int) -> None:
    model = ResNet34SE(input_dim, 32, 256)
    assert model.pooled_dim == pooled
    assert count_parameters(model) == _table1_parameters(32, bins, 256)


def test_stage_shapes_match_table1() -> None:
    model = ResNet34SE(80, 32, 256).eval()
    emb, seen = layer_shapes(model, torch.randn(2, 40, 80))
    assert list(seen) == ["S1", "S2", "S3", "S4", "pool", "fc"]
    # Table 1 with T = 40 instead of 200: 80x40x32, 40x20x64, 20x10x128, 10x5x256, 5120, 256
    assert seen == {
        "S1": (2, 32, 80, 40),
        "S2": (2, 64, 40, 20),
        "S3": (2, 128, 20, 10),
        "S4": (2, 256, 10, 5),
        "pool": (2, 5120),
        "fc": (2, 256),
    }
    assert emb.shape == (2, 256)


def test_odd_sizes_round_up_and_width_is_configurable() -> None:
    model = ResNet34SE(23, 8, 16).eval()
    assert ResNet34SE.output_bins(23) == 3  # 23 -> 12 -> 6 -> 3
    with torch.no_grad():
        assert model(torch.randn(1, 9, 23)).shape == (1, 16)
    assert model.pooled_dim == 2 * 64 * 3


def test_tsp_is_mean_and_population_std_over_time() -> None:
    x = torch.randn(2, 4, 3, 7)
    flat = x.reshape(2, 12, 7)
    expected = torch.cat([flat.mean(-1), flat.std(-1, unbiased=False)], dim=1)
    torch.testing.assert_close(TemporalStatsPool()(x), expected)


def test_se_basic_block_sums_gated_branch_and_identity() -> None:
    block = SEBasicBlock(8, 8).eval()
    with torch.no_grad():
        block.se.fc2.bias.fill_(-1e4)  # SE gate -> 0: relu(0 + x)
        x = torch.randn(2, 8, 5, 6)
        torch.testing.assert_close(block(x), torch.relu(x))
    assert isinstance(block.shortcut, torch.nn.Identity)
    assert not isinstance(SEBasicBlock(8, 16, stride=2).shortcut, torch.nn.Identity)
