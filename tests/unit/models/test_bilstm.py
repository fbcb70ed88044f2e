"""BiLstm of Lehmann & Stadelmann 2020: parameter counts by hand, the lstm2 time-mean embedding, the
dense path."""

from __future__ import annotations

import pytest
import torch

from tests.support.layers import layer_outputs
from voxray.models.base import count_parameters
from voxray.models.bilstm import BiLstm


def _bilstm_parameters(input_dim: int, hidden: int) -> int:
    """Two bidirectional layers; per direction 4 gates x (W_ih, W_hh, b_ih, b_hh)."""
    per_direction = lambda fin: 4 * hidden * (fin + hidden) + 8 * hidden  # noqa: E731
    return 2 * per_direction(input_dim) + 2 * per_direction(2 * hidden)


@pytest.mark.parametrize(
    ("embedding_dim", "dense"),
    [(1024, 0), (512, 1024 * 1024 + 1024 + 1024 * 512 + 512)],
    ids=["lstm2-mean-1024", "bottleneck-512"],
)
def test_parameter_count_lstm512(embedding_dim: int, dense: int) -> None:
    model = BiLstm(80, 512, embedding_dim)
    assert count_parameters(model) == _bilstm_parameters(80, 512) + dense == 8_732_672 + dense


def test_embedding_is_time_mean_of_second_layer_output() -> None:
    model = BiLstm(20, 8, 16).eval()
    x = torch.randn(3, 11, 20)
    emb, seen = layer_outputs(model, x)
    with torch.no_grad():
        reference = torch.nn.LSTM(20, 8, num_layers=2, batch_first=True, bidirectional=True)
        for layer, ours in ((0, model.lstm1.lstm), (1, model.lstm2.lstm)):
            for name, value in ours.named_parameters():
                getattr(reference, name.replace("l0", f"l{layer}")).copy_(value)
        expected = reference(x)[0].mean(dim=1)
    assert list(model.layers()) == ["lstm1", "lstm2"]
    assert seen["lstm1"].shape == seen["lstm2"].shape == (3, 11, 16)
    torch.testing.assert_close(emb, seen["lstm2"].mean(dim=1))
    torch.testing.assert_close(emb, expected)


def test_dense_bottleneck_path() -> None:
    model = BiLstm(20, 8, 6).eval()
    assert list(model.layers()) == ["lstm1", "lstm2", "dense1", "dense2"]
    with torch.no_grad():
        x = torch.randn(2, 9, 20)
        h = model.lstm2(model.lstm1(x)).mean(dim=1)
        torch.testing.assert_close(model(x), model.dense[2](torch.relu(model.dense[0](h))))
    assert model(x).shape == (2, 6) and model.embedding_dim == 6


def test_lehmann_stadelmann_path_trains_through_dense_and_embeds_lstm2() -> None:
    """As published: the head learns on the Dense(2C) -> Dense(bottleneck) output while the
    embedding is lstm2's time mean (the dense layers dropped at inference)."""
    from voxray.config import HeadConfig, ModelConfig
    from voxray.models import build_classifier

    cfg = ModelConfig(
        arch="bilstm", channels=8, embedding_dim=16, bottleneck_dim=6, head=HeadConfig(kind="aam")
    )
    model = build_classifier(cfg, 20, num_classes=5).eval()
    x = torch.randn(3, 11, 20)
    with torch.no_grad():
        h = model.embedder.lstm2(model.embedder.lstm1(x)).mean(dim=1)
        bottleneck = model.embedder.dense[2](torch.relu(model.embedder.dense[0](h)))
        torch.testing.assert_close(model.embed(x), h)
        torch.testing.assert_close(model(x), model.head(bottleneck))
    assert model.embedder.embedding_dim == 16 and model.embedder.head_input_dim == 6
    assert model.head.weight.shape[1] == 6
    loss, _ = model.loss(x, torch.tensor([0, 1, 2]))
    loss.backward()
    assert model.embedder.dense[2].weight.grad.abs().sum() > 0


def test_bottleneck_needs_the_lstm2_embedding() -> None:
    with pytest.raises(ValueError, match="embedding_dim = 2 \\* channels = 16"):
        BiLstm(20, 8, 12, bottleneck_dim=6)
