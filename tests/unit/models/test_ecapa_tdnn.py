"""EcapaTdnn: parameter counts (ECAPA paper, SpeechBrain), layer names and shapes, block algebra."""

from __future__ import annotations

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from tests.support.layers import layer_shapes
from voxray.models.base import count_parameters
from voxray.models.ecapa_tdnn import EcapaTdnn, Res2NetBlock, SEBlock, SERes2Block


@pytest.mark.parametrize(
    ("channels", "mfa", "exact", "paper"),
    [
        (512, 1536, 6_194_048, 6.2e6),
        (1024, 1536, 14_660_416, 14.7e6),
        (1024, 3072, 20_767_552, None),
    ],
    ids=["c512", "c1024-paper", "c1024-speechbrain-3C"],
)
def test_parameter_counts(channels: int, mfa: int, exact: int, paper: float | None) -> None:
    """The paper's 6.2 M / 14.7 M keep the MFA at 1536; SpeechBrain's C=1024 uses 3C = 3072."""
    ours = count_parameters(EcapaTdnn(80, channels, 192, mfa_channels=mfa))
    theirs = count_parameters(ECAPA_TDNN(80, channels=[channels] * 4 + [mfa], lin_neurons=192))
    assert ours == theirs == exact
    if paper is not None:
        assert abs(ours - paper) < 0.05e6


def test_layers_are_named_in_order_with_frame_level_shapes() -> None:
    model = EcapaTdnn(80, 64, 32, mfa_channels=192, attention_channels=16, se_channels=16).eval()
    emb, seen = layer_shapes(model, torch.randn(3, 50, 80))
    assert list(model.layers()) == ["conv1", "block1", "block2", "block3", "mfa", "pool", "fc"]
    assert list(seen) == list(model.layers())  # hooks fire in input -> output order
    assert seen == {
        "conv1": (3, 64, 50),
        "block1": (3, 64, 50),
        "block2": (3, 64, 50),
        "block3": (3, 64, 50),
        "mfa": (3, 192, 50),
        "pool": (3, 384, 1),
        "fc": (3, 32, 1),
    }
    assert emb.shape == (3, 32) and model.embedding_dim == 32 and model.input_dim == 80


def test_res2net_split_is_hierarchical_sum_and_concat() -> None:
    block = Res2NetBlock(16, scale=4, kernel_size=3, dilation=2).eval()
    x = torch.randn(2, 16, 20)
    with torch.no_grad():
        out = block(x)
        x0, x1, x2, x3 = x.chunk(4, dim=1)
        y1 = block.blocks[0](x1)
        y2 = block.blocks[1](x2 + y1)
        y3 = block.blocks[2](x3 + y2)
    torch.testing.assert_close(out, torch.cat([x0, y1, y2, y3], dim=1))


def test_se_block_scales_channels_by_sigmoid_gate() -> None:
    se = SEBlock(8, 4)
    with torch.no_grad():
        for p in se.parameters():
            p.zero_()
    x = torch.randn(2, 8, 10)
    torch.testing.assert_close(se(x), 0.5 * x)  # sigmoid(0) = 1/2 on every channel


def test_se_res2block_adds_residual() -> None:
    block = SERes2Block(16, 16, kernel_size=3, dilation=2, scale=4, se_channels=4).eval()
    with torch.no_grad():
        block.se.conv2.bias.fill_(-1e4)  # gate -> 0: only the residual remains
        x = torch.randn(2, 16, 12)
        torch.testing.assert_close(block(x), x)
    assert block.shortcut is None
    assert SERes2Block(8, 16, scale=4, se_channels=4).shortcut is not None


def test_min_frames_reflect_padding() -> None:
    model = EcapaTdnn(20, 16, 8, mfa_channels=48, attention_channels=8, se_channels=8).eval()
    assert model.min_frames == 5
    with torch.no_grad():
        assert model(torch.randn(1, 5, 20)).shape == (1, 8)
    with pytest.raises(ValueError, match="at least 5 frames"):
        model(torch.randn(1, 4, 20))
    with pytest.raises(ValueError, match=r"\(B, T, 20\)"):
        model(torch.randn(1, 30, 21))


def test_embedding_independent_of_batch_companions_in_eval() -> None:
    model = EcapaTdnn(20, 16, 8, mfa_channels=48, attention_channels=8, se_channels=8).eval()
    x = torch.randn(4, 30, 20)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[1:2], model(x[1:2]))
